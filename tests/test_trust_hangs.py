"""Trust, round two (issue 27, item 7): an evaluation on an env with no time limit ends at a
stated step cap, with a warning; a stop signal that reaches no safe point within the grace
period ends the run instead of being deferred forever."""

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from conftest import TINY, torchrl

from torchrl_cli.agents.evaluation import CappedEnv, run_episodes
from torchrl_cli.config.schema import Config
from torchrl_cli.envs.gym_env import GymEnv

TESTS = Path(__file__).resolve().parent
ENDLESS = ["env=test_trust_envs:Endless", "env.train_max_episode_steps=50", *TINY]


def with_tests(cli_env: dict) -> dict:
    path = os.pathsep.join(p for p in (cli_env.get("PYTHONPATH"), str(TESTS)) if p)
    return {**cli_env, "PYTHONPATH": path}


def test_evaluation_episodes_end_at_the_cap_with_a_warning():
    warnings = []
    env = CappedEnv(GymEnv("test_trust_envs:Endless", n_envs=3, vectorization="sync"), 40,
                    warnings.append)
    try:
        returns, lengths = run_episodes(lambda obs: [0] * len(obs), env, 2, seed=0)
    finally:
        env.close()
    assert lengths == [40, 40] and returns == [40.0, 40.0]
    assert warnings == ["2 of 2 evaluation episodes cut at 40 steps (eval_max_episode_steps); "
                        "their returns are partial"]
    assert Config.eval_max_episode_steps >= 1000  # stated in the schema, above common limits


def test_training_on_an_endless_env_finishes(torchrl_bin, cli_env, tmp_path):
    proc = torchrl(torchrl_bin, ["train", *ENDLESS, "eval_freq=128", "eval_max_episode_steps=60",
                                 "hydra.run.dir=run"], tmp_path, with_tests(cli_env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "evaluation episodes cut at 60 steps (eval_max_episode_steps)" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_sigterm_while_an_env_hangs_ends_the_run(torchrl_bin, cli_env, tmp_path):
    """A step that never returns (a hung env, in this process): the first SIGTERM is said at
    once, and the run ends within the grace period and the abort's few seconds, without a
    traceback. (An evaluation that never ends is a safe point: tests/test_trust_eval_stop.py.)"""
    proc = subprocess.Popen(
        [torchrl_bin, "train", *TINY, "env=fixtures.faulty_envs:FaultyEnv",
         "+env.kwargs.fault=hang", "+env.kwargs.start=40", "env.vectorization=sync",
         "stop_grace_s=3", "hydra.run.dir=run"], cwd=tmp_path, env=with_tests(cli_env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: [*map(lines.put, proc.stdout), lines.put(None)],
                     daemon=True).start()
    seen = []
    try:
        while not any("torchrl train" in line for line in seen):
            line = lines.get(timeout=90)
            assert line is not None, "".join(seen)
            seen.append(line)
        time.sleep(5)  # step 40 of each copy is reached in well under a second: it hangs
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        proc.wait(timeout=60)
        assert time.monotonic() - start < 3 + 10 + 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    out = "".join(seen)
    assert proc.returncode != 0, out
    assert "SIGTERM: stopping at the next safe point within 3 s" in out
    assert "no safe point reached in 3 s" in out
    assert "Traceback" not in out
