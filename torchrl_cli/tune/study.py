"""Tuning studies (``torchrl tune``): Optuna's sampler, pruner and storage, the reports a trial
of several seeds makes, and the study's loop, one trial after another in this process (the
search space: ``tune.search``).

Several processes (joblib, Ray or SLURM workers, or ``cmd &`` twice) feed one study when they
name the same study and storage: each runs its own ``n_trials``, Optuna hands out the trial
numbers, and each trial's seeds train in ``runs/tune/<study>/trial_<n>_seed_<s>/``. Training
itself is handed in (``TrainRun``): only the command line may import the training entry point.
"""

import json
import math
import os
import re
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, open_dict
from rich.console import Console
from rich.markup import escape

from torchrl_cli.agents.evaluation import Evaluation
from torchrl_cli.config.compose import compose_config
from torchrl_cli.errors import ConfigError, FaultError, did_you_mean, first_line
from torchrl_cli.run.checkpoint import DiskFullError
from torchrl_cli.run.folder import claim_run_dir, study_dir, trial_run_name
from torchrl_cli.tune.search import (
    BUDGET,
    Param,
    override,
    rounded,
    search_space,
    short_names,
)

SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("none", "median", "halving", "hyperband")
OBJECTIVES = {"return": "maximize", "steps_to_target": "minimize", "seconds_to_target": "minimize"}
JOURNAL_FILE = "study.log"  # the default storage, in the study's folder

# train(cfg, run_dir, on_evaluation, tag) -> the run's metrics.json dict
TrainRun = Callable[[DictConfig, Path, Callable[[Evaluation], None], str], dict]


def check_tune(tune: DictConfig, study_name: str) -> None:
    """The study's names and numbers; ConfigError naming the first bad one."""
    if not re.fullmatch(r"[\w.-]+", study_name) or study_name.startswith("."):
        raise ConfigError(
            f"tune.study_name={study_name!r} must be a folder name (letters, digits, _ . -)"
        )
    for kind, name, names in (
        ("sampler", tune.sampler.name, SAMPLERS),
        ("pruner", tune.pruner.name, PRUNERS),
    ):
        if name not in names:
            raise ConfigError(
                f"unknown {kind} tune.{kind}.name={name}{did_you_mean(str(name), names)}; "
                f"choose one of: {', '.join(names)}"
            )
    objectives = list(tune.objectives)
    for objective in objectives:
        if objective not in OBJECTIVES:
            raise ConfigError(
                f"unknown objective '{objective}' in tune.objectives"
                f"{did_you_mean(str(objective), OBJECTIVES)}; choose from: {', '.join(OBJECTIVES)}"
            )
    if not objectives or len(set(objectives)) != len(objectives):
        raise ConfigError(f"tune.objectives={objectives} must name each objective once")
    if tune.pruner.name != "none" and objectives != ["return"]:
        raise ConfigError(
            f"tune.pruner.name={tune.pruner.name} prunes on the return alone, but the study "
            f"scores {', '.join(objectives)}; set tune.pruner.name=none (or "
            "tune.objectives=[return])"
        )
    checks = (
        (tune.n_trials >= 1, f"tune.n_trials={tune.n_trials} must be at least 1"),
        (tune.timeout is None or tune.timeout > 0, f"tune.timeout={tune.timeout} must be > 0"),
        (tune.top >= 1, f"tune.top={tune.top} must be at least 1"),
        (tune.pruner.n_startup_trials >= 0, "tune.pruner.n_startup_trials must be >= 0"),
        (tune.pruner.n_warmup_steps >= 0, "tune.pruner.n_warmup_steps must be >= 0"),
        (tune.pruner.min_resource >= 1, "tune.pruner.min_resource must be at least 1"),
        (tune.pruner.reduction_factor >= 2, "tune.pruner.reduction_factor must be at least 2"),
    )
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def make_sampler(sampler: DictConfig, drawn: int):
    """Optuna's sampler, seeded for the trial drawn after ``drawn`` others: from the pair
    (seed, drawn), so that workers of one study never draw alike, whichever seeds they give."""
    import optuna

    seed = None if sampler.seed is None else trial_seed(sampler.seed, drawn)
    if sampler.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sampler.name == "cmaes":  # choices are drawn independently (CMA-ES takes numbers only)
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


