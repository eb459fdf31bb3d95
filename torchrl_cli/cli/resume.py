"""``torchrl train resume=<run folder> [overrides]``: go on training a run where it stopped."""

import json
import signal
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from torchrl_cli.config.migrate import upgrade
from torchrl_cli.config.schema import LoggerConfig
from torchrl_cli.errors import ConfigError
from torchrl_cli.run.checkpoint import LAST, Checkpoint
from torchrl_cli.run.folder import CONFIG_FILE, load_config, load_run, never_checkpointed
from torchrl_cli.run.trust import leaves, parse_trust
from torchrl_cli.tracking.base import BACKENDS, TENSORBOARD
from torchrl_cli.tracking.base import backends as backends_of

# What a resume may change: budgets, schedules of evaluation and checkpoints, where it runs and
# what it shows. Anything else would make the rest of the run another experiment.
RESUMABLE = (
    "max_steps",
    "max_iters",
    "max_episodes",
    "target_return",
    "eval_freq",
    "eval_episodes",
    "checkpoint_freq",
    "keep_checkpoints",
    "torch_threads",
    "device",
    "logger.",
)
GROUPS = {"agent": "name", "env": "id", "net": "name", "memory": "kind"}
BUDGETS = ("max_steps", "max_iters", "max_episodes", "target_return")


def resume_command(overrides: list[str], flags: list[str]) -> int:
    """Resume the run folder that ``resume=<folder>`` names, in that folder."""
    if flags:
        raise ConfigError(f"resume=... takes no Hydra flags ({' '.join(flags)}); drop them")
    run_dir = Path(next(o for o in overrides if o.startswith("resume=")).split("=", 1)[1])
    trust = parse_trust(",".join(o.split("=", 1)[1] for o in overrides if o.startswith("trust=")))
    # checkpoint=<file>: go on from another checkpoint than the newest (a damaged one's advice)
    which = [o.split("=", 1)[1] for o in overrides if o.startswith("checkpoint=")]
    changes = [o for o in overrides if not o.startswith(("resume=", "trust=", "checkpoint="))]
    from torchrl_cli.run.train import train

    if never_checkpointed(run_dir):  # it died before its first checkpoint: start it again
        cfg = load_config(run_dir, trust)
        tracking_from_command_line(cfg, {}, run_dir)
        for change in changes:
            apply_override(cfg, change, run_dir)
        metrics = train(cfg, run_dir, restart=True)
    else:
        cfg, checkpoint = load_run(run_dir, which[-1] if which else LAST, trust)
        check_unedited(cfg, checkpoint, run_dir)
        tracking_from_command_line(cfg, checkpoint.tracking, run_dir)
        for change in changes:
            apply_override(cfg, change, run_dir)
        check_not_finished(run_dir, checkpoint, changes)
        metrics = train(cfg, run_dir, resume=checkpoint)
    if metrics["interrupted"]:
        return 128 + signal.Signals[metrics["interrupted"]].value
    return 0


def check_unedited(cfg: DictConfig, checkpoint: Checkpoint, run_dir: Path) -> None:
    """ConfigError naming the first key whose value in the folder's config.yaml differs from
    the config the checkpoint recorded (a hand edit would silently make the rest of the run
    another experiment); keys a resume may change (RESUMABLE) may differ, since a resume that
    changed one rewrites config.yaml before its first checkpoint. Both are compared at today's
    format (``config.migrate.upgrade``)."""
    try:
        # at today's format, as the folder's config.yaml was read (config.migrate)
        recorded = upgrade(OmegaConf.create(checkpoint.config), str(checkpoint.path))
        recorded = OmegaConf.to_container(recorded, resolve=False)
    except (OmegaConfBaseException, ValueError) as err:
        raise ConfigError(
            f"checkpoint {checkpoint.path} records a config that cannot be read ({err}); "
            "pick another checkpoint"
        ) from None
    if not isinstance(recorded, dict):
        raise ConfigError(f"checkpoint {checkpoint.path} records no config; pick another")
    theirs = dict(leaves(recorded))
    ours = dict(leaves(OmegaConf.to_container(cfg, resolve=False)))
    for key in sorted(set(theirs) | set(ours)):
        if key.startswith(RESUMABLE) or theirs.get(key, MISSING) == ours.get(key, MISSING):
            continue
        saved = f"{key}={shown(theirs[key])}" if key in theirs else f"no {key}"
        now = f"{key}={shown(ours[key])}" if key in ours else f"no {key}"
        raise ConfigError(
            f"{run_dir / CONFIG_FILE} has {now}, but its checkpoint {checkpoint.path.name} "
            f"was trained with {saved}: the file was edited; restore {saved} there (a resume "
            "goes on with the same experiment; it may change budgets and schedules on the "
            "command line), or start a new run"
        )


