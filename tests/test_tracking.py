"""Tracking backends beside TensorBoard (MLflow, W&B offline) through the real CLI, read back
with each backend's own reader: MlflowClient, and ``wandb leet inspect --json`` for the
offline run's .wandb file. Nothing here reaches the network."""

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, assert_no_traceback, assert_one_line_error
from omegaconf import OmegaConf
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from torchrl_cli.config.schema import LoggerConfig
from torchrl_cli.envs.spaces import action_info, state_info
from torchrl_cli.errors import ConfigError, FaultError
from torchrl_cli.run.checkpoint import (
    load_checkpoint,
    run_meta,
    save_checkpoint,
    step_checkpoints,
)
from torchrl_cli.tracking.base import (
    check_backends,
    check_reachable,
    flat_params,
    open_trackers,
)
from torchrl_cli.tracking.logger import Logger

pytestmark = pytest.mark.filterwarnings("ignore:.*noload.*")  # SQLAlchemy, inside MLflow
BACKENDS = "logger.backends=[tensorboard,mlflow,wandb]"
JOB = "{}_ppo_clip_CartPole-v1"  # a sweep job's folder
TAG = "losses/value_loss"


@pytest.fixture(scope="module")
def tracking_env(tmp_path_factory, cli_env) -> dict:
    """The CLI's environment with MLflow's telemetry off and W&B's folders in a temporary one
    (no login: W&B cannot go online)."""
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in cli_env.items() if not k.startswith(("WANDB_", "MLFLOW_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", NETRC=str(home / "netrc"))
    for folder in ("CONFIG", "CACHE", "DATA"):
        env[f"WANDB_{folder}_DIR"] = str(home / folder.lower())
    return env


def torchrl(binary: str, args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """``torchrl <args>`` to completion, with time to spare on a loaded machine."""
    return subprocess.run([binary, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, torchrl_bin, tracking_env) -> dict:
    """A two-job sweep tracked in MLflow and W&B, then job 0 resumed with twice the budget."""
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    cwd = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{cwd / 'mlflow.db'}"
    proc = torchrl(torchrl_bin, ["train", "-m", "seed=0,1", *TINY, BACKENDS,
                                 f"logger.mlflow.tracking_uri={uri}", "hydra.sweep.dir=sweep"],
                   cwd, tracking_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = load_checkpoint(step_checkpoints(cwd / "sweep" / JOB.format(0) / "checkpoints")[-1])
    # where the record goes comes from the command line on a resume, never from the folder
    resumed = torchrl(torchrl_bin, ["train", f"resume=sweep/{JOB.format(0)}", "max_steps=512",
                                    f"logger.mlflow.tracking_uri={uri}"], cwd, tracking_env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_no_traceback(resumed)
    client = mlflow.tracking.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("torchrl-cli").experiment_id])
    return {"cwd": cwd, "client": client, "runs": {r.info.run_name: r for r in runs},
            "first": first, "output": proc.stdout + resumed.stdout}


def tensorboard(folder: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def assert_same_curve(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [s for s, _ in got] == [s for s, _ in want]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-5)


def mlflow_curve(client, run_id: str, tag: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, tag))


def test_each_sweep_job_is_an_mlflow_run_with_its_config_scalars_and_files(sweep):
    client, folder = sweep["client"], sweep["cwd"] / "sweep" / JOB.format(1)
    assert set(sweep["runs"]) == {f"sweep/{JOB.format(i)}" for i in (0, 1)}
    run = sweep["runs"][f"sweep/{JOB.format(1)}"]
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["seed"] == "1" and params["env.id"] == "CartPole-v1"
    assert params["agent.n_steps"] == "32" and params["logger.backends"] == \
        '["tensorboard", "mlflow", "wandb"]'
    assert float(params["agent.policy.optimizer.lr"]) == OmegaConf.load(
        folder / "config.yaml").agent.policy.optimizer.lr
    assert run.data.tags["torchrl.run_dir"] == str(folder.resolve())
    for tag in (TAG, "charts/episode_return", "eval/mean_return"):
        assert_same_curve(mlflow_curve(client, run.info.run_id, tag), tensorboard(folder, tag))
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == \
        {"config.yaml", "metrics.json", "model.pt"}
    copy = client.download_artifacts(run.info.run_id, "metrics.json", str(sweep["cwd"]))
    assert Path(copy).read_bytes() == (folder / "metrics.json").read_bytes()


def test_a_resume_goes_on_with_the_same_mlflow_run(sweep):
    client, folder = sweep["client"], sweep["cwd"] / "sweep" / JOB.format(0)
    run = sweep["runs"][f"sweep/{JOB.format(0)}"]  # one run for the job: the resume made none
    assert sweep["first"].tracking["mlflow"] == {"run_id": run.info.run_id}
    assert f"mlflow: resumed run {run.info.run_id}" in sweep["output"]
    assert run.info.status == "FINISHED"
    assert run.data.params["max_steps"] == "256"  # MLflow parameters are write-once
    assert run.data.tags["torchrl.resumed.max_steps"] == "512"
    curve = mlflow_curve(client, run.info.run_id, TAG)
    assert curve[-1][0] == 512 and len({s for s, _ in curve}) == len(curve)
    assert_same_curve(curve, tensorboard(folder, TAG))


def wandb_parts(folder: Path) -> list[list[dict]]:
    """The records of each offline W&B run under a run folder, oldest first, as W&B's own
    reader (``wandb leet inspect --json``) prints them."""
    parts = []
    for run_dir in sorted((folder / "wandb").glob("offline-run-*")):
        out = subprocess.run([str(Path(sys.executable).parent / "wandb"), "leet", "inspect",
                              "--json", str(run_dir)], capture_output=True, text=True,
                             timeout=300, check=True).stdout
        parts.append([json.loads(line) for line in out.splitlines()])
    return parts


def wandb_curve(records: list[dict], tag: str) -> list[tuple[int, float]]:
    items = [r["history"]["item"] for r in records if r["type"] == "history"]
    return [(item["env_steps"], item[tag]) for item in items if tag in item]


def test_the_wandb_offline_run_holds_the_config_scalars_and_files(sweep):
    folder = sweep["cwd"] / "sweep" / JOB.format(1)
    (records,) = wandb_parts(folder)
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    assert run["display_name"] == f"sweep/{JOB.format(1)}" and run["project"] == "torchrl-cli"
    config = {}
    for record in records:
        if record["type"] == "config":
            config.update(record["config"]["update"])
    assert config["seed"] == 1 and config["agent"]["n_steps"] == 32
    for tag in (TAG, "eval/mean_return"):
        assert_same_curve(wandb_curve(records, tag), tensorboard(folder, tag))
    (files,) = (folder / "wandb").glob("offline-run-*/files/torchrl")
    for name in ("config.yaml", "metrics.json", "model.pt"):
        assert (files / name).read_bytes() == (folder / name).read_bytes()
    assert [r["exit"]["exit_code"] for r in records if r["type"] == "exit"] == [0]


def test_a_resume_goes_on_with_the_same_wandb_run(sweep):
    """Offline, the resumed part is a folder of its own with the same run id (``wandb sync``
    uploads both parts into one run); together they hold the whole curve."""
    folder = sweep["cwd"] / "sweep" / JOB.format(0)
    parts = wandb_parts(folder)
    assert len(parts) == 2
    run_id = sweep["first"].tracking["wandb"]["run_id"]
    assert [[r["run"]["run_id"] for r in p if r["type"] == "run"] for p in parts] == \
        [[run_id], [run_id]]
    first, second = (wandb_curve(p, TAG) for p in parts)
    assert first[-1][0] == 256 and second[0][0] > 256
    assert_same_curve(first + second, tensorboard(folder, TAG))


def test_a_backend_without_its_package_is_a_one_line_error(tmp_path, torchrl_bin, tracking_env):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "mlflow.py").write_text("raise ImportError(\"No module named 'mlflow'\")\n")
    env = {**tracking_env, "PYTHONPATH": os.pathsep.join(
        [str(blocker), *filter(None, [tracking_env.get("PYTHONPATH")])])}
    proc = torchrl(torchrl_bin, ["train", *TINY, "logger.backends=[tensorboard,mlflow]"],
                   tmp_path, env)
    assert_one_line_error(proc, "needs the mlflow package", "pip install 'torchrl-cli[mlflow]'")
    assert not (tmp_path / "runs").exists()


def test_an_unreachable_tracking_server_fails_before_training(tmp_path, torchrl_bin,
                                                              tracking_env):
    pytest.importorskip("mlflow")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    proc = torchrl(torchrl_bin, ["train", *TINY, "logger.backends=[mlflow]",
                                 f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}"],
                   tmp_path, tracking_env)
    assert_one_line_error(proc, f"logger.mlflow.tracking_uri=http://127.0.0.1:{port} does "
                          "not answer", "start the server")
    assert time.monotonic() - start < 60  # not MLflow's minutes of retries
    assert not (tmp_path / "runs").exists()


def logger_cfg(**values):
    cfg = OmegaConf.structured(LoggerConfig)
    cfg.merge_with(values)
    return cfg


@pytest.mark.parametrize("backends, needle", [
    (["tensorboard", "mlflw"], "'mlflw' (did you mean 'mlflow'?), which is not a tracking"),
    (["wandb", "wandb"], "repeats a backend"),
])
def test_bad_backend_lists_are_refused(backends, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace("?)", r"\?\)")):
        check_backends(logger_cfg(backends=backends))


def test_the_default_needs_neither_package(monkeypatch, tmp_path):
    """TensorBoard only: with mlflow and wandb unimportable, the config validates and the
    Logger writes its scalars, so neither package is imported (nor its start-up paid)."""
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "wandb", None)
    check_backends(logger_cfg())
    logger = Logger(tmp_path, progress=False, histograms=False, mode="quiet", table_every_s=0)
    logger.add_log("charts/x", 1.0)
    assert logger.log(5) == {"charts/x": 1.0}
    logger.close()
    with pytest.raises(ConfigError, match=r"pip install 'torchrl-cli\[wandb\]'"):
        check_backends(logger_cfg(backends=["tensorboard", "wandb"]))


def test_wandb_modes_are_checked_without_asking_for_a_login(monkeypatch, tmp_path):
    pytest.importorskip("wandb")
    with pytest.raises(ConfigError, match="logger.wandb.mode=cloud is not a W&B mode"):
        check_backends(logger_cfg(backends=["wandb"], wandb={"mode": "cloud"}))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="needs a W&B login; run `wandb login`"):
        check_backends(logger_cfg(backends=["wandb"], wandb={"mode": "online"}))