def trial_seed(seed: int, drawn: int) -> int:
    """A 32-bit seed of its own for each (seed, drawn) pair (numpy's SeedSequence mixes them)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, drawn]).generate_state(1)[0])


def make_pruner(pruner: DictConfig, n_reports: int):
    """Optuna's pruner; a trial makes ``n_reports`` reports (``Reports``) when it finishes."""
    import optuna

    if pruner.name == "median":
        return optuna.pruners.MedianPruner(pruner.n_startup_trials, pruner.n_warmup_steps)
    if pruner.name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(pruner.min_resource, pruner.reduction_factor)
    if pruner.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            pruner.min_resource, max(n_reports, pruner.min_resource), pruner.reduction_factor
        )
    return optuna.pruners.NopPruner()


def open_storage(storage: str | None, folder: Path, warn: Callable[[str], None] = print):
    """The study's storage: a journal file (``None``: ``study.log`` in the study's folder; a
    path) or an RDB URL (``sqlite:///study.db``, ``postgresql://...``); ConfigError when it
    cannot be opened. A journal is checked first (``repair_journal``): a partial last record
    is set aside (``warn`` says so), a damaged one is a ConfigError."""
    from optuna.storages import RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if storage is not None and "://" in storage:
        try:
            return RDBStorage(storage)
        except Exception as err:  # a bad URL, a missing driver, a folder that is not there
            reason = first_line(err, limit=None)
            reason = re.sub(r"^\([\w.]+\) ", "", reason)  # SQLAlchemy's "(sqlite3.Error) "
            raise ConfigError(
                f"tune.storage={storage} cannot be opened ({reason[:200]}); give an RDB URL "
                "that can be reached (sqlite:///<file> in a folder that exists), or a file path "
                "for a journal"
            ) from None
    path = Path(storage) if storage is not None else folder / JOURNAL_FILE
    if storage is None:
        folder.mkdir(parents=True, exist_ok=True)
    try:
        backend = JournalFileBackend(str(path))
        repair_journal(path, backend, warn)
        return JournalStorage(backend)
    except OSError as err:
        raise ConfigError(
            f"tune.storage={path} cannot be opened ({err.strerror}); name a journal file in a "
            "folder that exists and can be written, or an RDB URL"
        ) from None


def repair_journal(path: Path, backend, warn: Callable[[str], None]) -> None:
    """Make a journal safe to append to, under Optuna's own lock (no worker is writing then).

    A last record without its newline is what a full disk or a ``kill -9`` during an append
    leaves: Optuna skips it when reading, but the next append would be glued onto it, and
    from then on every read of the study fails. It is moved to ``<journal>.partial`` (its
    bytes kept) and the journal cut to its last whole record. A record in the middle that is
    not JSON cannot be set aside (the records after it build on it): ConfigError naming it.
    """
    from optuna.storages.journal._file import get_lock_file

    with get_lock_file(backend._lock):
        with open(path, "rb") as f:
            data = f.read()
        whole = data.rfind(b"\n") + 1
        records = data[:whole].splitlines()
        for number, line in enumerate(records, start=1):
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if not isinstance(record, dict):
                raise ConfigError(
                    f"{path} is damaged at line {number} (not a journal record: "
                    f"{line[:40]!r}); restore it from a copy, or start a new study with "
                    "tune.study_name=<name>"
                )
        if whole < len(data):
            with open(f"{path}.partial", "ab") as f:
                f.write(data[whole:] + b"\n")
                f.flush()
                os.fsync(f.fileno())
            os.truncate(path, whole)
            warn(
                f"{path} ended in a partial record ({len(data) - whole} bytes, left by a full "
                f"disk or a killed worker); it was moved to {path}.partial and the study goes "
                f"on from its {len(records)} whole records"
            )


