"""BaseAgent: the training loop, its termination, evaluation and logging."""

import abc
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from torchrl_cli.batcher import Batcher, Episode
from torchrl_cli.envs import BaseEnv
from torchrl_cli.logger import Logger


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
    ) -> TrainResult:
        """Train until a budget is spent or an evaluation reaches ``target_return``.

        Evaluation runs every ``eval_freq`` env steps on ``eval_env`` (``eval_episodes``
        deterministic episodes, seeds from ``eval_seed``); its time is not training time.
        """
        if max_iters <= 0 and max_episodes <= 0 and max_steps <= 0:
            raise ValueError("train() needs a budget: max_steps, max_iters or max_episodes > 0")
        self.max_steps, self.max_iters, self.max_episodes = max_steps, max_iters, max_episodes
        result = TrainResult()
        next_eval = eval_freq if eval_env is not None and eval_freq and eval_freq > 0 else None
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
                if next_eval is not None and self.num_steps >= next_eval:
                    next_eval += eval_freq
                    evaluation = self.evaluate(eval_env, eval_episodes, eval_seed)
                    result.evaluations.append(evaluation)
                    self.log_evaluation(evaluation)
                    if target_return is not None and evaluation.mean >= target_return:
                        result.solved = evaluation
                        break
        if self.num_iters > self._logged_iters:
            self.write_logs()  # the last, partial log_freq window
        result.env_steps, result.iterations = self.num_steps, self.num_iters
        result.train_seconds = self.train_seconds
        result.interrupted = self.stop_requested
        return result

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
        """Run ``episodes`` deterministic episodes, one per copy of ``env`` (seeds ``seed + i``)."""
        for model in self.models.values():
            model.eval()
        n = env.n_envs
        if n < episodes:
            raise ValueError(f"eval env has {n} copies, fewer than {episodes} episodes")
        obs = env.reset(seed=seed)
        returns, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
        active = np.ones(n, dtype=bool)
        while active[:episodes].any():
            actions = self.select_action(self.normalize_state(obs), deterministic=True)
            step = env.step(self.batcher.to_env_action(actions))
            returns += step.reward * active
            lengths += active
            active &= ~(step.terminated | step.truncated)
            obs = step.obs
        for model in self.models.values():
            model.train()
        return Evaluation(
            self.num_steps,
            self.train_seconds,
            returns[:episodes].tolist(),
            lengths[:episodes].tolist(),
        )

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
