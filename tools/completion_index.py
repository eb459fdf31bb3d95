"""Writes torchrl_cli/cli/completion_index.json: Hydra's completion answers for every parent of
the shipped config (a ``torchrl train`` line with no whole words), so that a first TAB needs
neither Hydra nor OmegaConf (torchrl_cli/cli/completion.py says how they are used).

    python tools/completion_index.py           # rewrite the index (about a minute)
    python tools/completion_index.py --check   # exit 1 if conf/ or the config code changed since

The index holds a hash of what its answers depend on; a stale one is never used (the TAB asks
Hydra, slowly), and tests/test_completion.py fails until it is rewritten.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from torchrl_cli.cli.completion import (  # noqa: E402
    HYDRA_PARENT,
    INDEX,
    index_stamp,
    train_query,
)


def parents_in(answers: list[str]) -> list[str]:
    """The parents a user can reach from these answers by typing on: a word ending in ``.``,
    ``=`` or ``/`` is one; a bare group name (a group with options and subgroups, or a
    deletion ``~net``) leads to ``name/``, ``name=`` and ``name.``."""
    found = []
    for word in answers:
        if word[-1] in "./=":
            if word.count("=") == (1 if word.endswith("=") else 0):  # not a value (key=0.1)
                found.append(word)
        elif "=" not in word:
            found += [f"{word}/", f"{word}=", f"{word}."]
    return found


def build() -> dict[str, list[str]]:
    """Every parent reachable from an empty word and from ``+`` and ``~``, and Hydra's answer
    for each (Hydra's own parents left out)."""
    answers: dict[str, list[str]] = {}
    todo = ["", "+", "~"]
    while todo:
        parent = todo.pop(0)
        if parent in answers or HYDRA_PARENT.match(parent):
            continue
        answers[parent] = sorted(train_query(parent, []))
        todo += parents_in(answers[parent])
    return dict(sorted(answers.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the index was made from other config files")
    args = parser.parse_args()
    stamp = index_stamp()
    if args.check:
        try:
            current = json.loads(INDEX.read_text()).get("stamp")
        except (OSError, ValueError):
            current = None
        if current != stamp:
            print(f"{INDEX.relative_to(ROOT)} was made from other config files; "
                  "run: python tools/completion_index.py", file=sys.stderr)
            return 1
        return 0
    index = {"stamp": stamp, "answers": build()}
    INDEX.write_text(json.dumps(index, indent=0, sort_keys=True) + "\n")
    print(f"wrote {INDEX.relative_to(ROOT)}: {len(index['answers'])} parents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