def open_study(
    storage, name: str, directions: list[str], budget: dict, shown: str, folder: Path
):
    """Load the study ``name`` from ``storage``, or create it; one that was scored with another
    budget, agent, env or objectives is refused (ConfigError): its trials would not compare.
    A study that the storage lacks while its folder holds trial runs is refused too (an
    empty or replaced storage: a new study's trials would collide with those folders)."""
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        trials = sorted(p.name for p in folder.glob("trial_*") if p.is_dir())
        if trials:
            raise ConfigError(
                f"study '{name}' is not in {shown} (an empty or replaced storage), but "
                f"{folder} holds its trials' runs ({', '.join(trials[:2])}, ...); restore "
                "the storage, or start a new study with tune.study_name=<name>"
            ) from None
        try:
            study = optuna.create_study(storage=storage, study_name=name, directions=directions)
            study.set_user_attr("budget", budget)
            return study
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it just now
            study = optuna.load_study(study_name=name, storage=storage)
    theirs = study.user_attrs.get("budget")
    for _ in range(50):  # the worker that created it records the budget just after
        if theirs is not None:
            break
        time.sleep(0.1)
        theirs = optuna.load_study(study_name=name, storage=storage).user_attrs.get("budget")
    if theirs is None:
        raise ConfigError(
            f"study '{name}' in {shown} records no budget: torchrl tune did not make it; "
            "start a new study with tune.study_name=<name>"
        )
    differ = [k for k in budget if theirs.get(k) != budget[k]]
    if differ:
        raise ConfigError(
            f"study '{name}' in {shown} was scored with "
            + ", ".join(f"{k}={theirs.get(k)}" for k in differ)
            + "; this command gives "
            + ", ".join(f"{k}={budget[k]}" for k in differ)
            + ": use the same, or start a new study with tune.study_name=<name>"
        )
    return study


class Reports:
    """The intermediate values a trial reports, so that a pruner compares trials at one step.

    The seeds train one after another. Each has ``evaluations`` slots, one per scheduled
    evaluation that every trial makes (``max_steps // eval_freq``), then one for its final
    evaluation: seed i's slot k is step ``i * (evaluations + 1) + k``. Its value is the mean of
    the final returns of seeds 0..i-1 and seed i's k-th evaluation; a seed that stopped early
    (at its target) holds its final return in the slots it skipped. Every trial trains the same
    seeds in the same order on the same schedule, so a step means the same in each, and the
    last step's value is the trial's score, the mean final return.
    """

    def __init__(self, evaluations: int):
        self.evaluations = evaluations
        self.finals: list[float] = []
        self.seen = 0  # evaluations of the current seed so far

    def step(self, k: int) -> int:
        return len(self.finals) * (self.evaluations + 1) + k

    def evaluation(self, value: float) -> tuple[int, float] | None:
        """The report for the current seed's next evaluation (None past its slots)."""
        k, self.seen = self.seen, self.seen + 1
        if k >= self.evaluations:
            return None
        return self.step(k), (sum(self.finals) + value) / (len(self.finals) + 1)

    def seed_end(self, final: float) -> list[tuple[int, float]]:
        """The reports for a seed's end: its skipped slots and its final one."""
        first = self.step(min(self.seen, self.evaluations))
        self.finals.append(final)
        self.seen = 0
        mean = sum(self.finals) / len(self.finals)
        return [(step, mean) for step in range(first, self.step(0))]

    def where(self, step: int, seeds: list[int]) -> str:
        """A step in words: evaluation 3 of seed 1, or the end of seed 1."""
        i, k = divmod(step, self.evaluations + 1)
        if k == self.evaluations:
            return f"the end of seed {seeds[i]}"
        return f"evaluation {k + 1} of seed {seeds[i]}"


class Interrupted(Exception):
    """A signal stopped a trial's training (its metrics say which)."""


def objective_values(objectives: list[str], per_seed: list[dict]) -> list[float]:
    """The trial's scores: the mean over its seeds of each objective."""
    values = []
    for objective in objectives:
        if objective == "return":
            per = [m["mean_return"] for m in per_seed]
        elif objective == "steps_to_target":
            per = [(m["solved"] or {}).get("env_steps", m["env_steps"]) for m in per_seed]
        else:
            per = [(m["solved"] or {}).get("train_seconds", m["train_seconds"]) for m in per_seed]
        values.append(float(sum(per) / len(per)))
    return values


@dataclass
class StudySetup:
    """What the loop needs to know about the study it feeds."""

    name: str
    folder: Path
    storage: str  # as shown to the user
    seeds: list[int]
    objectives: list[str]
    params: list[Param]
    evaluations: int  # report slots per seed before its final one
    prune: bool


