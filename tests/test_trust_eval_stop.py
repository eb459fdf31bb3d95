"""Trust, round two (issue 27, item 7): the first Ctrl-C during a periodic evaluation stops the
run as it does during training (one line, the last checkpoint kept), and a resume runs the
stopped evaluation first, at the step it was due."""

import os
import signal
import threading
import time

import pytest
from conftest import RUN, compose_config

from torchrl_cli.run.checkpoint import CHECKPOINT_DIR, load_checkpoint, read_checkpoint
from torchrl_cli.run.train import train

# evaluation every 128 env steps on an env whose episodes never end: the first one never ends
ENDLESS = [*RUN, "env=test_trust_envs:Endless", "env.train_max_episode_steps=50",
           "checkpoint_freq=64", "eval_freq=128", "eval_max_episode_steps=1000000000"]


@pytest.mark.timeout(120)
def test_ctrl_c_in_a_periodic_evaluation_stops_cleanly_and_resumes(tmp_path, capsys):
    """Before: the first SIGINT was deferred until the evaluation ended (never, here: the
    grace period's abort then ended the run)."""
    run = tmp_path / "run"
    first = run / CHECKPOINT_DIR / "step_000000064.pt"

    def interrupt_in_the_evaluation():
        deadline = time.monotonic() + 60
        while not first.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1.0)  # step 128 is reached in well under a second: the evaluation spins
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_in_the_evaluation, daemon=True).start()
    start = time.monotonic()
    metrics = train(compose_config(ENDLESS), run_dir=run)
    assert time.monotonic() - start < 30
    assert metrics["interrupted"] == "SIGINT" and metrics["env_steps"] == 128
    out = capsys.readouterr().out
    assert out.count("SIGINT: stopping after this update") == 1
    last = run / CHECKPOINT_DIR / "step_000000128.pt"
    assert load_checkpoint(last).env_steps == 128 and read_checkpoint(last)["agent"]["eval_pending"]
    # the resume (the cause fixed in-process: an evaluation cap) evaluates at step 128 first
    cfg = compose_config([*ENDLESS, "eval_max_episode_steps=30", "max_steps=256"])
    metrics = train(cfg, run_dir=run, resume=load_checkpoint(last))
    assert metrics["interrupted"] is None and metrics["env_steps"] == 256
    assert [e["env_steps"] for e in metrics["evaluations"]] == [128, 256]
