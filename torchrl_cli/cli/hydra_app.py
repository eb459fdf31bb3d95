"""The Hydra application behind ``torchrl train``."""

import os
import signal
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, read_write

from torchrl_cli.config import CONFIG_NAME, config_dir, register_configs
from torchrl_cli.errors import ConfigError, FaultError, debugging
from torchrl_cli.run.folder import claim_run_dir, register_resolvers


def job_cpus(torch_threads: int | None, n_envs: int, vectorization: str) -> int:
    """The cores one job keeps busy, for a launcher preset's ``cpus_per_task``: torch's
    threads (null, chosen per net: one, and a conv net uses what the job is given), and one
    per env copy when the copies step in subprocesses (``async``; ``auto`` picks it only where
    the job's cores allow, ``envs.gym_env.auto_process_vectorization``)."""
    threads = 1 if torch_threads in (None, "None", "null") else int(torch_threads)
    return threads + (int(n_envs) if vectorization == "async" else 0)


def register_app_resolvers() -> None:
    """The resolvers of conf/config.yaml (the folders') and of the launcher presets."""
    register_resolvers()
    if not OmegaConf.has_resolver("torchrl_job_cpus"):
        OmegaConf.register_new_resolver("torchrl_job_cpus", job_cpus)


# at import: sweep workers (joblib, Ray, submitit) import this module to unpickle hydra_main,
# and resolve the job's folder name there
register_app_resolvers()


class ClaimOutputDir(Callback):
    """Hydra callback: the run (or sweep) folder, as Hydra resolved it from whatever the command
    line said (quotes, interpolations, ``+``/``++``), must be new or empty; it is claimed with
    an exclusive create before Hydra writes anything into it. Runs are never overwritten."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        claim(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        claim(config.hydra.sweep.dir, "hydra.sweep.dir")


def claim(folder: str, key: str) -> None:
    try:
        claim_run_dir(Path(folder))
    except ConfigError as err:
        print(f"torchrl: error: {key}={folder}: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def hydra_main(cfg: DictConfig) -> float:
    """Train one job; returns the final mean return so that sweepers can optimize it."""
    from torchrl_cli.run.train import train, train_seeds

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    # a sweep's jobs may run side by side on one screen: each line says whose it is
    tag = f"[job {hydra_cfg.job.num}]" if hydra_cfg.mode == RunMode.MULTIRUN else None
    try:
        if cfg.seeds:
            metrics = train_seeds(cfg, run_dir, tag=tag)
        else:
            metrics = train(cfg, run_dir=run_dir, tag=tag)
    except (ConfigError, FaultError) as err:
        if debugging():
            raise
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise RuntimeError(str(err)) from None  # a failed job; the sweep goes on
        print(f"torchrl: error: {err}", file=sys.stderr)
        raise SystemExit(2 if isinstance(err, ConfigError) else 1) from None
    if metrics["interrupted"]:
        raise SystemExit(128 + signal.Signals[metrics["interrupted"]].value)
    return metrics["mean_return"]


def run_composed(cfg: DictConfig) -> int:
    """One run of the Hydra app from ``cfg``, the config ``check_overrides`` composed with its
    ``hydra`` node: the steps of Hydra's own entry for a run (logging, the callbacks, ``.hydra/``,
    the job), without composing the config twice more as that entry does. Returns the exit
    code, and reports a failed job as Hydra does."""
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path, run_and_report
    from hydra.core.utils import configure_log, run_job
    from hydra.types import HydraContext

    if debugging():
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    with read_write(cfg.hydra):
        cfg.hydra.mode = RunMode.RUN
    configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
    callbacks = Callbacks(cfg)
    # a run's job never loads configs: the loader is there because the context must hold one
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(config_dir())))

    def run() -> None:
        callbacks.on_run_start(config=cfg, config_name=CONFIG_NAME)
        ret = run_job(
            hydra_context=HydraContext(config_loader=loader, callbacks=callbacks),
            task_function=hydra_main,
            config=cfg,
            job_dir_key="hydra.run.dir",
            job_subdir_key=None,
        )
        callbacks.on_run_end(config=cfg, config_name=CONFIG_NAME, job_return=ret)
        _ = ret.return_value  # raises the job's exception, which run_and_report reports

    try:
        run_and_report(run)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    return 0


def run_hydra(args: list[str], prog: str = "torchrl train") -> int:
    """Run the Hydra app with ``args`` as its command line (``prog``: the program name Hydra
    sees, e.g. in the shell-completion script); returns the exit code."""
    if debugging():  # Hydra's own switch for the traceback of a failed job
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    register_configs(args)
    app = hydra.main(config_path=str(config_dir()), config_name=CONFIG_NAME, version_base="1.3")(
        hydra_main
    )
    sys.argv = [prog, *args]
    try:
        app()
    except SystemExit as done:  # Hydra exits 1 after reporting a failed job
        return done.code if isinstance(done.code, int) else 1
    return 0