def run_trial(
    trial, study: StudySetup, overrides: list[str], train_run: TrainRun, command: str
) -> list[float]:
    """Train every seed of one trial; its scores. Raises optuna.TrialPruned when the pruner
    stops it, Interrupted on a signal, ConfigError or FaultError when a seed cannot train."""
    import optuna

    values = {p.key: p.suggest(trial) for p in study.params}
    trial_overrides = [*overrides, *(override(k, v) for k, v in values.items())]
    trial.set_user_attr("values", values)
    trial.set_user_attr("overrides", trial_overrides)
    trial.set_user_attr("command", command)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    cfg = compose_config(trial_overrides)
    reports, per_seed = Reports(study.evaluations), []

    def report(step: int, value: float) -> None:
        trial.report(value, step)
        trial.set_user_attr("last_report", [step, value])

    def on_evaluation(evaluation: Evaluation) -> None:
        report_ = reports.evaluation(evaluation.mean)
        if study.prune and report_ is not None:
            report(*report_)
            if trial.should_prune():
                raise optuna.TrialPruned

    for i, seed in enumerate(study.seeds):
        seed_cfg = cfg.copy()
        with open_dict(seed_cfg):
            seed_cfg.seed, seed_cfg.seeds, seed_cfg.tune = seed, None, None
        run_dir = study.folder / trial_run_name(trial.number, seed)
        try:
            claim_run_dir(run_dir)
        except ConfigError as err:
            raise ConfigError(f"{run_dir}: {err}") from None
        metrics = train_run(seed_cfg, run_dir, on_evaluation, f"[trial {trial.number}]")
        if metrics["interrupted"]:
            raise Interrupted(metrics["interrupted"])
        per_seed.append(metrics)
        if study.prune:
            for report_ in reports.seed_end(metrics["mean_return"]):
                report(*report_)
            if i < len(study.seeds) - 1 and trial.should_prune():
                raise optuna.TrialPruned
    trial.set_user_attr("seed_returns", [m["mean_return"] for m in per_seed])
    return objective_values(study.objectives, per_seed)


def trial_line(trial, study: StudySetup, note: str) -> str:
    values = trial.user_attrs.get("values", {})
    names = short_names([p.key for p in study.params])
    shown = " ".join(f"{names[k]}={rounded(v)}" for k, v in values.items() if k in names)
    return f"trial {trial.number}  {shown}  {note}"


