"""Weights & Biases tracking (``logger.backends=[...,wandb]``, the wandb extra).

``logger.wandb.mode=offline`` (the default) writes the run to files only, under
``<run folder>/wandb/offline-run-<time>-<id>/`` (``logger.wandb.dir`` moves it), which
``wandb sync`` uploads later; ``online`` streams to the server once ``wandb login`` was run.
The config is the run's W&B config, every scalar TensorBoard gets is logged against
``env_steps`` (W&B's own step counter only counts calls), and the run folder's config.yaml,
metrics.json and model.pt are copied into the run's files, under ``torchrl/`` (W&B writes a
config.yaml of its own there). W&B's console capture and system metrics are off: train.log
holds the console already.
"""

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from omegaconf import DictConfig

from torchrl_cli.errors import ConfigError
from torchrl_cli.tracking.base import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    RunInfo,
    check_reachable,
    require,
)

MODES = ("offline", "online")
FILES = "torchrl"  # the run folder's files, in the W&B run's files
STEP = "env_steps"  # the x-axis of every logged scalar
EXIT_CODES = {FINISHED: 0, INTERRUPTED: 130, FAILED: 1}  # W&B marks a nonzero exit failed


DEFAULT_MODE, DEFAULT_PROJECT = "offline", "torchrl-cli"


def wandb_settings(cfg: DictConfig) -> tuple[str, str, str | None]:
    """``(mode, project, dir)``: ``logger.wandb.*``, or where null W&B's own variables
    (WANDB_MODE, WANDB_PROJECT, WANDB_DIR) when set, else offline, torchrl-cli and the run
    folder (None). WANDB_ENTITY and WANDB_API_KEY are W&B's to read."""
    mode = cfg.mode if cfg.mode is not None else os.environ.get("WANDB_MODE") or DEFAULT_MODE
    project = cfg.project if cfg.project is not None else os.environ.get("WANDB_PROJECT")
    folder = cfg.dir if cfg.dir is not None else os.environ.get("WANDB_DIR") or None
    return mode, project or DEFAULT_PROJECT, folder


def check(cfg: DictConfig) -> None:
    """The package imports and the mode is known; online, a login exists (nothing is asked
    for on the terminal) and the W&B server answers within a few seconds."""
    wandb = require("wandb")
    mode = wandb_settings(cfg)[0]
    if mode not in MODES:
        raise ConfigError(
            f"logger.wandb.mode={mode} is not a W&B mode here (WANDB_MODE when null); choose "
            f"{' or '.join(MODES)}"
        )
    if mode == "online":
        if not wandb.login(verify=False, prompt=False):
            raise ConfigError(
                "logger.wandb.mode=online needs a W&B login; run `wandb login` (or set "
                "WANDB_API_KEY), or keep logger.wandb.mode=offline"
            )
        url = wandb.setup().settings.base_url
        check_reachable(
            url, f"the W&B server {url}", "check the network, or use logger.wandb.mode=offline"
        )


class WandbTracker:
    """A W&B run: a new one, or on a resume the checkpoint's run id again (``resume="allow"``:
    online it goes on with that run; offline its next part is a folder of its own, and
    ``wandb sync`` uploads the parts of one run in order)."""

    name = "wandb"

    def __init__(
        self,
        cfg: DictConfig,
        run: RunInfo,
    ):
        name, config, folder, previous = run.name, run.config, run.folder, run.previous
        import wandb

        mode, project, own_dir = wandb_settings(cfg)
        folder_for_files = own_dir or folder
        if folder_for_files is not None:
            Path(folder_for_files).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=project,
            entity=cfg.entity,
            name=name,
            id=previous["run_id"] if previous else None,
            resume="allow" if previous else None,
            mode=mode,
            dir=None if folder_for_files is None else str(folder_for_files),
            settings=wandb.Settings(
                console="off",
                x_disable_stats=True,
                disable_git=True,
                save_code=False,
                x_save_requirements=False,
                silent=True,
            ),
        )
        self.resumed = previous is not None
        self.run.config.update(config, allow_val_change=True)  # a resume may change a budget
        self.run.define_metric(STEP)
        self.run.define_metric("*", step_metric=STEP)

    def describe(self) -> str:
        what = "resumed run" if self.resumed else "run"
        if self.run.offline:
            where = Path(self.run.dir).resolve().parent  # the run's folder, above its files/
            parts = where.parent / "offline-run-*"  # a resumed run's parts, uploaded in order
            return f"wandb: offline {what} {self.run.id} in {where} (upload: wandb sync {parts})"
        return f"wandb: {what} {self.run.id}: {self.run.url}"

    def state(self) -> dict:
        return {"run_id": self.run.id}

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log({**metrics, STEP: step})

    def log_files(self, paths: Sequence[Path]) -> None:
        """Copies in the run's files (W&B would otherwise link to the originals)."""
        files = Path(self.run.dir)
        (files / FILES).mkdir(exist_ok=True)
        for path in paths:
            shutil.copy2(path, files / FILES / path.name)
            self.run.save(str(files / FILES / path.name), base_path=str(files), policy="now")

    def close(self, outcome: str) -> None:
        self.run.finish(exit_code=EXIT_CODES[outcome])


TRACKER = WandbTracker  # what tracking.base.open_trackers makes for this backend