@pytest.fixture
def unavailable_server():
    """A local HTTP server that answers every request with 503 (an MLflow client retries
    those); its URL."""
    class Unavailable(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(503)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_server_that_answers_is_reachable_whatever_its_status(unavailable_server):
    check_reachable(unavailable_server, "the server", "start it")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(ConfigError, match="the server does not answer .*; start it"):
        check_reachable(url, "the server", "start it")


def test_a_server_that_is_not_mlflow_is_refused_at_once(unavailable_server):
    """Without retries: MLflow's client would retry a 503 for minutes."""
    pytest.importorskip("mlflow")
    start = time.monotonic()
    with pytest.raises(ConfigError, match=f"tracking_uri={unavailable_server} does not answer "
                       "as an MLflow server"):
        check_backends(logger_cfg(backends=["mlflow"], mlflow={"tracking_uri":
                                                               unavailable_server}))
    assert time.monotonic() - start < 20
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # restored


def test_a_failing_tracker_is_one_warning_and_training_goes_on():
    class Gone:
        name, calls = "mlflow", 0

        def log_metrics(self, metrics, step):
            self.calls += 1
            raise ConnectionError("[Errno 111] server gone")

    gone, out = Gone(), io.StringIO()
    logger = Logger(None, console=Console(file=out, width=200), progress=False, histograms=False,
                    mode="quiet", table_every_s=0, trackers=[gone])
    for step in (64, 128):
        logger.add_log("charts/x", 1.0)
        assert logger.log(step) == {"charts/x": 1.0}
    assert gone.calls == 2
    assert out.getvalue().splitlines() == ["warning: mlflow did not take the scalars of env step "
                                           "64 ([Errno 111] server gone); training goes on "
                                           "(warned once)"]


def test_a_tracker_that_cannot_start_is_a_fault_naming_it(monkeypatch):
    import torchrl_cli.tracking.mlflow_tracker as mlflow_tracker

    def refuse(*args, **kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(mlflow_tracker, "TRACKER", refuse)
    with pytest.raises(FaultError, match=r"^mlflow: the tracked run could not be started "
                       r"\(database is locked\); check logger.mlflow.\*, or drop mlflow"):
        open_trackers(logger_cfg(backends=["tensorboard", "mlflow"]), name="r", config={},
                      folder=None, previous={}, warn=print)


def test_params_are_the_config_flattened_to_dotted_keys():
    config = {"agent": {"lr": 3e-4, "policy": {"clip": None}}, "env": {"id": "CartPole-v1",
              "imports": [], "kwargs": {}}, "seed": 0, "net": {"body": [{"n": 64}]}, "x": True}
    assert flat_params(config) == {"agent.lr": "0.0003", "agent.policy.clip": "null",
                                   "env.id": "CartPole-v1", "env.imports": "[]",
                                   "env.kwargs": "{}", "seed": "0",
                                   "net.body": '[{"n": 64}]', "x": "true"}


def test_checkpoints_from_before_tracking_load_with_none(tmp_path):
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    meta = run_meta("seed: 0\n", "CartPole-v1", state_info(env.observation_space, "CartPole-v1"),
                    action_info(env.action_space, "CartPole-v1"), {"mlflow": {"run_id": "abc"}})
    save_checkpoint(tmp_path / "new.pt", {"format": 2, **meta, "agent": {}})
    assert load_checkpoint(tmp_path / "new.pt").tracking == {"mlflow": {"run_id": "abc"}}
    del meta["tracking"]  # what checkpoints written before tracking backends hold
    save_checkpoint(tmp_path / "old.pt", {"format": 2, **meta, "agent": {}})
    assert load_checkpoint(tmp_path / "old.pt").tracking == {}