def run_study(
    cfg: DictConfig,
    overrides: list[str],
    preset: str,
    train_run: TrainRun,
    console: Console,
    command: str,
    write_results: Callable,
) -> int:
    """``torchrl tune``: open (or join) the study, run ``tune.n_trials`` trials, then write its
    results (``write_results``: ``tune.results``'s, handed in by the command); the exit code
    (1 if a trial failed, 128 + signal when one stopped the study)."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    tune = cfg.tune
    name = tune.study_name or preset
    check_tune(tune, name)
    fixed = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    params, skipped = search_space(cfg, fixed)
    baseline = {p.key: p.baseline(cfg) for p in params} if tune.baseline_first else {}
    seeds = list(cfg.seeds) if cfg.seeds else [cfg.seed]
    evaluations = cfg.max_steps // cfg.eval_freq if cfg.eval_freq > 0 and cfg.max_steps > 0 else 0
    budget = {"agent": cfg.agent.name, "env": cfg.env.id, "objectives": list(tune.objectives)}
    budget |= {k: cfg[k] for k in BUDGET if k != "seeds"} | {"seeds": seeds}
    folder = study_dir(name)
    storage = open_storage(tune.storage, folder, lambda text: console.print(
        f"[yellow]warning[/yellow]: {escape(text)}", soft_wrap=True))
    shown = tune.storage or str(folder / JOURNAL_FILE)
    directions = [OBJECTIVES[o] for o in tune.objectives]
    optuna_study = open_study(storage, name, directions, budget, shown, folder)
    optuna_study.pruner = make_pruner(tune.pruner, len(seeds) * (evaluations + 1))
    folder.mkdir(parents=True, exist_ok=True)
    study = StudySetup(
        name,
        folder,
        shown,
        seeds,
        list(tune.objectives),
        params,
        evaluations,
        prune=tune.pruner.name != "none",
    )
    before = len(optuna_study.get_trials(deepcopy=False))
    if baseline and not before:  # a second worker's copy of it is skipped
        optuna_study.enqueue_trial(baseline, skip_if_exists=True)
    console.print(
        f"[bold]torchrl tune[/bold] study {name} ({plural(before, 'trial')} so far) -> {folder}"
        + (f" (storage {shown})" if tune.storage else ""),
        soft_wrap=True,
    )
    names = short_names([p.key for p in params])
    seeded = "unseeded" if tune.sampler.seed is None else f"seed {tune.sampler.seed}"
    console.print(
        f"{cfg.agent.name} on {cfg.env.id}: {plural(tune.n_trials, 'trial')} of seeds {seeds} x "
        f"{cfg.max_steps} env steps, scored by {', '.join(tune.objectives)}; sampler "
        f"{tune.sampler.name} ({seeded}), pruner {tune.pruner.name}",
        soft_wrap=True,
    )
    console.print(
        "search: "
        + ", ".join(f"{names[p.key]} {p.describe()}" for p in params)
        + (f" (fixed by the command line: {', '.join(skipped)})" if skipped else ""),
        soft_wrap=True,
    )
    if baseline:
        console.print(
            "tune.baseline_first: "
            + (
                f"the study holds {plural(before, 'trial')} already, no baseline trial added"
                if before
                else "the first trial trains the config's own "
                + ", ".join(f"{names[k]} {rounded(v)}" for k, v in baseline.items())
            ),
            soft_wrap=True,
        )
    try:
        code = run_trials(optuna_study, study, overrides, train_run, console, command, tune)
    except OSError as err:  # the storage's own write (Optuna's append): a full disk
        raise FaultError(
            f"study {name}: its storage {shown} cannot be written ({err.strerror}); the study "
            "stops, its finished trials kept: free space, then the same command goes on"
        ) from None
    write_results(optuna_study, study, cfg, console)
    return code


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def run_trials(
    optuna_study, study: StudySetup, overrides, train_run, console, command, tune
) -> int:
    import optuna
    from optuna.trial import TrialState

    start, code = time.monotonic(), 0
    for _ in range(tune.n_trials):
        if tune.timeout is not None and time.monotonic() - start >= tune.timeout:
            console.print(f"tune.timeout={tune.timeout:g} s spent: no more trials start")
            break
        drawn = len(optuna_study.get_trials(deepcopy=False))
        optuna_study.sampler = make_sampler(tune.sampler, drawn)
        trial = optuna_study.ask()
        began = time.monotonic()
        try:
            values = run_trial(trial, study, overrides, train_run, command)
        except optuna.TrialPruned:
            optuna_study.tell(trial, state=TrialState.PRUNED)
            step, value = trial.user_attrs.get("last_report", (0, math.nan))
            where = Reports(study.evaluations).where(step, study.seeds)
            note = f"pruned at {where} (return {value:.2f})"
        except DiskFullError as err:  # every trial after it would fail alike
            try:
                optuna_study.tell(trial, state=TrialState.FAIL)
            except OSError:  # the storage is on the full disk too
                pass
            raise FaultError(
                f"trial {trial.number}: {err}; the study stops, its finished trials kept: "
                "free space, then the same command goes on"
            ) from None
        except (ConfigError, FaultError) as err:
            trial.set_user_attr("error", str(err))
            optuna_study.tell(trial, state=TrialState.FAIL)
            note, code = f"failed: {err}", 1
        except (Interrupted, KeyboardInterrupt) as err:
            optuna_study.tell(trial, state=TrialState.FAIL)
            signal_name = str(err) if isinstance(err, Interrupted) else "SIGINT"
            console.print(
                trial_line(
                    trial,
                    study,
                    f"stopped by {signal_name}, marked failed; the study keeps its finished "
                    "trials (the same command adds more)",
                )
            )
            return 128 + signal.Signals[signal_name].value
        except BaseException:  # a bug: the trial must not stay RUNNING in a shared storage
            optuna_study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            optuna_study.tell(trial, values)
            note = "  ".join(
                f"{o} {format_value(o, v)}" for o, v in zip(study.objectives, values, strict=True)
            )
        console.print(trial_line(trial, study, f"{note}  {time.monotonic() - began:.0f} s"))
    return code


def format_value(objective: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return str(value)
    if objective == "steps_to_target":
        return f"{value:.0f}"
    return f"{value:.1f}" if objective == "seconds_to_target" else f"{value:.2f}"
