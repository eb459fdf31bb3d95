"""Stopping a training loop cleanly on SIGINT (Ctrl-C) and SIGTERM, and never ignoring a stop.

The first signal asks for a clean stop at the next safe point (the end of an update, of the
final evaluation); its line is printed at once, whatever the loop is doing. A run that reaches
no safe point within the grace period (``stop_grace_s``: an evaluation that never ends, an env
that hangs) is aborted as a second signal would abort it (KeyboardInterrupt: the last
checkpoint, written whole, is kept), and, if even that cannot happen (a call that never
returns to Python), ended a few seconds later (exit 128 + the signal's number). SIGTERM is what
``timeout``, SLURM, systemd and Kubernetes send: it must end the process.
"""

import _thread
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ABORT_AFTER_S = 10.0  # after the abort: seconds before the process is ended outright


class _Grace:
    """The process's grace period, set by the outermost ``stop_on_signal`` that names one, and
    the watchdog the first stop signal starts (disarmed when that context ends)."""

    seconds: float | None = None
    depth = 0
    disarmed: threading.Event | None = None

    @classmethod
    def arm(cls, name: str) -> None:
        if cls.seconds is None or cls.disarmed is not None:
            return
        disarmed = cls.disarmed = threading.Event()
        seconds, signum = cls.seconds, signal.Signals[name].value

        def watchdog() -> None:
            if disarmed.wait(seconds):
                return
            _say(f"torchrl: {name}: no safe point reached in {seconds:g} s (stop_grace_s); "
                 "aborting, the last checkpoint kept\n")
            _thread.interrupt_main()  # the second signal's abort, from the main thread
            if disarmed.wait(ABORT_AFTER_S):
                return
            _say(f"torchrl: {name}: the run did not stop; ending the process\n")
            os._exit(128 + signum)

        threading.Thread(target=watchdog, name="torchrl-stop-grace", daemon=True).start()


def _say(text: str) -> None:
    """A line on stderr, written with one system call (safe inside a signal handler)."""
    try:
        os.write(2, text.encode(errors="replace"))
    except OSError:
        pass


@contextmanager
def stop_on_signal(
    request_stop: Callable[[str], bool], grace_s: float | None = None
) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call ``request_stop(signal name)``, which returns
    whether a stop had been requested already: a second signal then interrupts at once
    (KeyboardInterrupt). The first one says so on stderr at once and starts the grace period
    (``grace_s``, given by the outermost context; inner ones keep it): see the module
    docstring. Outside the main thread (where handlers cannot be set) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals}
    outer = _Grace.depth == 0
    if outer:
        _Grace.seconds, _Grace.disarmed = grace_s, None
    _Grace.depth += 1

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if request_stop(name):
            raise KeyboardInterrupt
        if _Grace.disarmed is None:
            grace = f" within {_Grace.seconds:g} s" if _Grace.seconds is not None else ""
            _say(f"torchrl: {name}: stopping at the next safe point{grace} (send it again "
                 "to abort at once)\n")
        _Grace.arm(name)

    for sig in signals:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _Grace.depth -= 1
        if outer:
            if _Grace.disarmed is not None:
                _Grace.disarmed.set()
            _Grace.seconds, _Grace.disarmed = None, None


class StopRequests:
    """Where a run's signals go, from start-up to exit: to ``target`` (the agent's
    ``request_stop``: a clean stop at the next safe point, training or final evaluation) once
    there is one; before that a signal aborts at once (KeyboardInterrupt)."""

    def __init__(self):
        self.target: Callable[[str], bool] | None = None

    def __call__(self, signal_name: str) -> bool:
        if self.target is None:
            raise KeyboardInterrupt
        return self.target(signal_name)
