"""The lowest versions pyproject.toml allows, as pip constraints (``make test-oldest``).

Every runtime dependency's lower bound (``name>=X``) becomes ``name==X``; torch is left out (the
machines pin it), and so is any dependency without a lower bound, which is reported instead:
each one must state its bound (issue 27, item 14). ``--check``: exit 1 when one lacks it.
"""

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
UNPINNED = {"torch"}  # the machines pin it (Makefile: the local CPU wheel)
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(\[[^\]]*\])?\s*(.*)$")


def lower_bounds(requirements: list[str]) -> tuple[dict[str, str], list[str]]:
    """``{name: lowest version}`` and the requirements that state no lower bound."""
    pins, unbounded = {}, []
    for requirement in requirements:
        name, _, spec = REQUIREMENT.match(requirement.split(";")[0]).groups()
        if name.lower() in UNPINNED:
            continue
        found = re.search(r">=\s*([0-9][^,\s]*)|==\s*([0-9][^,\s*]*)", spec)
        if found is None:
            unbounded.append(requirement)
        else:
            pins[name.lower()] = found.group(1) or found.group(2)
    return pins, unbounded


def main(argv: list[str]) -> int:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    pins, unbounded = lower_bounds(project["dependencies"])
    if "--check" not in argv:
        print("\n".join(f"{name}=={version}" for name, version in sorted(pins.items())))
    for requirement in unbounded:
        print(f"oldest: {requirement!r} in pyproject.toml states no lower bound; add >=X",
              file=sys.stderr)
    return 1 if unbounded else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
