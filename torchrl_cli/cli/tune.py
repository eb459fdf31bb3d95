"""``torchrl tune hparams_search=<preset> [overrides]``: an Optuna study of the preset's search
space, its trials trained in this process one after another (``tune.study``)."""

import shlex
from collections.abc import Callable
from pathlib import Path

from torchrl_cli.errors import ConfigError

USAGE = """usage: torchrl tune hparams_search=<preset> [overrides...]

Runs tune.n_trials trials of the preset's search space (conf/hparams_search/<preset>.yaml,
its tune: node) in this process. A trial trains each seed of `seeds` and scores the mean
final evaluation; its evaluations go to the pruner, which stops a trial that falls behind.
Processes that name the same tune.study_name and tune.storage feed one study. The study's
folder, runs/tune/<study>/, gets the trials' runs, history.png, importance.png, study.json
and the best trial as tuned/<agent>/<env>.yaml. A key set on the command line is fixed.

examples:
  torchrl tune hparams_search=ppo_clip_cartpole
  torchrl tune hparams_search=ppo_clip_cartpole tune.study_name=quick tune.n_trials=12
      'seeds=[0,1]' max_steps=20000
  torchrl tune hparams_search=ppo_clip_cartpole tune.study_name=hb tune.pruner.name=hyperband
      agent.gamma=0.99
  torchrl tune hparams_search=ppo_clip_cartpole tune.study_name=shared
      tune.storage=sqlite:///$PWD/study.db          # the same command on every worker
"""


def tune_command(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(USAGE)
        return 0
    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise ConfigError(
            f"torchrl tune takes no flags ({' '.join(flags)}); give key=value overrides"
        )
    presets = [a.split("=", 1)[1] for a in args if a.lstrip("+").startswith("hparams_search=")]
    if not presets or not presets[-1] or presets[-1] == "null":
        from torchrl_cli.cli.configs import options

        raise ConfigError(
            "torchrl tune needs a search: hparams_search=<preset>, one of: "
            f"{', '.join(options('hparams_search'))}"
        )
    check_single_values(args)
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise ConfigError(
            "torchrl tune needs optuna, which is not installed; pip install 'torchrl-cli[tune]'"
        )
    from torchrl_cli.config.compose import check_overrides
    from torchrl_cli.run.build import check_run

    cfg = check_overrides(args, check_run)  # the preset and the overrides compose and validate
    if cfg.tune is None:
        raise ConfigError(
            f"hparams_search={presets[-1]} has no tune: node; a preset for torchrl tune sets "
            "tune.params (see conf/hparams_search/ppo_clip_cartpole.yaml)"
        )
    from torchrl_cli.tracking.console import make_console
    from torchrl_cli.tune.results import write_results
    from torchrl_cli.tune.study import run_study

    command = shlex.join(["torchrl", "tune", *args])
    return run_study(cfg, args, presets[-1], train_quietly, make_console(), command, write_results)


def check_single_values(args: list[str]) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    from torchrl_cli.config.compose import parse_error

    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except OverrideParseException as err:
        raise ConfigError(parse_error(err)) from None
    for override in parsed:
        if override.is_sweep_override():
            raise ConfigError(
                f"'{override.input_line}' is a sweep; torchrl tune takes one value per key (its "
                "search lives in tune.params: {low: a, high: b} or {choices: [...]})"
            )


def train_quietly(cfg, run_dir: Path, on_evaluation: Callable, tag: str) -> dict:
    """One seed of a trial: ``train`` with its lines in train.log only (the study prints one
    line per trial)."""
    from rich.console import Console

    from torchrl_cli.run.train import train

    return train(cfg, run_dir, Console(quiet=True), tag=tag, on_evaluation=on_evaluation)
