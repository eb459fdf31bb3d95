"""Trust, round two (issue 27, item 8): an MLflow server that dies or stops answering during a
run never holds training up: one warning line, training goes on, and the end of the run says
what did not reach the server within a bounded wait. No network: the dead server is a closed
loopback port, the silent one a loopback socket that never answers."""

import io
import socket
import time
from collections.abc import Iterator

import pytest
from omegaconf import OmegaConf
from rich.console import Console

from torchrl_cli.config.schema import LoggerConfig
from torchrl_cli.tracking.base import FINISHED, RunInfo, close_trackers
from torchrl_cli.tracking.logger import Logger

mlflow = pytest.importorskip("mlflow")
from torchrl_cli.tracking import mlflow_tracker  # noqa: E402  (needs mlflow)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:  # bound, then closed: nobody listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("server", ["refused", "silent"])
def test_a_tracking_server_gone_mid_run_never_holds_training_up(
        server, closed_port, silent_port, tmp_path, monkeypatch):
    """Before: each flush waited on MLflow's retries (minutes for a dead server, the request
    timeout for a silent one), and the end of the run said only that it could not close."""
    monkeypatch.setattr(mlflow_tracker, "FLUSH_EVERY_S", 0.0)  # a write at every log
    monkeypatch.setattr(mlflow_tracker, "CLOSE_WAIT_S", 1.0, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    cfg = OmegaConf.structured(LoggerConfig).mlflow
    cfg.tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = mlflow_tracker.MlflowTracker(cfg, RunInfo("r", {"a": 1}, None, None))
    # the server goes away once the run is open: the client's requests go to a dead port
    port = closed_port if server == "refused" else silent_port
    dead = mlflow.tracking.MlflowClient(f"http://127.0.0.1:{port}")
    monkeypatch.setattr(tracker.client, "_tracking_client", dead._tracking_client)
    uri = tracker.uri
    out = io.StringIO()
    logger = Logger(None, console=Console(file=out, width=300), progress=False,
                    histograms=False, mode="quiet", table_every_s=0, trackers=[tracker])
    start = time.monotonic()
    for i in range(1, 41):
        logger.add_log("charts/x", float(i))
        logger.log(64 * i)
        time.sleep(0.02)  # a training iteration
    assert time.monotonic() - start < 0.02 * 40 + 2  # no write waited on the server
    lines = out.getvalue().splitlines()
    if server == "refused":
        assert len(lines) == 1, lines
        assert lines[0].startswith("warning: mlflow did not take the scalars of env step ")
        assert f"({uri}: [Errno 111] Connection refused; " in lines[0]
        assert "training goes on (warned once)" in lines[0]
        assert "the scalars are kept and sent when it answers" in lines[0]
    else:
        assert lines == []  # its first request has not timed out yet
    warnings = []
    start = time.monotonic()
    close_trackers([tracker], FINISHED, warnings.append)
    assert time.monotonic() - start < 1.0 + 2
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith(f"mlflow: 40 scalars (env steps 64-2560) and 1 other writes "
                                  f"did not reach {uri}: "), warnings[0]
    assert "the run folder's TensorBoard file has every scalar" in warnings[0]


def test_a_store_that_answers_gets_every_scalar_and_the_status(tmp_path, monkeypatch):
    monkeypatch.setattr(mlflow_tracker, "FLUSH_EVERY_S", 0.0)
    cfg = OmegaConf.structured(LoggerConfig).mlflow
    cfg.tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = mlflow_tracker.MlflowTracker(cfg, RunInfo("r", {"a": 1}, None, None))
    for i in range(1, 6):
        tracker.log_metrics({"charts/x": float(i)}, 64 * i)
    tracker.close(FINISHED)
    run = tracker.client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    history = tracker.client.get_metric_history(tracker.run_id, "charts/x")
    assert sorted((m.step, m.value) for m in history) == [(64 * i, float(i)) for i in range(1, 6)]
