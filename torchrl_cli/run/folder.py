"""A run folder: its name, its config, its checkpoints as the commands after training see them,
its lock."""

import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from torchrl_cli.config.migrate import upgrade
from torchrl_cli.config.validate import check_names
from torchrl_cli.errors import ConfigError
from torchrl_cli.run.checkpoint import (
    CHECKPOINT_DIR,
    LAST,
    NOFOLLOW,
    Checkpoint,
    check_agent_state,
    find_checkpoint,
    load_checkpoint,
    refuse_symlink,
    step_checkpoints,
)
from torchrl_cli.run.outputs import METRICS_FILE, MODEL_FILE
from torchrl_cli.run.trust import check_no_interpolation, check_targets, parse_trust
from torchrl_cli.utils import RUNS_DIR

CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"
MULTIRUN = "multirun"
TUNE_DIR = "tune"  # runs/tune/<study>/: a torchrl tune study's folder


def run_name(agent: str, env_id: str) -> str:
    """A run folder's name after its time: ``<agent>_<env id>``, '/' as '-' (ALE/Pong-v5)."""
    return f"{agent}_{env_id.replace('/', '-')}"


def tracked_run_name(run_dir: Path) -> str:
    """A run's name in MLflow and W&B: its folder and the folder above, e.g.
    ``2026-11-23/10-00-00_ppo_clip_CartPole-v1`` or, for a sweep's job,
    ``10-00-00_multirun/3_ppo_clip_CartPole-v1``."""
    run_dir = run_dir.resolve()
    return f"{run_dir.parent.name}/{run_dir.name}"


def new_run_dir(name: str, now: datetime | None = None) -> Path:
    """``runs/<date>/<time>_<name>``: where a run (or, named ``multirun``, a sweep) goes."""
    now = now or datetime.now()
    return Path(RUNS_DIR) / f"{now:%Y-%m-%d}" / f"{now:%H-%M-%S}_{name}"


def study_dir(study_name: str) -> Path:
    """``runs/tune/<study name>``: a tuning study's folder; every process of the study (one
    name, one storage) writes its trials there."""
    return Path(RUNS_DIR) / TUNE_DIR / study_name


def trial_run_name(trial: int, seed: int) -> str:
    """A tuning trial's run folder for one of its seeds, inside the study's folder."""
    return f"trial_{trial}_seed_{seed}"


def register_resolvers() -> None:
    """The resolvers conf/config.yaml names its run and sweep folders with (this module's
    functions, so that the CLI and Hydra name folders alike)."""
    resolvers = {
        "torchrl_run_name": run_name,
        "torchrl_run_dir": lambda agent, env_id: str(new_run_dir(run_name(agent, env_id))),
        "torchrl_sweep_dir": lambda: str(new_run_dir(MULTIRUN)),
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def load_run(
    run_dir: Path, which: str = LAST, trust: Iterable[str] = ()
) -> tuple[DictConfig, Checkpoint]:
    """``(config, checkpoint)`` of a run folder; ``which``: last, best or a file, which must
    come from a run of the same env. The config may only name the ``_target_``s that
    ``run.trust`` permits, or ones under a ``trust`` prefix."""
    refuse_symlink(run_dir / CHECKPOINT_DIR)
    if run_dir.is_dir() and not (run_dir / CONFIG_FILE).is_file():
        raise_not_a_run(run_dir)
    checkpoint = load_checkpoint(find_checkpoint(run_dir, which))
    check_agent_state(checkpoint.agent, checkpoint.path)  # what eval, export and resume read
    cfg = load_config(run_dir, trust)  # refuses a symlinked config.yaml
    if checkpoint.env_id != cfg.env.id:
        raise ConfigError(
            f"checkpoint {checkpoint.path} was saved by a run on {checkpoint.env_id}, but "
            f"{run_dir} trains on {cfg.env.id}; pick a checkpoint of this run"
        )
    return cfg, checkpoint


def raise_not_a_run(run_dir: Path) -> None:
    seeds = sorted(p.name for p in run_dir.glob("seed_*") if p.is_dir())
    hint = f"; it is a seeds=[...] job: use one of {', '.join(seeds)}" if seeds else ""
    raise ConfigError(f"{run_dir} is not a torchrl-cli run folder: it has no {CONFIG_FILE}{hint}")


def load_config(run_dir: Path, trust: Iterable[str] = ()) -> DictConfig:
    """A run folder's config.yaml at today's format (``config.migrate``), its ``_target_``s
    checked (``run.trust``)."""
    config_file = run_dir / CONFIG_FILE
    refuse_symlink(config_file)
    if not config_file.is_file():
        raise_not_a_run(run_dir)
    try:
        cfg = OmegaConf.load(config_file)
    except (OmegaConfBaseException, ValueError) as err:
        raise ConfigError(f"{config_file} cannot be read: {err}") from None
    check_no_interpolation(cfg, str(config_file))  # first: anything after would resolve it
    check_names(cfg)  # before the schema's names are looked up
    cfg = upgrade(cfg, str(config_file))
    check_targets(cfg, str(config_file), trust)
    return cfg


def never_checkpointed(run_dir: Path) -> bool:
    """A run folder whose run died before its first checkpoint (an env that raised at once, a
    kill -9): it has a config but no step checkpoint."""
    return (
        (run_dir / CONFIG_FILE).is_file()
        and not step_checkpoints(run_dir / CHECKPOINT_DIR)
        and not (run_dir / CHECKPOINT_DIR / "best.pt").exists()
    )


def clear_attempt(run_dir: Path) -> None:
    """Remove what a run that never checkpointed left (events, metrics, model), so that
    starting it again in place leaves one clean record; train.log is kept, and so is a failed
    sweep job's error.txt (removed only when the run finishes). Call it holding the run's
    lock (``lock_run``): the files could be another process's."""
    for pattern in ("events.out.tfevents.*", METRICS_FILE, MODEL_FILE):
        for path in run_dir.glob(pattern):
            if path.is_file() and not path.is_symlink():
                path.unlink()


@contextmanager
def checkpoint_fits(path: Path) -> Iterator[None]:
    """Turn ``load_state_dict``'s shape errors inside into a one-line error about ``path``."""
    try:
        yield
    except RuntimeError as err:
        detail = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), "")
        raise ConfigError(
            f"checkpoint {path} does not fit this run's network ({detail}); it was saved by a "
            "run with another net or env"
        ) from None


