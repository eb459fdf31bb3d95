"""Env copies in worker processes (``env.vectorization=async``) that fail as one line and never
hang the run or outlive it.

Gymnasium's ``AsyncVectorEnv`` waits on its workers without a limit: a worker that dies leaves
an ``EOFError`` (and a worker that raised, its traceback logged twice), a step or a ``close``
that never returns hangs the run, and the workers inherit the run's signal handlers, so a
Ctrl-C at a terminal reaches each of them. Here:

- a worker ignores SIGINT and SIGTERM's handler of the run (the run decides and closes the
  workers), and is killed by the kernel when the run's process dies (Linux, ``kill -9``);
- a worker that dies is named with its exit code; one that raised gives its exception (the
  caller words it as one line); an ``info`` that is not a dict is refused in the worker;
- a copy that gives no answer for ``STEP_TIMEOUT_S`` is a ``WorkerFailure`` naming it;
- after any failure, or while a call is pending, ``close`` terminates the workers (then kills
  those still alive after ``CLOSE_S``); a plain ``close`` waits ``CLOSE_S`` at most.
"""

import ctypes
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode
from gymnasium.vector.async_vector_env import AsyncState

# seconds a copy may take to answer one call (a step, a reset, a snapshot) before it counts as
# hung: far above any simulator's step (MuJoCo's ~50 us, Atari's ~1 ms, a robot sim's ~100 ms)
STEP_TIMEOUT_S = 300.0
CLOSE_S = 5.0  # seconds for workers to close, then to end after SIGTERM
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class WorkerFailure(Exception):
    """A worker process died or gave no answer in time (the message names the copy)."""


def _in_worker(parent: int) -> None:
    """A worker's first act: leave stop signals to the run, die with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # terminate() ends it, whatever it runs
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the run died before the request above was made
        os._exit(1)


class DictInfo(gym.Wrapper):
    """Refuses, in the worker, an ``info`` that is not a dict (the vector env would fail while
    merging it, leaving its workers in a state that ``close`` waits on for ever)."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, _checked(info, "reset")

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, _checked(info, "step")


def _checked(info, call: str) -> dict:
    if not isinstance(info, dict):
        raise TypeError(f"{call}() returned an info of type {type(info).__name__}; "
                        "Gymnasium's API needs a dict")
    return info


def make_copy(gym_id: str, wrappers: Sequence[Callable], kwargs: dict, parent: int) -> gym.Env:
    """One copy, made in its worker (or in the run, once, where Gymnasium reads the spaces of a
    first copy): ``gymnasium.make`` and the wrappers, in order."""
    if os.getpid() != parent:
        _in_worker(parent)
    env = DictInfo(gym.make(gym_id, **kwargs))
    for wrapper in wrappers:
        env = wrapper(env)
    return env


class StallWatch:
    """For copies stepped in this process (sync, native, envpool), where no call can be cut
    short: says once on stderr when a step or reset has not returned for ``after_s``, from a
    daemon thread (the run then stops on Ctrl-C or SIGTERM, its stop grace period ending a
    call that never returns). The stepping thread only stamps the call's start and end."""

    def __init__(self, env_name: str, after_s: float):
        self.env_name, self.after_s = env_name, after_s
        self.since: float | None = None  # when the call in progress began
        self.said = False
        self.closed = threading.Event()
        threading.Thread(target=self._watch, name="torchrl-env-watch", daemon=True).start()

    def _watch(self) -> None:
        while not self.closed.wait(min(self.after_s / 4, 5.0)):
            since = self.since
            if since is None or self.said or time.monotonic() - since < self.after_s:
                continue
            self.said = True
            try:
                os.write(2, (f"torchrl: warning: env {self.env_name} has not returned from a "
                             f"step for {self.after_s:g} s: it may hang (Ctrl-C stops the run, "
                             "the last checkpoint kept)\n").encode(errors="replace"))
            except OSError:
                pass

    def close(self) -> None:
        self.closed.set()


