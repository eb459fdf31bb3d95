"""Ctrl-C (SIGINT) and SIGTERM: stop after the current update, save, one line, no traceback."""

import json
import queue
import signal
import subprocess
import threading

import pytest
import torch


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_cleanly_and_saves(tmp_path, torchrl_bin, cli_env, sig, code):
    """A long run signalled mid-training exits 128+signal with the model and metrics saved."""
    proc = subprocess.Popen(
        [torchrl_bin, "train", "max_steps=10000000", "eval_freq=0", "logger.progress=false",
         "logger.log_freq=5"], cwd=tmp_path, env=cli_env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: [*map(lines.put, proc.stdout), lines.put(None)],
                     daemon=True).start()
    seen = []
    while not any(line.startswith("iteration") for line in seen):  # inside the training loop
        line = lines.get(timeout=60)
        assert line is not None, "".join(seen)
        seen.append(line)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    out = "".join(seen)
    assert proc.returncode == code, out
    assert "Traceback" not in out
    assert f"interrupted by {sig.name} after" in out
    run = next(tmp_path.glob("runs/*/*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["interrupted"] == sig.name
    assert 0 < metrics["env_steps"] < 10_000_000 and metrics["mean_return"] is None
    state = torch.load(run / "model.pt", weights_only=True)
    assert {"policy", "value", "state_normalizer"} <= set(state)
