"""Ctrl-C (SIGINT) and SIGTERM: stop after the current update, save, one line, no traceback."""

import json
import signal
import subprocess
import time

import pytest
import torch


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_cleanly_and_saves(tmp_path, torchrl_bin, cli_env, sig, code):
    """A long run signalled mid-training exits 128+signal with the model and metrics saved."""
    proc = subprocess.Popen(
        [torchrl_bin, "train", "max_steps=10000000", "eval_freq=0", "logger.progress=false",
         "logger.log_freq=5"], cwd=tmp_path, env=cli_env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("runs/*/*/events.out.tfevents.*")):
        assert time.monotonic() < deadline and proc.poll() is None, "training did not start"
        time.sleep(0.2)
    time.sleep(2.0)  # well inside the training loop
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out
    assert "Traceback" not in out
    assert f"interrupted by {sig.name} after" in out
    run = next(tmp_path.glob("runs/*/*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["interrupted"] == sig.name
    assert 0 < metrics["env_steps"] < 10_000_000 and metrics["mean_return"] is None
    state = torch.load(run / "model.pt", weights_only=True)
    assert {"policy", "value", "state_normalizer"} <= set(state)
