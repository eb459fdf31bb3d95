"""BaseAgent: the training loop, its budgets, its evaluation schedule and its state."""

import abc
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import torch

from torchrl_cli.agents.evaluation import Evaluation, EvaluationInterrupted, run_episodes
from torchrl_cli.agents.guard import Guard, NonFiniteError
from torchrl_cli.agents.rng import rng_state, set_rng_state
from torchrl_cli.agents.signals import stop_on_signal
from torchrl_cli.envs import BaseEnv, StateNormalizer
from torchrl_cli.rollout.collector import Collector, Episode
from torchrl_cli.tracking.logger import Logger


@dataclass(frozen=True)
class TrainSchedule:
    """When training stops, logs and evaluates (the config's values: see ``config.schema``).

    Budgets of -1 (or 0) are off; training stops at the first budget spent, or at the first
    evaluation whose mean reaches ``target_return``. Evaluations run every ``eval_freq`` env
    steps (0 or less: none during training), ``eval_episodes`` deterministic episodes with
    seeds from ``eval_seed``; the console table is written every ``log_freq`` iterations.
    """

    max_steps: int
    max_iters: int
    max_episodes: int
    log_freq: int
    eval_freq: int
    eval_episodes: int
    eval_seed: int
    target_return: float | None

    def __post_init__(self):
        if self.max_iters <= 0 and self.max_episodes <= 0 and self.max_steps <= 0:
            raise ValueError("training needs a budget: max_steps, max_iters or max_episodes > 0")


@dataclass
class TrainResult:
    env_steps: int = 0
    iterations: int = 0
    train_seconds: float = 0.0  # time in the training loop, evaluations excluded
    eval_seconds: float = 0.0  # time in evaluations, the final one included
    evaluations: list[Evaluation] = field(default_factory=list)
    solved: Evaluation | None = None  # the first evaluation whose mean reached target_return
    interrupted: str | None = None  # the signal (SIGINT, SIGTERM) that stopped training early


class CheckpointWriter(Protocol):
    """Where the loop saves its state (``run.checkpoint.Checkpoints``, handed in by the run)."""

    last_step: int | None

    def due(self, num_steps: int) -> bool: ...

    def save(self, agent_state: dict, num_steps: int) -> object: ...

    def save_best(self, agent_state: dict) -> object: ...


def seconds(value: float) -> str:
    """Seconds for a console line: one decimal, two below a second (0.04, not 0.0)."""
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


