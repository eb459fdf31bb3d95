"""Errors meant for people: one line that names the problem and the fix."""

import difflib
import os
import sys
from collections.abc import Iterable

_warned: set[str] = set()


class ConfigError(ValueError):
    """A bad value in the user's config or command line; printed as one line, exit code 2."""


def first_line(err: BaseException | str, limit: int | None = 200, empty: str | None = None) -> str:
    """An error's first non-blank line, for a one-line message (``empty``, by default the
    exception's type name, when it has none); past ``limit`` characters, its first sentence, or
    a cut marked '...'."""
    text = str(err).strip()
    if not text:
        return empty if empty is not None else type(err).__name__
    text = text.splitlines()[0].strip()
    if limit is None or len(text) <= limit:
        return text
    end = text.find(". ", 0, limit)
    return text[: end + 1] if end > 0 else text[: limit - 3] + "..."


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    """A ' (did you mean 'a', 'b'?)' hint, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + ", ".join(f"'{c}'" for c in close) + "?)"


def warn_once(message: str) -> None:
    """One ``torchrl: warning: ...`` line on stderr, the first time ``message`` comes up in this
    process (the CLI checks the env before Hydra builds it again)."""
    if message not in _warned:
        _warned.add(message)
        print(f"torchrl: warning: {message}", file=sys.stderr)


class FaultError(RuntimeError):
    """A fault the user did not type (an env that raises, non-finite numbers, a full disk);
    printed as one line naming what failed and how to recover, exit code 1."""


def debugging() -> bool:
    """``TORCHRL_DEBUG=1``: errors keep their full traceback instead of one line."""
    return os.environ.get("TORCHRL_DEBUG", "") not in ("", "0")
