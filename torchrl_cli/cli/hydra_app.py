"""The Hydra application behind ``torchrl train``."""

import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from torchrl_cli.config import CONFIG_NAME, config_dir, register_configs
from torchrl_cli.errors import ConfigError
from torchrl_cli.run.folder import register_resolvers

# at import: sweep workers (joblib, Ray) import this module to unpickle hydra_main, and resolve
# the job's folder name there
register_resolvers()


def hydra_main(cfg: DictConfig) -> float:
    """Train one job; returns the final mean return so that sweepers can optimize it."""
    from torchrl_cli.run.train import train, train_seeds

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = train_seeds(cfg, run_dir) if cfg.seeds else train(cfg, run_dir=run_dir)
    except ConfigError as err:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise RuntimeError(str(err)) from None  # a failed job; the sweep goes on
        print(f"torchrl: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if metrics["interrupted"]:
        raise SystemExit(128 + signal.Signals[metrics["interrupted"]].value)
    return metrics["mean_return"]


def run_hydra(args: list[str]) -> int:
    """Run the Hydra app with ``args`` as its command line; returns the exit code."""
    register_configs(args)
    app = hydra.main(config_path=str(config_dir()), config_name=CONFIG_NAME, version_base="1.3")(
        hydra_main
    )
    sys.argv = ["torchrl train", *args]
    try:
        app()
    except SystemExit as done:  # Hydra exits 1 after reporting a failed job
        return done.code if isinstance(done.code, int) else 1
    return 0
