"""Fail fast, with one line, when a sweep's launcher submits to SLURM from a machine without
SLURM's commands (submitit would raise only after the sweep folder was made)."""

import shutil

from torchrl_cli.errors import ConfigError

LAUNCHER_KEYS = ("hydra/launcher=", "hydra.launcher.")


def launcher_target(overrides: list[str]) -> str | None:
    """The ``_target_`` of the launcher the command line chooses (Hydra's node only)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from torchrl_cli.config import CONFIG_NAME, config_dir, register_configs

    chosen = [o for o in overrides if o.lstrip("+").startswith(LAUNCHER_KEYS)]
    register_configs(chosen)
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(CONFIG_NAME, overrides=chosen, return_hydra_config=True)
    return OmegaConf.select(cfg, "hydra.launcher._target_")


def check_slurm(overrides: list[str]) -> None:
    """ConfigError when the launcher is submitit's SLURM one and ``srun`` is not on PATH."""
    target = launcher_target(overrides) or ""
    if target.endswith(".SlurmLauncher") and shutil.which("srun") is None:
        launcher = next(o for o in overrides if o.startswith("hydra/launcher="))
        raise ConfigError(
            f"{launcher} submits the jobs to SLURM, and this machine has no srun (SLURM's "
            "commands); run the sweep on the cluster's login node, or try its jobs here with "
            "hydra/launcher=slurm_local"
        )
