"""Experiment tracking beside TensorBoard: ``logger.backends`` names where a run's record goes.

A ``Tracker`` is one tracked run in one backend (``TRACKERS``: ``mlflow_tracker``,
``wandb_tracker``, each a module with a ``TRACKER`` class taking ``(cfg, run: RunInfo)`` and a
``check(cfg)``; a new backend is a new module and an entry). It
opens with the resolved config as its parameters, gets every scalar the Logger writes to
TensorBoard, the run folder's files at the end, and the run's outcome. Its ``state`` (the
tracked run's id) is stored in every checkpoint, so that a resumed run reopens the same tracked
run. TensorBoard itself is the Logger's own writer. A backend's package is imported only when
the backend is named, and ``check_backends`` refuses, before anything is built, a backend that
is unknown, not installed, or whose server does not answer.
"""

import importlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from omegaconf import DictConfig

from torchrl_cli.errors import ConfigError, FaultError, did_you_mean, first_line

TENSORBOARD = "tensorboard"
#: backend -> the module holding its ``TRACKER`` class and ``check``; imported only when a run
#: names the backend (its package is an optional extra)
TRACKERS = {
    "mlflow": "torchrl_cli.tracking.mlflow_tracker",
    "wandb": "torchrl_cli.tracking.wandb_tracker",
}
BACKENDS = (TENSORBOARD, *TRACKERS)
FINISHED, INTERRUPTED, FAILED = "finished", "interrupted", "failed"  # a run's outcomes
PROBE_TIMEOUT_S = 3.0  # a tracking server that has not answered by then counts as unreachable


@dataclass(frozen=True)
class RunInfo:
    """What every tracker is opened with: the run's name (its folder's), its resolved config,
    its folder (None: no folder), and the checkpoint's state of this backend's tracked run
    (None: a new one)."""

    name: str
    config: dict
    folder: Path | None
    previous: dict | None


def tracker_module(backend: str) -> ModuleType:
    return importlib.import_module(TRACKERS[backend])


class Tracker(Protocol):
    """One tracked run in one backend."""

    name: str  # the backend: mlflow, wandb

    def describe(self) -> str:
        """The console line saying where the run is tracked and how to look at it."""

    def state(self) -> dict:
        """What reopens this tracked run on a resume (stored in each checkpoint)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Scalars at ``step`` (env steps), named as in TensorBoard."""

    def log_files(self, paths: Sequence[Path]) -> None:
        """The run folder's files (config.yaml, metrics.json, model.pt)."""

    def close(self, outcome: str) -> None:
        """End the tracked run as ``outcome`` (FINISHED, INTERRUPTED or FAILED)."""


def backends(logger_cfg: DictConfig) -> list[str]:
    """The backends ``logger.backends`` names."""
    return list(logger_cfg.backends)


def check_backends(logger_cfg: DictConfig) -> None:
    """ConfigError for an unknown or repeated backend, a backend whose package is missing, or
    a tracking server that does not answer; imports a backend's package only when named."""
    names = backends(logger_cfg)
    for name in names:
        if name not in BACKENDS:
            raise ConfigError(
                f"logger.backends names '{name}'{did_you_mean(name, BACKENDS)}, which is not a "
                f"tracking backend; choose from {', '.join(BACKENDS)}"
            )
    if len(set(names)) < len(names):
        raise ConfigError(f"logger.backends={names} repeats a backend; name each once")
    for name in names:
        if name in TRACKERS:
            tracker_module(name).check(logger_cfg[name])


def open_trackers(
    logger_cfg: DictConfig,
    *,
    name: str,
    config: dict,
    folder: Path | None,
    previous: Mapping[str, dict],
    warn: Callable[[str], None],
) -> list[Tracker]:
    """A tracked run in every backend ``logger.backends`` names besides TensorBoard.

    ``name``: the run's name (its folder's); ``config``: the resolved config; ``folder``: the
    run folder (W&B's files go there by default); ``previous``: the checkpoint's tracker states,
    by backend, which reopen those runs on a resume. A backend that fails to start its run (a
    server gone since the check) is a FaultError naming it.
    """
    trackers: list[Tracker] = []
    backend = TENSORBOARD
    try:
        for backend in backends(logger_cfg):
            if backend in TRACKERS:
                run = RunInfo(name, config, folder, previous.get(backend))
                trackers.append(tracker_module(backend).TRACKER(logger_cfg[backend], run))
    except BaseException as err:
        close_trackers(trackers, FAILED, warn)
        if isinstance(err, ConfigError | FaultError) or not isinstance(err, Exception):
            raise
        raise FaultError(
            f"{backend}: the tracked run could not be started ({first_line(err)}); check "
            f"logger.{backend}.*, or drop {backend} from logger.backends"
        ) from err
    return trackers


class Undelivered(Exception):
    """Raised by a tracker's ``close``: what did not reach its store by the end (the message
    says what and why, and is shown whole)."""


def close_trackers(trackers: Iterable[Tracker], outcome: str, warn: Callable[[str], None]) -> None:
    """Close every tracker; one that fails (a server gone) is a warning: the run's own files
    are written already."""
    for tracker in trackers:
        try:
            tracker.close(outcome)
        except Undelivered as err:
            warn(f"{tracker.name}: {err}")
        except Exception as err:
            warn(f"{tracker.name}: the tracked run could not be closed ({first_line(err)})")


def log_files(trackers: Iterable[Tracker], paths: Sequence[Path], warn: Callable[[str], None]):
    """The run folder's files to every tracker; a failure is a warning (the files are kept)."""
    for tracker in trackers:
        try:
            tracker.log_files(paths)
        except Exception as err:
            warn(f"{tracker.name}: the run's files could not be logged ({first_line(err)})")


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as ``{"agent.lr": "0.0003", ...}``: nested mappings joined by dots,
    strings as they are, anything else (numbers, booleans, null, lists) as JSON."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_params(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, str) else json.dumps(value)
    return flat


def require(package: str) -> ModuleType:
    """``import package`` for a backend, or a one-line ConfigError with the install command."""
    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise ConfigError(
            f"logger.backends names {package}, which needs the {package} package "
            f"({first_line(err)}); pip install 'torchrl-cli[{package}]'"
        ) from None


def check_reachable(url: str, what: str, fix: str) -> None:
    """ConfigError unless the server at ``url`` answers within PROBE_TIMEOUT_S. Any HTTP
    answer counts (even an error status, or a TLS certificate the client may be set to
    accept): the check is for a server nobody runs, not for its credentials."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return
    except urllib.error.URLError as err:
        if "CERTIFICATE" in str(err.reason).upper():
            return
        raise ConfigError(f"{what} does not answer ({err.reason}); {fix}") from None
    except (OSError, ValueError) as err:  # a timeout, a malformed URL
        raise ConfigError(f"{what} does not answer ({first_line(err)}); {fix}") from None
