"""Trust, round two (issue 27, item 9): env copies in worker processes (async) that raise, die,
give a non-dict info or hang give one line, never hang the run, and leave no process behind:
not after an error, not after two Ctrl-C on a hung env, not after kill -9 of the run."""

import multiprocessing
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import RUN, assert_no_traceback, torchrl
from test_faults import env_with_fixtures

from torchrl_cli.envs.base import EnvError
from torchrl_cli.envs.gym_env import GymEnv
from torchrl_cli.run.checkpoint import CHECKPOINT_DIR, step_checkpoints

FAULTY = "fixtures.faulty_envs:FaultyEnv"


def processes_in(folder: Path) -> list[int]:
    """The pids of the processes working in ``folder`` (a run's workers are forks: they are)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if os.readlink(entry / "cwd") == str(folder):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def gone(folder: Path, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while processes_in(folder):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("fault", "said"), [
    ("raise", "raised RuntimeError: simulator exploded at step 5"),
    ("die", "the worker process of copy 0 (pid"),
    ("bad_info", "raised TypeError: step() returned an info of type list; Gymnasium's API "
                 "needs a dict"),
    ("hang", "copy 0 (worker pid"),
])
def test_a_failing_worker_is_one_error_and_leaves_no_process(fault, said, capfd):
    """Before: ``die`` raised a bare EOFError, ``bad_info`` hung in close() for ever, ``hang``
    hung in step() for ever, ``raise`` logged each worker's traceback."""
    env = GymEnv(FAULTY, n_envs=2, vectorization="async", fault=fault, start=5)
    env.vec.timeout_s = 2.0
    start = time.monotonic()
    try:
        env.reset(seed=0)
        with pytest.raises(EnvError) as err:
            for _ in range(10):
                env.step([0, 1])
    finally:
        env.close()
    message = str(err.value)
    assert message.startswith(f"env {FAULTY}") and said in message and "\n" not in message
    if fault == "die":
        assert "exited with code 3" in message
    if fault == "hang":
        assert "gave no answer to step() in 2 s: the env hangs" in message
    assert time.monotonic() - start < 20
    assert not multiprocessing.active_children()
    assert "Traceback" not in capfd.readouterr().err  # Gymnasium logged each worker's


def test_a_non_dict_info_in_this_process_is_named():
    """Before: ``raised AttributeError: 'list' object has no attribute 'items'``."""
    env = GymEnv(FAULTY, n_envs=2, vectorization="sync", fault="bad_info", start=3)
    try:
        env.reset(seed=0)
        with pytest.raises(EnvError, match=r"^env fixtures.faulty_envs:FaultyEnv returned an "
                           r"info that is not a dict from step\(\); Gymnasium's API needs a "
                           r"dict$"):
            for _ in range(5):
                env.step([0, 1])
    finally:
        env.close()


@pytest.mark.timeout(180)
def test_a_dead_worker_in_a_run_is_one_line_and_resumable(torchrl_bin, cli_env, tmp_path):
    proc = torchrl(torchrl_bin, ["train", *RUN, f"env={FAULTY}", "env.vectorization=async",
                                 "+env.kwargs.fault=die", "+env.kwargs.start=150",
                                 "hydra.run.dir=run"], tmp_path, env_with_fixtures(cli_env))
    assert_no_traceback(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "exited with code 3" in lines[0] and "torchrl train resume=run" in lines[0]
    assert step_checkpoints(tmp_path / "run" / CHECKPOINT_DIR)
    assert gone(tmp_path, 10)


def start_hung_run(torchrl_bin, cli_env, tmp_path) -> subprocess.Popen:
    """A run on async copies that hang from their 150th step (after the first checkpoint),
    its workers started: (the process, its stderr file)."""
    proc = subprocess.Popen(
        [torchrl_bin, "train", *RUN, f"env={FAULTY}", "env.vectorization=async",
         "+env.kwargs.fault=hang", "+env.kwargs.start=150", "hydra.run.dir=run"],
        cwd=tmp_path, env=env_with_fixtures(cli_env), stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "stderr.txt").open("w"), start_new_session=True)
    deadline = time.monotonic() + 90
    while not step_checkpoints(tmp_path / "run" / CHECKPOINT_DIR):
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.2)
    time.sleep(1.0)  # the copies are past their 150th step: hung
    return proc


@pytest.mark.timeout(180)
def test_two_ctrl_c_stop_a_run_whose_async_env_hangs(torchrl_bin, cli_env, tmp_path):
    """Before: a hung async env answered Ctrl-C with a traceback per worker, and two SIGINT
    could not stop it (close() waited on the hung step)."""
    proc = start_hung_run(torchrl_bin, cli_env, tmp_path)
    try:
        assert len(processes_in(tmp_path)) >= 3  # the run and its workers
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole process group
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        "torchrl: SIGINT: stopping at the next safe point within 60 s (send it again to "
        "abort at once)", "torchrl: interrupted"], err
    assert step_checkpoints(tmp_path / "run" / CHECKPOINT_DIR)
    assert gone(tmp_path, 10)


@pytest.mark.timeout(180)
@pytest.mark.skipif(not os.uname().sysname == "Linux", reason="workers die with the run on Linux")
def test_kill_9_of_the_run_leaves_no_worker(torchrl_bin, cli_env, tmp_path):
    """Before: after kill -9 of a run whose async env hung, its workers stayed alive."""
    proc = start_hung_run(torchrl_bin, cli_env, tmp_path)
    try:
        proc.kill()
        proc.wait(timeout=10)
        assert gone(tmp_path, 10), processes_in(tmp_path)
    finally:
        for pid in processes_in(tmp_path):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(60)
def test_a_hung_step_in_this_process_is_said_once(monkeypatch, capfd):
    """Sync copies cannot be cut short: a step that has not returned for STEP_TIMEOUT_S is one
    warning line (the run's stop grace period then ends it on Ctrl-C or SIGTERM)."""
    from torchrl_cli.envs import workers

    monkeypatch.setattr(workers, "STEP_TIMEOUT_S", 0.4)
    env = GymEnv(FAULTY, n_envs=1, vectorization="sync", fault="hang", start=3)
    env.reset(seed=0)
    env.step([0])  # a step that returns is not said
    time.sleep(1.0)
    assert capfd.readouterr().err == ""
    # the hung step, in a thread of its own (it never returns; the thread is a daemon)
    threading.Thread(target=lambda: [env.step([0]) for _ in range(5)], daemon=True).start()
    deadline = time.monotonic() + 10
    err = ""
    while "has not returned" not in err and time.monotonic() < deadline:
        time.sleep(0.1)
        err += capfd.readouterr().err
    time.sleep(1.0)  # said once, not again
    err += capfd.readouterr().err
    assert err.splitlines() == [f"torchrl: warning: env {FAULTY} has not returned from a step "
                                "for 0.4 s: it may hang (Ctrl-C stops the run, the last "
                                "checkpoint kept)"], err
    env._watch.close()