class BaseAgent(abc.ABC):
    """Runs ``step`` (one rollout and update) until a budget is spent, evaluating on schedule.

    Parameters:
        collector: collects rollouts from the training env (its actor acts).
        logger: console table, progress bar and TensorBoard.
        guard: the non-finite guard and divergence warnings (``agents.guard``).
    """

    def __init__(self, collector: Collector, *, logger: Logger, guard: Guard):
        self.collector = collector
        self.logger = logger
        self.guard = guard
        self.models: dict[str, torch.nn.Module] = {}
        self.num_iters = 0
        self.train_seconds = 0.0  # time in step() and logging, evaluations excluded
        self._logged_iters = 0
        self.stop_requested: str | None = None
        self._stop_announced = True  # the console line for a requested stop was printed
        self.schedule: TrainSchedule | None = None
        self.result = TrainResult()  # evaluations so far: part of the state, so resumes keep them
        self.next_eval: int | None = None  # env steps of the next scheduled evaluation
        self.eval_pending = False  # a signal stopped the last scheduled evaluation: run it first
        self.best_return = -math.inf

    def _register_model(self, name: str, model: torch.nn.Module) -> None:
        self.models[name] = model

    @property
    def normalizer(self) -> StateNormalizer:
        """The observation normalizer the actor feeds the policy through."""
        return self.collector.actor.normalizer

    @property
    def num_steps(self) -> int:
        return self.collector.num_steps

    @property
    def num_episodes(self) -> int:
        return self.collector.num_episodes

    @abc.abstractmethod
    def step(self) -> None:
        """One iteration: collect a rollout and update the models."""

    @abc.abstractmethod
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions for raw observations, as the env takes them."""

    def greedy_policy(self) -> Callable[..., np.ndarray]:
        """What an evaluation acts with: ``act``, or an equivalent the agent builds once for
        the evaluation's many steps."""
        return self.act

    def _check_termination(self) -> bool:
        """True once any budget (steps, iterations, episodes) is spent; -1 means no budget."""
        s = self.schedule
        return (
            (s.max_steps > 0 and self.num_steps >= s.max_steps)
            or (s.max_iters > 0 and self.num_iters >= s.max_iters)
            or (s.max_episodes > 0 and self.num_episodes >= s.max_episodes)
        )

    @property
    def progress(self) -> float:
        """Fraction of the budget spent, for schedules (0 when there is no step/iter budget)."""
        s = self.schedule
        if s.max_steps > 0:
            return min(self.num_steps / s.max_steps, 1.0)
        if s.max_iters > 0:
            return min(self.num_iters / s.max_iters, 1.0)
        return 0.0

    def train(
        self,
        schedule: TrainSchedule,
        *,
        eval_env: BaseEnv | None,
        checkpoints: CheckpointWriter | None,
        on_evaluation: Callable[[Evaluation], None] | None = None,
    ) -> "TrainResult":
        """Train until a budget of ``schedule`` is spent or an evaluation (on ``eval_env``)
        reaches its target; evaluation time is not training time. ``checkpoints`` (if given)
        saves the state on its schedule, on each new best evaluation and at the end, also when
        a signal stops training. A resumed agent (``load_state_dict``) goes on from its
        counters, evaluation schedule and evaluations so far. ``on_evaluation`` is handed each
        scheduled evaluation once it is logged and saved; an exception it raises (a tuning
        trial pruned) ends training there and propagates.
        """
        self.schedule = schedule
        if eval_env is None or schedule.eval_freq <= 0:
            self.next_eval = None
        elif self.next_eval is None:
            self.next_eval = self.num_steps + schedule.eval_freq
        self.logger.advance(self.num_steps, schedule.max_steps)  # the bar's clock starts here
        with stop_on_signal(self.request_stop):
            solved = False
            if self.eval_pending and self.next_eval is not None:
                # a resume of a run whose evaluation a signal stopped: that evaluation first
                solved = self.evaluate_on_schedule(eval_env, checkpoints, on_evaluation)
            while not solved and not self._check_termination() and not self.stop_requested:
                start = time.perf_counter()
                self.step()
                self.announce_stop()
                self.num_iters += 1
                self.train_seconds += time.perf_counter() - start
                if self.num_iters % schedule.log_freq == 0:
                    self.write_logs()
                else:
                    self.logger.advance(self.num_steps, schedule.max_steps)
                if self.next_eval is not None and self.num_steps >= self.next_eval:
                    self.next_eval += schedule.eval_freq
                    if self.evaluate_on_schedule(eval_env, checkpoints, on_evaluation):
                        break
                if checkpoints is not None and checkpoints.due(self.num_steps):
                    checkpoints.save(self.state_dict(), self.num_steps)
        if self.num_iters > self._logged_iters:
            self.write_logs()  # the last, partial log_freq window
        self.logger.flush_table()  # the state training ended in, whatever the cadence
        if checkpoints is not None and checkpoints.last_step != self.num_steps:
            checkpoints.save(self.state_dict(), self.num_steps)
        result = self.result
        result.env_steps, result.iterations = self.num_steps, self.num_iters
        result.train_seconds = self.train_seconds
        result.interrupted = self.stop_requested
        return result

    def evaluate_on_schedule(
        self,
        env: BaseEnv,
        checkpoints: CheckpointWriter | None,
        on_evaluation: Callable[[Evaluation], None] | None = None,
    ) -> bool:
        """A scheduled evaluation: logged, kept, saved as best.pt when it is the best so far,
        handed to ``on_evaluation``; returns whether it reached the target. A signal stops it
        as it stops training (the loop ends at once); the evaluation is due again, so that a
        resume runs it first."""
        self.eval_pending = False
        try:
            evaluation = self.evaluate(env, self.schedule.eval_episodes, self.schedule.eval_seed,
                                       stoppable=True)
        except EvaluationInterrupted:
            self.announce_stop()
            self.eval_pending = True
            return False
        except NonFiniteError as err:
            if self.guard.mode != "skip":
                raise
            self.logger.console.print(f"[yellow]warning[/yellow]: {err}; evaluation skipped")
            return False
        self.result.evaluations.append(evaluation)
        self.log_evaluation(evaluation)
        target = self.schedule.target_return
        if target is not None and evaluation.mean >= target:
            self.result.solved = evaluation
            self.logger.event(
                f"[bold green]target {target:g} reached[/bold green] at {evaluation.env_steps} "
                f"env steps, {seconds(evaluation.train_seconds)} s of training; stopping",
                always=True,
            )
        if checkpoints is not None and evaluation.mean > self.best_return:
            self.best_return = evaluation.mean
            checkpoints.save_best(self.state_dict())
        if on_evaluation is not None:
            on_evaluation(evaluation)
        return self.result.solved is not None

    def request_stop(self, signal_name: str) -> bool:
        """A signal asks the loop to stop after the current iteration, so the models are never
        left half-updated; returns whether a stop had been asked for already."""
        if self.stop_requested:
            return True
        self.stop_requested = signal_name
        self._stop_announced = False  # said at the next safe point: a handler must not print
        return False

    def announce_stop(self) -> None:
        """The stop's console line, once, from the loop (not from the signal handler, which may
        run while the console is in the middle of a write)."""
        if self.stop_requested and not self._stop_announced:
            self._stop_announced = True
            self.logger.console.print(
                f"[yellow]{self.stop_requested}: stopping after this "
                "update (send it again to abort at once)[/yellow]"
            )

    def state_dict(self) -> dict:
        """The full training state: models, optimizers, collector, counters, evaluations so
        far and the random states (see ``checkpoint``)."""
        return {
            "models": {name: m.state_dict() for name, m in self.models.items()},
            "optimizers": {name: m.optimizer.state_dict() for name, m in self.models.items()},
            "batcher": self.collector.state_dict(),
            "num_iters": self.num_iters,
            "train_seconds": self.train_seconds,
            "eval_seconds": self.result.eval_seconds,
            "next_eval": self.next_eval,
            "eval_pending": self.eval_pending,
            "best_return": self.best_return,
            "evaluations": [asdict(e) for e in self.result.evaluations],
            "solved": None if self.result.solved is None else asdict(self.result.solved),
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict, seed: int) -> bool:
        """Restore ``state_dict()`` to go on training; returns whether the env's episodes in
        progress were restored exactly (``Collector.load_state_dict``)."""
        for name, model in self.models.items():
            model.load_state_dict(state["models"][name])
        for name, model in self.models.items():
            model.optimizer.load_state_dict(state["optimizers"][name])
        exact = self.collector.load_state_dict(state["batcher"], seed)
        self.num_iters = self._logged_iters = state["num_iters"]
        self.train_seconds = state["train_seconds"]
        self.result.eval_seconds = state.get("eval_seconds", 0.0)  # absent before 2026-12
        self.next_eval, self.best_return = state["next_eval"], state["best_return"]
        self.eval_pending = state.get("eval_pending", False)  # absent before 2026-12
        self.result.evaluations = [Evaluation(**e) for e in state["evaluations"]]
        self.result.solved = None if state["solved"] is None else Evaluation(**state["solved"])
        set_rng_state(state["rng"])
        return exact

    def final_evaluation(self, env: BaseEnv) -> Evaluation | None:
        """The evaluation at the end of training: the one that reached the target, the last
        scheduled one if it ran at this very step, or a new one (none when interrupted)."""
        result = self.result
        if result.solved is not None:
            return result.solved
        if result.interrupted:
            return None
        if result.evaluations and result.evaluations[-1].env_steps == self.num_steps:
            return result.evaluations[-1]
        try:
            evaluation = self.evaluate(
                env, self.schedule.eval_episodes, self.schedule.eval_seed, stoppable=True
            )
        except EvaluationInterrupted:  # a signal: the same clean stop as during training
            self.announce_stop()
            result.interrupted = self.stop_requested
            return None
        self.log_evaluation(evaluation, line=False)  # the run's closing line reports it
        return evaluation

    @torch.inference_mode()
    def evaluate(
        self, env: BaseEnv, episodes: int, seed: int, stoppable: bool = False
    ) -> Evaluation:
        """``episodes`` deterministic episodes, one per copy of ``env`` (seeds from ``seed``);
        ``stoppable``: a signal ends it (EvaluationInterrupted) instead of waiting for it."""
        start = time.perf_counter()
        for model in self.models.values():
            model.eval()
        agents = env.n_agents  # many agents: every agent of each episode's copy
        with self.logger.evaluating(episodes * agents) as on_progress:
            stop = (lambda: self.stop_requested is not None) if stoppable else None
            try:
                returns, lengths = run_episodes(
                    self.greedy_policy(), env, episodes * agents, seed,
                    should_stop=stop, on_progress=on_progress,
                )
            finally:
                self.result.eval_seconds += time.perf_counter() - start
        for model in self.models.values():
            model.train()
        if not np.isfinite(returns).all():
            raise NonFiniteError(
                f"non-finite evaluation returns at env step {self.num_steps} (the evaluation "
                "env gave NaN or infinite rewards)"
            )
        team = None
        if agents > 1:
            team = np.asarray(returns).reshape(episodes, agents).sum(1).tolist()
        return Evaluation(self.num_steps, self.train_seconds, returns, lengths, team)

    def write_logs(self) -> None:
        """Episode statistics, speed and the console table."""
        episodes: list[Episode] = self.collector.pop_episodes()
        if episodes:
            self.logger.add_log("charts/episode_return", np.mean([e.ret for e in episodes]))
            self.logger.add_log("charts/episode_length", np.mean([e.length for e in episodes]), 0)
            self.log_agents(episodes)
        self._logged_iters = self.num_iters
        self.logger.timeit(self.num_steps, self.schedule.max_steps, seconds=self.train_seconds)
        self.logger.log(
            self.num_steps,
            header=f"iteration {self.num_iters}  |  "
            f"env steps {self.num_steps}  |  episodes {self.num_episodes}",
        )

    def log_agents(self, episodes: list[Episode]) -> None:
        """Many agents: the team return (the sum over a copy's agents) in the table, and each
        agent's own return in TensorBoard (``charts/agent_return/<name>``)."""
        teams = [e.team for e in episodes if e.team is not None]
        if teams:
            self.logger.add_log("charts/team_return", np.mean(teams))
        names = self.agent_names()
        if names is None:
            return
        for i, name in enumerate(names):
            own = [e.ret for e in episodes if e.agent == i]
            if own:
                self.logger.add_tf_only_log(f"charts/agent_return/{name}", float(np.mean(own)), 2)

    def agent_names(self) -> list[str] | None:
        """The names of a multi-agent env's agents, by row within a copy (None: one agent)."""
        return getattr(self.collector.env, "agents", None) if self.collector.agents > 1 else None

    def log_evaluation(self, evaluation: Evaluation, line: bool = True) -> None:
        """TensorBoard's eval/* scalars and (``line``) one console line. With many agents the
        mean return is the mean over agents of each agent's return, the team's beside it."""
        self.logger.add_log("eval/mean_return", evaluation.mean)
        self.logger.add_log("eval/std_return", evaluation.std)
        self.logger.add_log("eval/mean_length", float(np.mean(evaluation.lengths)), 0)
        team = ""
        if evaluation.team_returns is not None:
            self.logger.add_log("eval/team_return", float(np.mean(evaluation.team_returns)))
            names = self.agent_names() or []
            per_agent = np.asarray(evaluation.returns).reshape(-1, max(len(names), 1))
            for name, own in zip(names, per_agent.mean(0), strict=False):
                self.logger.add_tf_only_log(f"eval/agent_return/{name}", float(own), 2)
            team = (
                f" per agent (team return {np.mean(evaluation.team_returns):.2f} over "
                f"{len(evaluation.team_returns)} episodes)"
            )
        self.logger.log(self.num_steps, console=False)
        if not line:
            return
        what = "agent episodes" if team else "deterministic episodes"
        self.logger.event(
            f"evaluation at {evaluation.env_steps} env steps: mean return {evaluation.mean:.2f} "
            f"± {evaluation.std:.2f}{team} over {len(evaluation.returns)} {what}, "
            f"mean length {np.mean(evaluation.lengths):.0f}"
        )