class WatchedAsyncVectorEnv(AsyncVectorEnv):
    """``AsyncVectorEnv`` with same-step autoreset whose waits are bounded and watched (see the
    module docstring). ``timeout_s``: seconds without an answer before a copy counts as hung."""

    def __init__(self, gym_id: str, n_envs: int, wrappers: Sequence[Callable], kwargs: dict,
                 timeout_s: float = STEP_TIMEOUT_S):
        self.timeout_s = timeout_s
        self.failed = False
        parent = os.getpid()
        try:
            super().__init__(
                [lambda: make_copy(gym_id, wrappers, kwargs, parent) for _ in range(n_envs)],
                autoreset_mode=AutoresetMode.SAME_STEP,
            )
        except (EOFError, OSError) as err:  # a worker died making its copy
            self.failed = True
            dead = [i for i, p in enumerate(self.processes) if not p.is_alive()]
            failure = self._died(dead[0] if dead else 0)
            self.close_extras(terminate=True)
            raise failure from err

    # every wait on the workers goes through _answered first
    def reset_wait(self, timeout=None, *args, **kwargs):
        self._answered("reset()")
        return self._guarded(super().reset_wait, timeout, *args, **kwargs)

    def step_wait(self, timeout=None):
        self._answered("step()")
        return self._guarded(super().step_wait, timeout)

    def call_wait(self, timeout=None):
        self._answered("a call")
        return self._guarded(super().call_wait, timeout)

    def set_attr(self, name, values):
        # Gymnasium's sends to every copy, then waits on each without a limit
        self._assert_is_running()
        if not isinstance(values, list | tuple):
            values = [values] * self.num_envs
        for pipe, value in zip(self.parent_pipes, values, strict=True):
            pipe.send(("_setattr", (name, value)))
        self._answered("set_attr()")
        _, successes = zip(*[self._recv(i) for i in range(self.num_envs)], strict=True)
        self._raise_if_errors(successes)

    def _recv(self, index: int):
        try:
            return self.parent_pipes[index].recv()
        except (EOFError, OSError) as err:
            self.failed = True
            raise self._died(index) from err

    def _guarded(self, wait: Callable, *args, **kwargs):
        try:
            return wait(*args, **kwargs)
        except (EOFError, BrokenPipeError, ConnectionResetError) as err:
            self.failed = True
            dead = [i for i, p in enumerate(self.processes) if not p.is_alive()]
            raise self._died(dead[0] if dead else 0) from err
        except BaseException:
            self.failed = True
            raise

    def _died(self, index: int) -> WorkerFailure:
        process = self.processes[index]
        process.join(CLOSE_S)
        code = process.exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else (
            f"exited with code {code}" if code is not None else "closed its pipe")
        return WorkerFailure(f"the worker process of copy {index} (pid {process.pid}) {how} "
                             "(env.vectorization=sync steps the copies in this process, where "
                             "a crash shows its cause)")

    def _answered(self, call: str) -> None:
        """Wait until every copy has answered (or died), at most ``timeout_s``: no answer by
        then is a WorkerFailure naming the copy."""
        pending = {i: pipe for i, pipe in enumerate(self.parent_pipes) if pipe is not None}
        deadline = time.monotonic() + self.timeout_s
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                self.failed = True
                index = min(pending)
                raise WorkerFailure(
                    f"copy {index} (worker pid {self.processes[index].pid}) gave no answer to "
                    f"{call} in {self.timeout_s:g} s: the env hangs")
            sentinels = [self.processes[i].sentinel for i in pending]
            multiprocessing.connection.wait([*pending.values(), *sentinels], timeout=left)
            for i in list(pending):
                if pending[i].poll() or not self.processes[i].is_alive():
                    del pending[i]

    def _raise_if_errors(self, successes) -> None:
        """A worker's exception, raised here as it was raised there (Gymnasium's own logs
        each worker's traceback first)."""
        if all(successes):
            return
        self.failed = True
        errors = [self.error_queue.get(timeout=CLOSE_S) for _ in range(sum(not s for s in
                                                                          successes))]
        for index, *_ in errors:
            if self.parent_pipes[index] is not None:
                self.parent_pipes[index].close()
                self.parent_pipes[index] = None
        self._state = AsyncState.DEFAULT
        _, kind, value, _ = errors[0]
        raise value if isinstance(value, BaseException) else kind(value)

    def close_extras(self, timeout=None, terminate=False) -> None:
        state = getattr(self, "_state", AsyncState.DEFAULT)
        terminate = terminate or self.failed or state != AsyncState.DEFAULT
        pipes = [p for p in self.parent_pipes if p is not None and not p.closed]
        if not terminate:
            try:
                for pipe in pipes:
                    pipe.send(("close", None))
                deadline = time.monotonic() + CLOSE_S
                for pipe in pipes:
                    if not pipe.poll(max(deadline - time.monotonic(), 0)):
                        terminate = True
                        break
                    pipe.recv()
            except (EOFError, OSError):
                terminate = True
        for pipe in pipes:
            pipe.close()
        if terminate:
            for process in self.processes:
                if process.is_alive():
                    process.terminate()
        deadline = time.monotonic() + CLOSE_S
        for process in self.processes:
            process.join(max(deadline - time.monotonic(), 0))
            if process.is_alive():
                process.kill()
                process.join()
