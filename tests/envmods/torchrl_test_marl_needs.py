"""A PettingZoo env module whose own dependency is not installed (the one-line error names it)."""

import torchrl_absent_dependency  # noqa: F401


def parallel_env(**kwargs):
    raise AssertionError("never reached")
