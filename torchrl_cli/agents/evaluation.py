"""Evaluating a policy: deterministic episodes on an evaluation env, and their statistics."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from torchrl_cli.envs import BaseEnv

EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes never reuse training seeds


class EvaluationInterrupted(Exception):
    """A signal asked the run to stop during an evaluation."""


@dataclass
class Evaluation:
    """Deterministic episodes' returns and lengths: one per episode, or with many agents one
    per agent of each episode (``mean``: the mean over agents of each agent's return), with
    ``team_returns`` the sum over each episode's agents."""

    env_steps: int
    train_seconds: float
    returns: list[float]
    lengths: list[int]
    team_returns: list[float] | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))


class CappedEnv:
    """An evaluation env whose episodes ``run_episodes`` cuts at ``max_episode_steps`` (an env
    with no time limit, whose greedy policy stops ending episodes, would loop forever), with
    ``warn`` told how many it cut. Anything else is the wrapped env's."""

    def __init__(self, env: BaseEnv, max_episode_steps: int, warn: Callable[[str], None]):
        self.env = env
        self.max_episode_steps = max_episode_steps
        self.warn = warn

    def __getattr__(self, name: str):
        return getattr(self.env, name)


def run_episodes(
    act: Callable[[np.ndarray], np.ndarray],
    env: BaseEnv,
    episodes: int,
    seed: int,
    on_episode: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[float], list[int]]:
    """Returns and lengths of one episode on each of the first ``episodes`` copies of ``env``,
    reset with ``seed``; ``act`` maps a batch of raw observations to env actions;
    ``on_episode`` is told the number of finished episodes each time it grows, and
    ``on_progress`` that number and the steps taken after every step (a progress display that
    moves while all episodes are still running); when
    ``should_stop()`` turns true (a signal) the evaluation ends with EvaluationInterrupted.
    An env that gives its legal actions (``env.action_mask``) has ``act`` called with them,
    ``act(obs, action_mask=...)``. A ``CappedEnv``'s episodes end at its step cap, with a
    warning: their returns are those of the steps run. An ``act`` with an ``end_episodes(done)``
    method (a policy with a memory) is told after each step which rows' episodes ended."""
    cap = env.max_episode_steps if isinstance(env, CappedEnv) else None
    n = env.n_envs
    if n < episodes:
        raise ValueError(f"the env has {n} copies, fewer than {episodes} episodes")
    obs = env.reset(seed=seed)
    returns, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
    active = np.ones(n, dtype=bool)
    shown = 0
    steps = 0
    end_episodes = getattr(act, "end_episodes", None)  # a policy with a memory resets there
    while active[:episodes].any():
        if should_stop is not None and should_stop():
            raise EvaluationInterrupted
        if cap is not None and steps >= cap:
            cut = int(active[:episodes].sum())
            env.warn(
                f"{cut} of {episodes} evaluation episodes cut at {cap} steps "
                "(eval_max_episode_steps); their returns are partial"
            )
            break
        steps += 1
        mask = getattr(env, "action_mask", None)
        step = env.step(act(obs) if mask is None else act(obs, action_mask=mask))
        returns += step.reward * active
        lengths += active
        done = step.terminated | step.truncated
        if end_episodes is not None:
            end_episodes(done)
        active &= ~done
        obs = step.obs
        finished = episodes - int(active[:episodes].sum())
        if on_episode is not None and finished > shown:
            on_episode(finished)
        shown = finished
        if on_progress is not None:
            on_progress(finished, steps)
    return returns[:episodes].tolist(), lengths[:episodes].tolist()
