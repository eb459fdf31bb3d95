"""The run's console: soft-wrapped off a terminal, mirrored to ``train.log``, tagged per sweep job.

Rich hard-wraps at the console's width (80 columns when the output is a pipe or a file), which
splits long lines such as the final evaluation; ``make_console`` turns that off whenever the
output is not a terminal. ``RunConsole`` prints to the screen and, when given a log file, the
same lines without colors to the file (appending, so a resumed run adds to its log); in a sweep
each job's screen lines start with its tag (``[job 3]``) so that parallel jobs can be told apart.
"""

import os
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.control import Control
from rich.text import Text

LOG_FILE = "train.log"
LOG_WIDTH = 120  # train.log's width: tables are narrower, text is never wrapped


def open_nofollow(path: str, flags: int) -> int:
    """``open``'s opener that refuses a symlink as the last component (OSError ELOOP)."""
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)


def make_console(file: IO[str] | None = None, **kwargs) -> Console:
    """A rich Console (on ``file``, default stdout) that soft-wraps when it is not a terminal."""
    console = Console(file=file, **kwargs)
    console.soft_wrap = not console.is_terminal
    return console


class RunConsole:
    """Prints to ``screen`` and to ``log_file`` (appended, no colors); ``tag`` starts each screen
    line. Anything else (``width``, ``is_terminal``...) is the screen console's."""

    def __init__(self, screen: Console, log_file: Path | None = None, tag: str | None = None):
        self.screen = screen
        self.tag = tag
        self._file = None
        self.log = None
        if log_file is not None:
            # never through a symlink: a run folder's train.log could point at any file
            self._file = open(  # noqa: SIM115  closed in close()
                log_file, "a", encoding="utf-8", opener=open_nofollow
            )
            self.log = Console(
                file=self._file,
                width=LOG_WIDTH,
                soft_wrap=True,
                no_color=True,
                force_terminal=False,
                highlight=False,
                emoji=False,
            )

    def __getattr__(self, name: str):
        return getattr(self.screen, name)

    def print(self, *objects, **kwargs) -> None:
        if all(isinstance(o, Control) for o in objects):  # a live display's refresh
            self.screen.print(*objects, **kwargs)
            return
        if self.tag:
            self._print_tagged(*objects, **kwargs)
        else:
            self.screen.print(*objects, **kwargs)
        if self.log is not None:
            self.log.print(*objects, **kwargs)
            self._file.flush()

    def _print_tagged(self, *objects, **kwargs) -> None:
        """Render at the width left after the tag, then print each line behind the tag."""
        screen, prefix = self.screen, f"{self.tag} "
        width = max(screen.width - len(prefix), 20)
        with screen.capture() as captured:
            screen.print(*objects, **{**kwargs, "width": width})
        for line in captured.get().rstrip("\n").split("\n"):
            screen.print(Text(prefix, style="dim") + Text.from_ansi(line), soft_wrap=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self.log = None


def as_run_console(console: Console | RunConsole | None) -> RunConsole:
    """``console`` as a RunConsole (a new stdout console when None)."""
    if isinstance(console, RunConsole):
        return console
    return RunConsole(console if console is not None else make_console())
