"""Stopping a training loop cleanly on SIGINT (Ctrl-C) and SIGTERM."""

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def stop_on_signal(request_stop: Callable[[str], bool]) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call ``request_stop(signal name)``, which returns
    whether a stop had been requested already: a second signal then interrupts at once
    (KeyboardInterrupt). Outside the main thread (where handlers cannot be set) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum, frame):
        if request_stop(signal.Signals(signum).name):
            raise KeyboardInterrupt

    for sig in signals:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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
