"""The ``torchrl`` command: ``train`` (Hydra app), ``configs`` and ``compare``."""

import sys
from datetime import datetime
from pathlib import Path

from rich.console import Console

from torchrl_cli.errors import ConfigError

USAGE = """usage: torchrl <command> [overrides...] [hydra flags]

commands:
  train     train an agent: torchrl train agent=ppo_clip env=CartPole-v1 agent.lr=1e-3 seed=3
            (Hydra flags work: -m/--multirun, --cfg job, --help, --info)
  configs   list the agents, envs, nets, experiments and tuned pairs available
  eval      replay a run's policy: torchrl eval <run folder> [checkpoint=last|best|<file>]
            [episodes=N] [seed=N] [video=true] [render=true]
  export    write a run's policy as a torch.export file: torchrl export <run folder>
            [checkpoint=last|best|<file>] [out=<file>]
  compare   compare runs: torchrl compare <run or sweep folders...> [--out DIR]
            [--metric eval|train]: a table per configuration across seeds and compare.png

examples:
  torchrl train                                   # PPO-clip on CartPole-v1
  torchrl train env=Pendulum-v1                   # continuous actions
  torchrl train experiment=cartpole_solve         # a named preset from conf/experiment/
  torchrl train -m seed=0,1,2                     # a sweep, one run folder per job
  torchrl train resume=runs/2026-11-23/10-00-00_ppo_clip_CartPole-v1   # go on after Ctrl-C
  torchrl eval runs/2026-11-23/10-00-00_ppo_clip_CartPole-v1 video=true
  torchrl compare runs/2026-11-23                 # every run below a folder, grouped by config
"""
COMMANDS = ("train", "configs", "eval", "export", "compare")
# Hydra flags that print something instead of running the app.
_NO_RUN_FLAGS = {
    "--cfg",
    "-c",
    "--help",
    "-h",
    "--hydra-help",
    "--info",
    "-i",
    "--shell-completion",
    "-sc",
}
_FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, args = argv[0], argv[1:]
    try:
        if command == "train":
            return train_command(args)
        if command == "configs":
            from torchrl_cli.listing import print_configs

            print_configs(Console())
            return 0
        if command == "eval":
            from torchrl_cli.evaluation import eval_command

            return eval_command(args)
        if command == "export":
            from torchrl_cli.export import export_command

            return export_command(args)
        if command == "compare":
            from torchrl_cli.compare import compare_command

            return compare_command(args)
        from torchrl_cli.errors import did_you_mean

        raise ConfigError(
            f"unknown command '{command}'{did_you_mean(command, COMMANDS)}; "
            f"choose one of: {', '.join(COMMANDS)}"
        )
    except ConfigError as err:
        print(f"torchrl: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C: abort at once, without a traceback
        print("torchrl: interrupted", file=sys.stderr)
        return 130


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """Hydra flag names (``--cfg=job`` and ``-cjob`` count as ``--cfg``) and key=value overrides."""
    flags, overrides = [], []
    expect_value = False
    for arg in args:
        if expect_value:
            expect_value = False
        elif arg.startswith("-"):
            name = arg.split("=", 1)[0]
            if name not in _NO_RUN_FLAGS | _FLAGS_WITH_VALUE | {"-m", "--multirun"}:
                name = arg[:2]  # a short flag with its value glued on: -cjob
            flags.append(name)
            expect_value = name == arg and name in _FLAGS_WITH_VALUE
        else:
            overrides.append(arg)
    return flags, overrides


def train_command(args: list[str]) -> int:
    from torchrl_cli.compose import check_overrides

    flags, overrides = split_args(args)
    if any(o.startswith("resume=") for o in overrides):
        from torchrl_cli.resume import resume_command

        return resume_command(overrides, flags)
    multirun = "-m" in flags or "--multirun" in flags
    runs = not (_NO_RUN_FLAGS & set(flags))
    if multirun and not runs:
        raise ConfigError(
            f"{' '.join(sorted(_NO_RUN_FLAGS & set(flags)))} prints the config of "
            "one run; drop -m/--multirun"
        )
    if runs or "--cfg" in flags or "-c" in flags:
        cfg = check_overrides(overrides, multirun)  # one-line error and exit 2 on bad input
        if runs and multirun and "hydra/launcher=ray_cluster" in overrides:
            from torchrl_cli.ray_check import check_ray_cluster

            check_ray_cluster(overrides)
        if runs:
            claimed = claim_output_dir(cfg, overrides, multirun)
            args = [*args, claimed] if claimed else args
    from torchrl_cli.app import run_hydra

    failed: list = []
    try:
        code = run_hydra(args)
    finally:  # the summary also after a failed or interrupted sweep
        sweep_dir = override_value(args, "hydra.sweep.dir")
        if runs and multirun and sweep_dir is not None and Path(sweep_dir).is_dir():
            from torchrl_cli.sweep import summarize_sweep, write_best_tuned

            failed = summarize_sweep(Path(sweep_dir), Console())
            write_best_tuned(Path(sweep_dir), Console())
    return code or (1 if failed else 0)


def override_value(overrides: list[str], key: str) -> str | None:
    """The value the last ``key=value`` override gives (quotes removed), or None."""
    value = next((o.split("=", 1)[1] for o in reversed(overrides) if o.startswith(f"{key}=")), None)
    return value.strip("'") if value is not None else None


def claim_output_dir(cfg, overrides: list[str], multirun: bool) -> str | None:
    """The override naming a fresh run (or sweep) folder, created now so that no later run can
    take it; None when the user named one, which must not hold anything yet: runs are never
    overwritten."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = override_value(overrides, key)
    if given is not None:
        path = Path(given)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ConfigError(
                f"{key}={given} already exists and is not an empty folder; runs "
                "are never overwritten, so name a new folder"
            )
        return None
    now = datetime.now()
    name = "multirun" if multirun else f"{cfg.agent.name}_{cfg.env.id.replace('/', '-')}"
    # absolute: jobs on other processes or machines (Ray) need not share our working directory
    base = Path("runs").resolve() / now.strftime("%Y-%m-%d") / f"{now:%H-%M-%S}_{name}"
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return f"{key}='{path}'"  # quoted: a comma or '=' in the path must not parse
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}_{n}")


if __name__ == "__main__":
    sys.exit(main())
