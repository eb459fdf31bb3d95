"""BaseAgent: the training loop, its termination, evaluation and logging."""

import abc
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from torchrl_cli.batcher import Batcher, Episode
from torchrl_cli.checkpoint import Checkpoints, rng_state, set_rng_state
from torchrl_cli.envs import BaseEnv
from torchrl_cli.logger import Logger
from torchrl_cli.run_folder import load_weights


@dataclass
class Evaluation:
    env_steps: int
    train_seconds: float
    returns: list[float]
    lengths: list[int]

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))


@dataclass
class TrainResult:
    env_steps: int = 0
    iterations: int = 0
    train_seconds: float = 0.0  # time in the training loop, evaluations excluded
    evaluations: list[Evaluation] = field(default_factory=list)
    solved: Evaluation | None = None  # the first evaluation whose mean reached target_return
    interrupted: str | None = None  # the signal (SIGINT, SIGTERM) that stopped training early


class BaseAgent(abc.ABC):
    """Runs ``step`` (one rollout and update) until a budget is spent, evaluating on schedule.

    Parameters:
        batcher: collects rollouts from the training env.
        logger: console table, progress bar and TensorBoard.
    """

    def __init__(self, batcher: Batcher, *, logger: Logger):
        self.batcher = batcher
        self.logger = logger
        self.models: dict[str, torch.nn.Module] = {}
        self.num_iters = 0
        self.train_seconds = 0.0  # time in step() and logging, evaluations excluded
        self._logged_iters = 0
        self.stop_requested: str | None = None
        self.max_steps = self.max_iters = self.max_episodes = -1
        self.result = TrainResult()  # evaluations so far: part of the state, so resumes keep them
        self.next_eval: int | None = None  # env steps of the next scheduled evaluation
        self.best_return = -math.inf

    def _register_model(self, name: str, model: torch.nn.Module) -> None:
        self.models[name] = model

    @property
    def num_steps(self) -> int:
        return self.batcher.num_steps

    @property
    def num_episodes(self) -> int:
        return self.batcher.num_episodes

    @abc.abstractmethod
    def step(self) -> None:
        """One iteration: collect a rollout and update the models."""

    @abc.abstractmethod
    def select_action(self, state: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions for a batch of (normalized) states."""

    @abc.abstractmethod
    def normalize_state(self, obs: np.ndarray) -> torch.Tensor:
        """Raw observations to network inputs, without updating any statistics."""

    def _check_termination(self) -> bool:
        """True once any budget (steps, iterations, episodes) is spent; -1 means no budget."""
        return (
            (self.max_steps > 0 and self.num_steps >= self.max_steps)
            or (self.max_iters > 0 and self.num_iters >= self.max_iters)
            or (self.max_episodes > 0 and self.num_episodes >= self.max_episodes)
        )

    @property
    def progress(self) -> float:
        """Fraction of the budget spent, for schedules (0 when there is no step/iter budget)."""
        if self.max_steps > 0:
            return min(self.num_steps / self.max_steps, 1.0)
        if self.max_iters > 0:
            return min(self.num_iters / self.max_iters, 1.0)
        return 0.0

    def train(
        self,
        *,
        max_iters: int = -1,
        max_episodes: int = -1,
        max_steps: int = -1,
        log_freq: int = 1,
        eval_env: BaseEnv | None = None,
        eval_freq: int | None = None,
        eval_episodes: int = 20,
        eval_seed: int = 0,
        target_return: float | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> TrainResult:
        """Train until a budget is spent or an evaluation reaches ``target_return``.

        Evaluation runs every ``eval_freq`` env steps on ``eval_env`` (``eval_episodes``
        deterministic episodes, seeds from ``eval_seed``); its time is not training time.
        ``checkpoints`` (if given) saves the state on its schedule, on each new best evaluation
        and at the end, also when a signal stops training. A resumed agent (``load_state_dict``)
        goes on from its counters, evaluation schedule and evaluations so far.
        """
        if max_iters <= 0 and max_episodes <= 0 and max_steps <= 0:
            raise ValueError("train() needs a budget: max_steps, max_iters or max_episodes > 0")
        self.max_steps, self.max_iters, self.max_episodes = max_steps, max_iters, max_episodes
        result = self.result
        if eval_env is None or not eval_freq or eval_freq <= 0:
            self.next_eval = None
        elif self.next_eval is None:
            self.next_eval = self.num_steps + eval_freq
        with self.stop_on_signal():
            while not self._check_termination() and not self.stop_requested:
                start = time.perf_counter()
                self.step()
                self.num_iters += 1
                self.train_seconds += time.perf_counter() - start
                if self.num_iters % log_freq == 0:
                    self.write_logs()
                else:
                    self.logger.advance(self.num_steps, self.max_steps)
                if self.next_eval is not None and self.num_steps >= self.next_eval:
                    self.next_eval += eval_freq
                    evaluation = self.evaluate(eval_env, eval_episodes, eval_seed)
                    result.evaluations.append(evaluation)
                    self.log_evaluation(evaluation)
                    if target_return is not None and evaluation.mean >= target_return:
                        result.solved = evaluation
                    if checkpoints is not None and evaluation.mean > self.best_return:
                        self.best_return = evaluation.mean
                        checkpoints.save_best(self.state_dict())
                    if result.solved:
                        break
                if checkpoints is not None and checkpoints.due(self.num_steps):
                    checkpoints.save(self.state_dict(), self.num_steps)
        if self.num_iters > self._logged_iters:
            self.write_logs()  # the last, partial log_freq window
        if checkpoints is not None and checkpoints.last_step != self.num_steps:
            checkpoints.save(self.state_dict(), self.num_steps)
        result.env_steps, result.iterations = self.num_steps, self.num_iters
        result.train_seconds = self.train_seconds
        result.interrupted = self.stop_requested
        return result

    def state_dict(self) -> dict:
        """The full training state: models, optimizers, collector, counters, evaluations so
        far and the random states (see ``checkpoint``)."""
        return {
            "models": {name: m.state_dict() for name, m in self.models.items()},
            "optimizers": {name: m.optimizer.state_dict() for name, m in self.models.items()},
            "batcher": self.batcher.state_dict(),
            "num_iters": self.num_iters,
            "train_seconds": self.train_seconds,
            "next_eval": self.next_eval,
            "best_return": self.best_return,
            "evaluations": [asdict(e) for e in self.result.evaluations],
            "solved": None if self.result.solved is None else asdict(self.result.solved),
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict, seed: int, source: Path) -> bool:
        """Restore ``state_dict()`` (read from ``source``) to go on training; returns whether
        the env's episodes in progress were restored exactly (``Batcher.load_state_dict``)."""
        for name, model in self.models.items():
            load_weights(model, state["models"][name], source)
        for name, model in self.models.items():
            model.optimizer.load_state_dict(state["optimizers"][name])
        exact = self.batcher.load_state_dict(state["batcher"], seed)
        self.num_iters = self._logged_iters = state["num_iters"]
        self.train_seconds = state["train_seconds"]
        self.next_eval, self.best_return = state["next_eval"], state["best_return"]
        self.result.evaluations = [Evaluation(**e) for e in state["evaluations"]]
        self.result.solved = None if state["solved"] is None else Evaluation(**state["solved"])
        set_rng_state(state["rng"])
        return exact

    @contextmanager
    def stop_on_signal(self) -> Iterator[None]:
        """SIGINT (Ctrl-C) and SIGTERM ask the loop to stop after the current iteration, so the
        models are never left half-updated; a second signal interrupts at once."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.getsignal(sig) for sig in signals}

        def request_stop(signum, frame):
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = signal.Signals(signum).name
            self.logger.console.print(
                f"[yellow]{self.stop_requested}: stopping after this "
                "update (send it again to abort at once)[/yellow]"
            )

        for sig in signals:
            signal.signal(sig, request_stop)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def final_evaluation(
        self, result: TrainResult, env: BaseEnv, episodes: int, seed: int
    ) -> Evaluation | None:
        """The evaluation at the end of training: the one that reached the target, the last
        scheduled one if it ran at this very step, or a new one (none when interrupted)."""
        if result.solved is not None:
            return result.solved
        if result.interrupted:
            return None
        if result.evaluations and result.evaluations[-1].env_steps == self.num_steps:
            return result.evaluations[-1]
        evaluation = self.evaluate(env, episodes, seed)
        self.log_evaluation(evaluation)
        return evaluation

    @torch.inference_mode()
    def evaluate(self, env: BaseEnv, episodes: int, seed: int) -> Evaluation:
        """``episodes`` deterministic episodes, one per copy of ``env`` (seeds from ``seed``)."""
        for model in self.models.values():
            model.eval()
        returns, lengths = run_episodes(self.act, env, episodes, seed)
        for model in self.models.values():
            model.train()
        return Evaluation(self.num_steps, self.train_seconds, returns, lengths)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions for raw observations, as the env takes them."""
        actions = self.select_action(self.normalize_state(obs), deterministic=True)
        return self.batcher.to_env_action(actions)

    def write_logs(self) -> None:
        """Episode statistics, speed and the console table."""
        episodes: list[Episode] = self.batcher.pop_episodes()
        if episodes:
            self.logger.add_log("charts/episode_return", np.mean([e.ret for e in episodes]))
            self.logger.add_log("charts/episode_length", np.mean([e.length for e in episodes]), 0)
        self._logged_iters = self.num_iters
        self.logger.timeit(self.num_steps, self.max_steps, seconds=self.train_seconds)
        self.logger.log(
            self.num_steps,
            header=f"iteration {self.num_iters}  |  "
            f"env steps {self.num_steps}  |  episodes {self.num_episodes}",
        )

    def log_evaluation(self, evaluation: Evaluation) -> None:
        self.logger.add_log("eval/mean_return", evaluation.mean)
        self.logger.add_log("eval/std_return", evaluation.std)
        self.logger.add_log("eval/mean_length", float(np.mean(evaluation.lengths)), 0)
        self.logger.log(
            self.num_steps,
            header=f"evaluation at {self.num_steps} env steps "
            f"({len(evaluation.returns)} deterministic episodes)",
        )


def run_episodes(
    act: Callable[[np.ndarray], np.ndarray], env: BaseEnv, episodes: int, seed: int
) -> tuple[list[float], list[int]]:
    """Returns and lengths of one episode on each of the first ``episodes`` copies of ``env``,
    reset with ``seed``; ``act`` maps a batch of raw observations to env actions."""
    n = env.n_envs
    if n < episodes:
        raise ValueError(f"the env has {n} copies, fewer than {episodes} episodes")
    obs = env.reset(seed=seed)
    returns, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
    active = np.ones(n, dtype=bool)
    while active[:episodes].any():
        step = env.step(act(obs))
        returns += step.reward * active
        lengths += active
        active &= ~(step.terminated | step.truncated)
        obs = step.obs
    return returns[:episodes].tolist(), lengths[:episodes].tolist()