MISSING = object()


def shown(value) -> str:
    text = "null" if value is None else str(value)
    return repr(text[:60]) if not text.isprintable() else text[:60]


def tracking_from_command_line(cfg: DictConfig, recorded: dict, run_dir: Path) -> None:
    """Where a resumed run's record goes comes from the user, never from the run folder: a
    config.yaml could name any tracking server or file. The backends besides TensorBoard are
    those whose tracked runs the checkpoint records (``recorded``: reopened), their settings
    the schema's defaults (which honour MLFLOW_TRACKING_URI and WANDB_*); ``logger.*`` on the
    command line changes them. A folder setting left unused is said in one line."""
    logger = cfg.logger
    folder_backends = backends_of(logger)
    backends = [TENSORBOARD] if TENSORBOARD in folder_backends else []
    backends += [name for name in BACKENDS if name in recorded and name != TENSORBOARD]
    defaults = OmegaConf.structured(LoggerConfig)
    unused = [
        f"{key}={shown(value)}"
        for key, value in leaves(OmegaConf.to_container(logger, resolve=False), "logger")
        if key.startswith(("logger.mlflow.", "logger.wandb."))
        and value != OmegaConf.select(defaults, key.removeprefix("logger."), default=MISSING)
    ]
    dropped = [name for name in folder_backends if name not in backends]
    with open_dict(cfg):
        cfg.logger.backends = backends
        cfg.logger.mlflow = defaults.mlflow
        cfg.logger.wandb = defaults.wandb
    if unused or dropped:
        what = [f"logger.backends {', '.join(dropped)}"] if dropped else []
        print(
            f"note: {run_dir / CONFIG_FILE} names tracking settings that a resume does not "
            f"take from a run folder ({', '.join(what + unused)}); give them on the command "
            "line to use them"
        )


def apply_override(cfg, override: str, run_dir: Path) -> None:
    """Set ``key=value`` in ``cfg`` when a resume may change ``key``; one-line error if not."""
    key, sep, _ = override.partition("=")
    if not sep or key.startswith(("+", "~")):
        raise ConfigError(f"'{override}' is not key=value; a resume only changes values")
    try:
        value = OmegaConf.select(OmegaConf.from_dotlist([override]), key)
    except OmegaConfBaseException as err:
        raise ConfigError(f"cannot parse '{override}': {err}") from None
    if key in GROUPS:  # a config group: compare the option's name
        key = f"{key}.{GROUPS[key]}"
    current = OmegaConf.select(cfg, key, default="<missing>")
    if current == "<missing>":
        raise ConfigError(f"'{key}' is not a key of the config of {run_dir}")
    if current == value:
        return
    if not key.startswith(RESUMABLE):
        raise ConfigError(
            f"{override} conflicts with {run_dir}, which has {key}={current}; a resume goes on "
            f"with the same run and may only change {', '.join(k.rstrip('.') for k in RESUMABLE)}; "
            "start a new run for another setting"
        )
    with open_dict(cfg):
        OmegaConf.update(cfg, key, value)


def check_not_finished(run_dir: Path, checkpoint: Checkpoint, changes: list[str]) -> None:
    """A finished run resumes only with a new budget."""
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.is_file():
        return
    try:
        metrics = json.loads(metrics_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return  # a partial write from a killed run: the checkpoint is what counts
    steps = checkpoint.env_steps
    finished = metrics.get("interrupted") is None and metrics.get("env_steps") == steps
    if finished and not any(c.startswith(BUDGETS) for c in changes):
        raise ConfigError(
            f"{run_dir} already finished ({steps} env steps); give it a larger budget to train "
            f"on, e.g. torchrl train resume={run_dir} max_steps={2 * steps}"
        )
