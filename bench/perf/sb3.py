"""Stable-Baselines3's side: PPO with rl-zoo3's tuned hyperparameters, timed like ours."""

import time
from collections.abc import Callable

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger
from threadpoolctl import threadpool_limits

from bench.perf.evaluate import Evaluator
from bench.perf.records import SolveRun, Throughput
from bench.perf.settings import EVAL_EPISODES, ZOO_CARTPOLE, ZOO_PENDULUM, Solve

EVAL_SEED_OFFSET = 1_000_000  # as torchrl-cli: evaluation never reuses training seeds
ZOO_BUDGET = 100_000  # rl-zoo3's n_timesteps for both pairs (sets the linear schedules)


def linear(start: float):
    """rl-zoo3's ``lin_<start>``: SB3 passes the fraction of training remaining (1 -> 0)."""
    return lambda progress_remaining: progress_remaining * start


def single_threaded() -> None:
    torch.set_num_threads(1)  # one thread, as torchrl-cli's default torch_threads=1
    threadpool_limits(1, user_api="blas")  # and numpy's BLAS, as torchrl-cli holds its own


def unlogged(model):
    """``model`` with a logger that writes nothing: left to itself, SB3 makes a folder
    ``SB3-<time>`` in the temp directory for every model it trains, and leaves it there."""
    model.set_logger(Logger(None, output_formats=[]))
    return model


def make_ppo(env_id: str, seed: int) -> PPO:
    if env_id == "CartPole-v1":
        zoo = dict(ZOO_CARTPOLE)
        zoo["learning_rate"] = linear(zoo["learning_rate"])
        zoo["clip_range"] = linear(zoo["clip_range"])
    else:
        zoo = dict(ZOO_PENDULUM)
    env = make_vec_env(env_id, n_envs=zoo.pop("n_envs"), seed=seed)
    single_threaded()
    return unlogged(PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **zoo))


class SolveClock(BaseCallback):
    """Evaluates after every update once ``every`` more env steps have passed, with the training
    clock paused; stops training at the first evaluation whose mean reaches ``threshold``."""

    def __init__(self, evaluate: Evaluator, every: int, threshold: float,
                 prepare: Callable[[np.ndarray], np.ndarray] | None = None):
        """``prepare``: raw observations to the policy's inputs (VecNormalize's statistics)."""
        super().__init__()
        self.evaluate, self.every, self.threshold = evaluate, every, threshold
        self.prepare = prepare or (lambda obs: obs)
        self.next_eval = every
        self.evaluations: list[tuple[int, float, float]] = []
        self.solved: tuple[int, float] | None = None

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()
        self.paused = 0.0

    def _on_rollout_start(self) -> None:  # after the previous update, as torchrl-cli evaluates
        if self.num_timesteps < self.next_eval or self.solved:
            return
        self.next_eval += self.every
        now = time.perf_counter()
        train_seconds = now - self.start - self.paused
        mean = self.evaluate(
            lambda obs: self.model.predict(self.prepare(obs), deterministic=True)[0]
        )
        self.paused += time.perf_counter() - now
        self.evaluations.append((self.num_timesteps, train_seconds, mean))
        if mean >= self.threshold:
            self.solved = (self.num_timesteps, train_seconds)

    def _on_step(self) -> bool:
        return self.solved is None


def time_to_solve(task: Solve, seed: int) -> SolveRun:
    model = make_ppo(task.env_id, seed)
    evaluator = Evaluator(task.env_id, EVAL_EPISODES, seed + EVAL_SEED_OFFSET)
    clock = SolveClock(evaluator, task.eval_every, task.threshold)
    model.learn(task.budget or ZOO_BUDGET, callback=clock)
    evaluator.close()
    model.env.close()
    steps, seconds = clock.solved or (None, None)
    return SolveRun(seed, steps, seconds, clock.evaluations)


def throughput(steps: int, seed: int) -> Throughput:
    model = make_ppo("CartPole-v1", seed)
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    evaluator = Evaluator("CartPole-v1", EVAL_EPISODES, seed + EVAL_SEED_OFFSET)
    final = evaluator(lambda obs: model.predict(obs, deterministic=True)[0])
    evaluator.close()
    model.env.close()
    return Throughput(model.num_timesteps, seconds, final)
