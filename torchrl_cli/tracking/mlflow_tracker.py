"""MLflow tracking (``logger.backends=[...,mlflow]``, the mlflow extra): one MLflow run per run.

Parameters are the resolved config (``agent.lr``, ...), metrics every scalar TensorBoard gets
at the same env steps, artifacts the run folder's config.yaml, metrics.json and model.pt. The
store is MLFLOW_TRACKING_URI when set (MLflow's own variable), else ``sqlite:///runs/mlflow.db``
with artifacts in ``runs/mlruns/`` (MLflow 3's file store, ``./mlruns``, refuses to open unless
MLFLOW_ALLOW_FILE_STORE=true): ``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``
shows the runs. Scalars are buffered and written every FLUSH_EVERY_S seconds, since one
write to SQLite costs ~20 ms (it syncs the file), and at the end.

Once the run is open, the store is written only by a background thread (``Writer``), so that a
server that dies or stops answering during training never holds the loop up (MLflow's own
retries would block each write for minutes): the first failed write is one warning line and
training goes on; scalars the server has not taken are kept (at most MAX_KEPT, the oldest
dropped beyond) and sent again with the next writes; at the end the run waits CLOSE_WAIT_S at
most for the writes still pending, then says what did not reach the server. A server's
requests are tried REQUEST_RETRIES more times and time out after REQUEST_TIMEOUT_S (MLflow's
own variables, MLFLOW_HTTP_REQUEST_MAX_RETRIES and MLFLOW_HTTP_REQUEST_TIMEOUT, when set).
"""

import logging
import os
import re
import threading
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
    Undelivered,
    check_reachable,
    flat_params,
    require,
)
from torchrl_cli.utils import RUNS_DIR

FLUSH_EVERY_S = 10.0
MAX_KEPT = 100_000  # scalars kept for a server that does not answer (~20 MB)
CLOSE_WAIT_S = 15.0  # at the end: seconds to wait for the writes still pending
REQUEST_RETRIES, REQUEST_TIMEOUT_S = 2, 10  # a server's requests (MLflow's: 7 and 120)
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
        if urlparse(self.uri).scheme in ("http", "https"):  # MLflow reads them at each request
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(REQUEST_RETRIES))
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(REQUEST_TIMEOUT_S))
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
        self.writer = Writer(self.client, self.run_id, self.uri)  # every write from here on
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
        """Buffered, and handed to the writer every FLUSH_EVERY_S; never waits on the store.
        Raises the writer's first failure once (the Logger warns once; training goes on)."""
        from mlflow.entities import Metric

        now = time.time()
        self._pending += [Metric(k, v, int(now * 1000), step) for k, v in metrics.items()]
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
            self._flush()
        failure = self.writer.new_failure()
        if failure is not None:
            raise ConnectionError(f"{self.uri}: {failure}; the scalars are kept and sent when "
                                  "it answers")

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        self.writer.add(pending)

    def log_files(self, paths: Sequence[Path]) -> None:
        for path in paths:
            self.writer.call(self.client.log_artifact, self.run_id, str(path))

    def close(self, outcome: str) -> None:
        """The scalars left, then the run's status; after CLOSE_WAIT_S, what has not reached the
        store is said (Undelivered: the caller's warning) and the writer left behind."""
        self._flush()
        self.writer.call(self.client.set_terminated, self.run_id, status=STATUS[outcome])
        unsent = self.writer.close(CLOSE_WAIT_S)
        if unsent:
            raise Undelivered(unsent)


def reason(err: Exception) -> str:
    """Why a request failed, short: the system's error (``[Errno 111] Connection refused``) or
    a timeout where MLflow's message holds one, else its first line."""
    text = str(err)
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if found:
        return found.group(0).strip()
    if "timed out" in text.lower():
        return "the request timed out"
    return first_line(err)


class Writer:
    """Writes a run's scalars (``add``) and other calls (``call``) to an MLflow store from a
    daemon thread, in order; a failed write keeps its scalars (at most MAX_KEPT) and is tried
    again with the next ones."""

    def __init__(self, client, run_id: str, uri: str):
        self.client, self.run_id, self.uri = client, run_id, uri
        self.metrics: list = []  # scalars not yet taken by the store
        self.sending: list = []  # those being written now
        self.calls: list = []  # (function, args, kwargs) not yet made
        self.dropped = 0  # the oldest scalars dropped beyond MAX_KEPT
        self.failure: str | None = None  # the last write's error, while the store fails
        self._told = False
        self._closing = False
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="torchrl-mlflow", daemon=True)
        self._thread.start()

    def add(self, metrics: list) -> None:
        with self._lock:
            self.metrics += metrics
            extra = len(self.metrics) - MAX_KEPT
            if extra > 0:
                del self.metrics[:extra]
                self.dropped += extra
            self._lock.notify()

    def call(self, function, *args, **kwargs) -> None:
        with self._lock:
            self.calls.append((function, args, kwargs))
            self._lock.notify()

    def new_failure(self) -> str | None:
        """The store's failure, the first time it is asked after one (else None)."""
        with self._lock:
            if self.failure is None or self._told:
                return None
            self._told = True
            return self.failure

    def _run(self) -> None:
        while True:
            with self._lock:
                while not (self.metrics or self.calls or self._closing):
                    self._lock.wait()
                if not (self.metrics or self.calls):
                    return
                metrics, self.metrics = self.metrics[: 10 * BATCH], self.metrics[10 * BATCH:]
                self.sending = metrics
                call = self.calls[0] if not metrics and self.calls else None
            try:
                if metrics:
                    self.client.log_batch(self.run_id, metrics=metrics)
                else:
                    function, args, kwargs = call
                    function(*args, **kwargs)
            except Exception as err:
                with self._lock:
                    self.failure, self.sending = reason(err), []
                    if metrics:
                        self.metrics[:0] = metrics
                    if self._closing:
                        return
                    self._lock.wait(FLUSH_EVERY_S)  # then try again
                continue
            with self._lock:
                self.failure, self.sending = None, []
                if call is not None:
                    self.calls.pop(0)

    def close(self, wait_s: float) -> str | None:
        """Wait ``wait_s`` at most for the writes left; None when all were made, else what
        did not reach the store."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join(wait_s)
        with self._lock:
            left = self.sending + self.metrics
            lost = len(left) + self.dropped
            if not lost and not self.calls and not self._thread.is_alive():
                return None
            steps = sorted({m.step for m in left})
            span = f" (env steps {steps[0]}-{steps[-1]})" if steps else ""
            why = f": {self.failure}" if self.failure else f": no answer in {wait_s:g} s"
            return (f"{lost} scalars{span} and {len(self.calls)} other writes did not reach "
                    f"{self.uri}{why}; the run folder's TensorBoard file has every scalar")


TRACKER = MlflowTracker  # what tracking.base.open_trackers makes for this backend
