"""MLflow tracking (``logger.backends=[...,mlflow]``, the mlflow extra): one MLflow run per run.

Parameters are the resolved config (``agent.lr``, ...), metrics every scalar TensorBoard gets
at the same env steps, artifacts the run folder's config.yaml, metrics.json and model.pt. The
store is MLFLOW_TRACKING_URI when set (MLflow's own variable), else ``sqlite:///runs/mlflow.db``
with artifacts in ``runs/mlruns/`` (MLflow 3's file store, ``./mlruns``, refuses to open unless
MLFLOW_ALLOW_FILE_STORE=true): ``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``
shows the runs. Scalars are buffered and written every FLUSH_EVERY_S seconds, since one
write to SQLite costs ~20 ms (it syncs the file), and at the end.
"""

import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from omegaconf import DictConfig

from torchrl_cli.errors import ConfigError, first_line
from torchrl_cli.tracking.base import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    PROBE_TIMEOUT_S,
    RunInfo,
    check_reachable,
    flat_params,
    require,
)
from torchrl_cli.utils import RUNS_DIR

FLUSH_EVERY_S = 10.0
BATCH = 100  # MLflow takes at most 100 parameters and 1000 metrics in one log_batch
STATUS = {FINISHED: "FINISHED", INTERRUPTED: "KILLED", FAILED: "FAILED"}
RESUMED_TAG = "torchrl.resumed."  # a parameter a resume changed (MLflow's are write-once)
START_SERVER = "start the server (mlflow server) or give another tracking_uri"
OTHER_STORE = "give a sqlite:///<file>.db, a database or an http(s):// server"


DEFAULT_STORE = "mlflow.db"  # in the runs folder (utils.RUNS_DIR), artifacts in mlruns/


def tracking_uri(cfg: DictConfig) -> str:
    """``logger.mlflow.tracking_uri``; null: MLflow's own MLFLOW_TRACKING_URI when set, else
    ``sqlite:///runs/mlflow.db`` (the runs folder made when missing)."""
    if cfg.tracking_uri is not None:
        return cfg.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    Path(RUNS_DIR).mkdir(exist_ok=True)
    return f"sqlite:///{RUNS_DIR}/{DEFAULT_STORE}"


def artifact_location(uri: str) -> str | None:
    """Where a new experiment of an SQLite store keeps its artifacts: ``mlruns/`` beside the
    database file (MLflow's own default, ``./mlruns``, would litter the working folder); a
    server or another database decides for itself (None)."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    return (database.parent / "mlruns").resolve().as_uri()


def check(cfg: DictConfig) -> None:
    """The package imports and the store opens (an SQLite file is created then); an http(s)
    server must answer, as an MLflow server, within a few seconds (MLflow itself would retry
    for minutes)."""
    require("mlflow")
    uri = tracking_uri(cfg)
    remote = urlparse(uri).scheme in ("http", "https")
    if remote:
        check_reachable(uri, f"logger.mlflow.tracking_uri={uri}", START_SERVER)
    store = client(uri)
    with quick_requests():
        try:
            store.get_experiment_by_name(cfg.experiment)
        except Exception as err:
            problem = "does not answer as an MLflow server" if remote else "cannot be read"
            fix = START_SERVER if remote else OTHER_STORE
            raise ConfigError(
                f"logger.mlflow.tracking_uri={uri} {problem} ({first_line(err)}); {fix}"
            ) from None


@contextmanager
def quick_requests() -> Iterator[None]:
    """MLflow's HTTP requests without retries, and timing out after PROBE_TIMEOUT_S."""
    quick = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(round(PROBE_TIMEOUT_S)),
    }
    saved = {key: os.environ.get(key) for key in quick}
    os.environ.update(quick)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value


def client(uri: str):
    """An MlflowClient of ``uri``, opened (its store created); ConfigError if it cannot be.
    MLflow's INFO lines (creating the tables of a new database) stay off the console."""
    require("mlflow")
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():  # SQLAlchemy's deprecation notes inside MLflow
            warnings.simplefilter("ignore")
            return MlflowClient(uri)
    except Exception as err:
        raise ConfigError(
            f"logger.mlflow.tracking_uri={uri} cannot be opened ({first_line(err)}); {OTHER_STORE}"
        ) from None


class MlflowTracker:
    """An MLflow run: a new one, or on a resume the checkpoint's (``previous``), which must be
    in this store; a run it is not in (another tracking_uri) starts a new MLflow run there."""

    name = "mlflow"

    def __init__(
        self,
        cfg: DictConfig,
        run: RunInfo,
    ):
        name, params, folder, previous = run.name, flat_params(run.config), run.folder, run.previous
        self.uri, self.experiment = tracking_uri(cfg), cfg.experiment
        self.client = client(self.uri)
        self.missing = None  # the checkpoint's run, when this store does not have it
        run = self._previous_run(previous)
        if run is not None:
            self.run_id, self.resumed = run.info.run_id, True
            self.client.update_run(self.run_id, status="RUNNING")
            logged = run.data.params
        else:
            tags = {"torchrl.run_dir": str(folder.resolve())} if folder is not None else {}
            run = self.client.create_run(self._experiment_id(), run_name=name, tags=tags)
            self.run_id, self.resumed, logged = run.info.run_id, False, {}
        self._log_params(params, logged)
        self._pending: list = []
        self._last_flush = time.monotonic()

    def _previous_run(self, previous: dict | None):
        if previous is None:
            return None
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(previous["run_id"])
        except MlflowException:
            self.missing = previous["run_id"]
            return None

    def _experiment_id(self) -> str:
        """The experiment's id, created when new (parallel sweep jobs may race to create it)."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(
                self.experiment, artifact_location=artifact_location(self.uri)
            )
        except MlflowException:  # another job created it in between
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def _log_params(self, params: Mapping[str, str], logged: Mapping[str, str]) -> None:
        """New parameters as parameters; one a resume changed (a budget) as a tag, since an
        MLflow parameter cannot change."""
        from mlflow.entities import Param, RunTag

        new = [Param(k, v) for k, v in params.items() if k not in logged]
        changed = [RunTag(RESUMED_TAG + k, v) for k, v in params.items() if logged.get(k, v) != v]
        for i in range(0, len(new), BATCH):
            self.client.log_batch(self.run_id, params=new[i : i + BATCH])
        for i in range(0, len(changed), BATCH):
            self.client.log_batch(self.run_id, tags=changed[i : i + BATCH])

    def describe(self) -> str:
        what = "resumed run" if self.resumed else "run"
        line = (
            f"mlflow: {what} {self.run_id} in experiment '{self.experiment}' at {self.uri} "
            f"(mlflow ui --backend-store-uri {self.uri})"
        )
        if self.missing:
            line += f"; the checkpoint's run {self.missing} is not in this store"
        return line

    def state(self) -> dict:
        return {"run_id": self.run_id}

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = time.time()
        self._pending += [Metric(k, v, int(now * 1000), step) for k, v in metrics.items()]
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
            self._flush()

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        for i in range(0, len(pending), 10 * BATCH):
            self.client.log_batch(self.run_id, metrics=pending[i : i + 10 * BATCH])

    def log_files(self, paths: Sequence[Path]) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path))

    def close(self, outcome: str) -> None:
        try:
            self._flush()
        finally:
            self.client.set_terminated(self.run_id, status=STATUS[outcome])


TRACKER = MlflowTracker  # what tracking.base.open_trackers makes for this backend