def load_weights(module: torch.nn.Module, weights: dict, path: Path) -> None:
    """``module.load_state_dict``, with a one-line error when the shapes do not fit."""
    with checkpoint_fits(path):
        module.load_state_dict(weights)


def claim_run_dir(run_dir: Path) -> None:
    """Make ``run_dir`` (or take it when it is an empty folder) and claim it for one new run:
    its lock file is created exclusively, so a second claimant, or a folder that already holds
    anything, is refused (ConfigError). Symlinks are not followed."""
    if run_dir.is_symlink():
        raise ConfigError("is a symlink; name a real folder for the run")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the folder ({err.strerror}); name another") from None
    if not run_dir.is_dir():
        raise ConfigError("is not a folder; name a new folder for the run")
    if any(run_dir.iterdir()):
        raise ConfigError(
            "already holds files; runs are never overwritten, so name a new folder "
            "(or go on with that run: torchrl train resume=<folder>)"
        )
    try:
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | NOFOLLOW
        os.close(os.open(run_dir / LOCK_FILE, flags, 0o644))
    except FileExistsError:
        raise ConfigError("was claimed by another run just now; name a new folder") from None
    except OSError as err:
        raise ConfigError(f"cannot be written ({err.strerror}); name another folder") from None


def check_new_run(run_dir: Path) -> None:
    """A new run may start in ``run_dir`` only if no run has written there (Hydra's own
    ``.hydra/`` and the claim's lock excepted): ConfigError otherwise."""
    ours = [p.name for p in run_dir.iterdir() if p.name not in (".hydra", LOCK_FILE)]
    if ours:
        raise ConfigError(
            f"{run_dir} already holds a run ({', '.join(sorted(ours)[:3])}); runs are never "
            f"overwritten: go on with it (torchrl train resume={run_dir}) or name a new folder"
        )


@contextmanager
def lock_run(run_dir: Path) -> Iterator[None]:
    """Hold the run folder for one process: two resumes of one run would corrupt it. The lock
    file is never opened through a symlink (ConfigError)."""
    refuse_symlink(run_dir / LOCK_FILE)
    try:  # O_NOFOLLOW too: a symlink planted between the check and the open still fails
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o644)
    except OSError as err:
        raise ConfigError(f"cannot lock {run_dir} ({err.strerror})") from None
    with os.fdopen(fd, "r+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise ConfigError(
                f"{run_dir} is being trained by another process (pid {f.read().strip()}); "
                "wait for it to finish or stop it first"
            ) from None
        f.truncate(0)
        f.write(str(os.getpid()))
        f.flush()
        yield


def open_run(
    command: str, args: list[str], options: dict[str, type]
) -> tuple[Path, dict, DictConfig, Checkpoint]:
    """``torchrl <command> <run folder> key=value...``: the folder, its typed options, and the
    run's config and checkpoint (``checkpoint=`` and ``trust=`` applied)."""
    run_dir, values = parse_run_args(command, args, options)
    trust = parse_trust(values.get("trust", ""))
    cfg, checkpoint = load_run(run_dir, values.get("checkpoint", LAST), trust)
    return run_dir, values, cfg, checkpoint


def parse_run_args(command: str, args: list[str], options: dict[str, type]) -> tuple[Path, dict]:
    """``<run folder> key=value...`` as a folder and typed options (only those in ``options``)."""
    if not args or "=" in args[0]:
        raise ConfigError(f"usage: torchrl {command} <run folder> [{'=... '.join(options)}=...]")
    values = {}
    for arg in args[1:]:
        key, sep, raw = arg.partition("=")
        if not sep or key not in options:
            raise ConfigError(
                f"'{arg}' is not an option of torchrl {command}; options: "
                + ", ".join(f"{k}=<{t.__name__}>" for k, t in options.items())
            )
        values[key] = _parse(key, raw, options[key])
    return Path(args[0]), values


def _parse(key: str, raw: str, kind: type):
    if kind is bool:
        if raw.lower() not in ("true", "false"):
            raise ConfigError(f"{key}={raw} must be true or false")
        return raw.lower() == "true"
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(
            f"{key}={raw} must be {'an' if kind is int else 'a'} {kind.__name__}"
        ) from None
