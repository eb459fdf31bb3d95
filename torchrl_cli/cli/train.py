"""``torchrl train``: check the command line, claim the run folder, hand over to Hydra, and
summarize a sweep at the end."""

from pathlib import Path

from torchrl_cli.errors import ConfigError

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


def cfg_part(args: list[str]) -> str | None:
    """The value of ``--cfg``/``-c`` (``job``, ``hydra`` or ``all``) in any of its spellings."""
    for i, arg in enumerate(args):
        for flag in ("--cfg", "-c"):
            if arg == flag:
                return args[i + 1] if i + 1 < len(args) else None
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
        if arg.startswith("-c") and not arg.startswith(("-cd", "-cp", "-cn", "--")):
            return arg[2:]  # -chydra
    return None


def train_command(args: list[str]) -> int:
    from torchrl_cli.config.compose import check_overrides
    from torchrl_cli.config.user_dir import take_config_dir
    from torchrl_cli.run.build import check_run  # torch and the envs: only to check

    flags, overrides = split_args(args)
    search = next((o for o in overrides if o.lstrip("+").startswith("hparams_search=")), None)
    if search is not None and not search.endswith(("=null", "=")):
        raise ConfigError(
            f"{search} is a search for torchrl tune; run it with: torchrl tune {search.lstrip('+')}"
        )
    if any(o.startswith("resume=") for o in overrides):
        from torchrl_cli.cli.resume import resume_command

        return resume_command(overrides, flags)  # a resume reads the run's config.yaml
    args = take_config_dir(args)  # the user's config folder goes ahead of conf/
    flags, overrides = split_args(args)
    if "-sc" in flags or "--shell-completion" in flags:
        from torchrl_cli.cli.completion import shell_completion

        return shell_completion(args)
    multirun = "-m" in flags or "--multirun" in flags
    runs = not (_NO_RUN_FLAGS & set(flags))
    if multirun and not runs:
        raise ConfigError(
            f"{' '.join(sorted(_NO_RUN_FLAGS & set(flags)))} prints the config of "
            "one run; drop -m/--multirun"
        )
    if "--resolve" in args and cfg_part(args) == "hydra":
        raise ConfigError(
            "--cfg hydra --resolve cannot resolve the run folder's name, which comes from the "
            "job's config (agent.name, env.id); use --cfg all --resolve, or --cfg hydra alone"
        )
    if "--help" in flags or "-h" in flags:
        from torchrl_cli.cli.help import help_text

        print(help_text(overrides))
        return 0
    # a plain run (no Hydra flag) is composed once, here, and run from that config
    composed_run = runs and not flags
    if runs or "--cfg" in flags or "-c" in flags:
        # one-line error and exit 2 on bad input
        cfg = check_overrides(overrides, check_run, multirun, with_hydra=composed_run)
        if runs and multirun and "hydra/launcher=ray_cluster" in overrides:
            from torchrl_cli.cli.ray_check import check_ray_cluster

            check_ray_cluster(overrides)
        elif runs and multirun and any(o.startswith("hydra/launcher=") for o in overrides):
            from torchrl_cli.cli.slurm_check import check_slurm

            check_slurm(overrides)
        if runs:
            claimed = claim_output_dir(cfg, overrides, multirun)
            if claimed and composed_run:
                from omegaconf import read_write

                with read_write(cfg.hydra):
                    cfg.hydra.run.dir = str(claimed)
            elif claimed:
                key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
                args = [*args, f"{key}='{claimed}'"]  # quoted: a comma or '=' must not parse
    if composed_run:
        from torchrl_cli.cli.hydra_app import run_composed

        return run_composed(cfg)
    from torchrl_cli.cli.hydra_app import run_hydra

    failed: list = []
    try:
        code = run_hydra(args)
    finally:  # the summary also after a failed or interrupted sweep
        sweep_dir = override_value(args, "hydra.sweep.dir")
        if runs and multirun and sweep_dir is not None and Path(sweep_dir).is_dir():
            from torchrl_cli.analysis.sweep import summarize_sweep
            from torchrl_cli.tracking.console import make_console

            failed = summarize_sweep(Path(sweep_dir), make_console())
    return code or (1 if failed else 0)


def override_value(overrides: list[str], key: str) -> str | None:
    """The value the last override of ``key`` gives (``key=``, ``+key=`` or ``++key=``), as
    Hydra parses it (quotes removed) and with its interpolations resolved; None if none does."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from torchrl_cli.run.folder import register_resolvers

    register_resolvers()
    value = None
    for override in OverridesParser.create().parse_overrides(
        [o for o in overrides if o.lstrip("+").startswith(f"{key}=")]
    ):
        value = str(override.value())
    if value is not None and "${" in value:
        try:
            value = str(OmegaConf.create({"value": value}).value)
        except Exception:  # a resolver only Hydra knows at run time: ClaimOutputDir checks it
            return value
    return value


def claim_output_dir(cfg, overrides: list[str], multirun: bool) -> Path | None:
    """A fresh run (or sweep) folder, created now so that no later run can take it; None when
    the user named one, which must not hold anything yet: runs are never overwritten."""
    from torchrl_cli.run.folder import MULTIRUN, new_run_dir, run_name

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
    name = MULTIRUN if multirun else run_name(cfg.agent.name, cfg.env.id)
    # absolute: jobs on other processes or machines (Ray) need not share our working directory
    base = new_run_dir(name).resolve()
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}_{n}")
