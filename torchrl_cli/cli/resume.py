"""``torchrl train resume=<run folder> [overrides]``: go on training a run where it stopped."""

import json
import signal
from pathlib import Path

from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from torchrl_cli.errors import ConfigError
from torchrl_cli.run.checkpoint import LAST, Checkpoint
from torchrl_cli.run.folder import clear_attempt, load_config, load_run, never_checkpointed
from torchrl_cli.run.trust import parse_trust

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
    changes = [o for o in overrides if not o.startswith(("resume=", "trust="))]
    from torchrl_cli.run.train import train

    if never_checkpointed(run_dir):  # it died before its first checkpoint: start it again
        cfg = load_config(run_dir, trust)
        for change in changes:
            apply_override(cfg, change, run_dir)
        clear_attempt(run_dir)
        print(f"{run_dir} has no checkpoint yet: starting it again from the start, in place")
        metrics = train(cfg, run_dir, restart=True)
    else:
        cfg, checkpoint = load_run(run_dir, LAST, trust)
        for change in changes:
            apply_override(cfg, change, run_dir)
        check_not_finished(run_dir, checkpoint, changes)
        metrics = train(cfg, run_dir, resume=checkpoint)
    if metrics["interrupted"]:
        return 128 + signal.Signals[metrics["interrupted"]].value
    return 0


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
