"""Writes torchrl_cli/cli/completion_index.json: Hydra's completion answers for every parent of
the shipped config, for a ``torchrl train`` line with no whole words and for a line that chooses
one option of a group (``agent=a2c``), so that a first TAB needs neither Hydra nor OmegaConf
(torchrl_cli/cli/completion.py says how they are used).

    python tools/completion_index.py           # rewrite the index (a few minutes)
    python tools/completion_index.py --check   # exit 1 if conf/ or the config code changed since

The index holds a hash of what its answers depend on; a stale one is never used (the TAB asks
Hydra, slowly), and tests/test_completion.py fails until it is rewritten.
"""

import argparse
import contextlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from torchrl_cli.cli.completion import (  # noqa: E402
    HYDRA_PARENT,
    INDEX,
    VARIANT_GROUPS,
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


def build(choice: str = "", fixed: frozenset = frozenset(),
          also: tuple = ()) -> dict[str, list[str]]:
    """Hydra's answer for every parent reachable from an empty word (and from ``+`` and ``~``
    without a ``choice``) on a line whose whole words are ``[choice]``, Hydra's own parents and
    the ``fixed`` ones left out; ``also``: parents to answer even where none leads to them."""
    whole = [choice] if choice else []
    answers: dict[str, list[str]] = {}
    todo = ["", *also] if choice else ["", "+", "~"]
    while todo:
        parent = todo.pop(0)
        if parent in answers or parent in fixed or HYDRA_PARENT.match(parent):
            continue
        answers[parent] = sorted(train_query(" ".join([*whole, parent]) if parent else
                                             "".join(f"{w} " for w in whole), whole))
        todo += parents_in(answers[parent])
    return dict(sorted(answers.items()))


def leaf_types(overrides: list[str]) -> dict[str, str]:
    """The type of each leaf key of the config these overrides compose (``int``, ``float``,
    ``bool``, ``str``, ``any``; ``?`` after it where it may be null): what a later override
    ``key=value`` must match for the composition (and so the answers) to stay the same. Keys
    of other node types (enums, lists, null nodes of a dataclass type) are left out."""
    from hydra import compose, initialize_config_dir
    from omegaconf import AnyNode, BooleanNode, DictConfig, FloatNode, IntegerNode, StringNode

    from torchrl_cli.config import CONFIG_NAME, config_dir, register_configs

    register_configs(overrides, quick=True)
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(CONFIG_NAME, overrides=overrides)
    tags = {IntegerNode: "int", FloatNode: "float", BooleanNode: "bool", StringNode: "str",
            AnyNode: "any"}
    found: dict[str, str] = {}

    def walk(node: DictConfig, prefix: str) -> None:
        for key in node.keys():
            child = node._get_node(key)
            path = f"{prefix}{key}"
            if isinstance(child, DictConfig):
                if not child._is_none() and not child._is_interpolation():
                    walk(child, f"{path}.")
            elif type(child) in tags:
                found[path] = tags[type(child)] + ("?" if child._is_optional() else "")

    walk(cfg, "")
    return dict(sorted(found.items()))


@contextlib.contextmanager
def compose_once():
    """Hydra composes the config of each query: within the build, where the config files stay
    the same, a line's config (and the repository of an overrides list) is made once."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    saved = {}
    for name in ("load_configuration", "_parse_overrides_and_create_caching_repo"):
        original = getattr(ConfigLoaderImpl, name)
        saved[name] = original
        made: dict = {}

        def once(self, config_name, overrides, *args, _original=original, _made=made, **kw):
            key = (config_name, tuple(overrides), repr(args), repr(sorted(kw.items())))
            if key not in _made:
                _made[key] = _original(self, config_name, overrides, *args, **kw)
            return _made[key]

        setattr(ConfigLoaderImpl, name, once)
    try:
        yield
    finally:
        for name, original in saved.items():
            setattr(ConfigLoaderImpl, name, original)


def build_index() -> dict:
    """The answers with no whole words; the group parents (``env=``, ``agent/``, ``+``, ``~``:
    Hydra answers them from the config files, whatever the line chose); then, for each option
    of each group of ``VARIANT_GROUPS``, the answers that differ from the first, and the leaf
    types of the config both ways."""
    from hydra.core.object_type import ObjectType

    answers = build()
    groups = sorted(p[:-1] for p in answers
                    if p.endswith("=") and p[:1] not in "+~" and answers[p]
                    and all(a.startswith(p) and a.count("=") == 1 for a in answers[p])
                    and group_has_options(p[:-1], ObjectType.CONFIG))
    fixed = frozenset(p for p in answers if p.startswith(("+", "~")) or p.endswith("/")
                      or (p.endswith("=") and p[:-1] in groups))
    types = leaf_types([])
    variants = {}
    with compose_once():
        for group in VARIANT_GROUPS:
            for choice in answers.get(f"{group}=", []):
                found = build(choice, fixed, also=tuple(p for p in answers if p not in fixed))
                delta = {p: a for p, a in found.items() if answers.get(p) != a}
                variant_types = leaf_types([choice])
                delta_types = {k: variant_types.get(k) for k in sorted({*types, *variant_types})
                               if types.get(k) != variant_types.get(k)}
                variants[choice] = {"answers": delta, "types": delta_types}
                print(f"{choice}: {len(delta)} answers differ", file=sys.stderr)
    return {"answers": answers, "groups": groups, "fixed": sorted(fixed), "types": types,
            "variants": variants}


def group_has_options(group: str, results_filter) -> bool:
    """Whether Hydra lists options of ``group`` (a group, not a key that happens to share
    ``=``)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path

    from torchrl_cli.config import config_dir

    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(config_dir())))
    return bool(loader.get_group_options(group, results_filter=results_filter))


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
    index = {"stamp": stamp, **build_index()}
    INDEX.write_text(json.dumps(index, indent=0, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {INDEX.relative_to(ROOT)}: {len(index['answers'])} parents, "
          f"{len(index['variants'])} group options, {INDEX.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
