"""Shell completion (bash, and zsh through bashcompinit): ``torchrl train -sc install=bash``
prints Hydra's script, which asks ``torchrl -sc query=bash`` for the words that complete the
line in ``COMP_LINE``. The query completes the subcommand, and after ``train`` the groups, their
options and the config's keys (Hydra's own query, told the line without ``train``).

Hydra's query costs half a second or more (Hydra's import, the schema stored, the config
composed). Its answers depend on nothing but the line and the config files, so they are looked
up, keyed by the line's whole words and the word's parent (``agent.`` for ``agent.l``, ``env=``
for ``env=Pe``) and filtered by the word, in two places before Hydra is asked:

- ``completion_index.json`` beside this file: Hydra's answers for a line with no whole words
  (``torchrl train agent.<TAB>``), every parent of the shipped config but Hydra's own
  (``hydra/``, ``hydra.``: its plugins, installed or not, add options there), and the answers
  that each option of the groups ``agent``, ``env``, ``net``, ``memory``, ``experiment`` and
  ``hparams_search`` changes, with the type of each leaf key. So it also answers a line whose
  whole words choose at most one of those options and set leaf keys to values of their types
  (``agent=a2c agent.lr=1e-3 agent.<TAB>``; ``index_lookup`` says why the answers are the
  same). It is written by ``python tools/completion_index.py`` and holds a hash of what the
  answers depend on (conf/, the package's config code, this file, the Hydra and OmegaConf
  versions); a hash that differs from the installed files', or a user's config folder, and
  it is not used.
- a cache file (``$XDG_CACHE_HOME/torchrl-cli/completion.json``) of the answers Hydra gave on
  this machine, dropped whenever a config file or the package's config code changes
  (``config_stamp``).

Either way a TAB takes about as long as Python's start, and imports neither Hydra nor torch."""

import contextlib
import hashlib
import io
import json
import os
import re
from pathlib import Path

from torchrl_cli.errors import ConfigError

SHELLS = ("bash", "zsh")
# zsh runs bash completion functions once bashcompinit is loaded
ZSH_PREAMBLE = "autoload -Uz bashcompinit && bashcompinit"


def shell_completion(args: list[str]) -> int:
    """``-sc install=<shell>``, ``-sc uninstall=<shell>`` or ``-sc query=<shell>``."""
    action = completion_action(args)
    verb, _, shell = action.partition("=")
    if verb not in ("install", "uninstall", "query") or shell not in SHELLS:
        raise ConfigError(
            f"-sc {action}: give install=<shell>, uninstall=<shell> or query=<shell>, "
            f"with a shell of {', '.join(SHELLS)}"
        )
    if verb == "query":
        print(" ".join(query(os.environ.get("COMP_LINE", ""))))
        return 0
    from torchrl_cli.cli.hydra_app import run_hydra

    if verb == "install" and shell == "zsh":
        print(ZSH_PREAMBLE)
    # Hydra names the program in the script from argv[0]: the completed command is `torchrl`
    return run_hydra(["-sc", f"{verb}=bash"], prog="torchrl")


def completion_action(args: list[str]) -> str:
    for i, arg in enumerate(args):
        if arg in ("-sc", "--shell-completion"):
            if i + 1 < len(args):
                return args[i + 1]
            break
        if arg.startswith("--shell-completion="):
            return arg.split("=", 1)[1]
    raise ConfigError("-sc needs install=<shell>, uninstall=<shell> or query=<shell>")


def query(line: str) -> list[str]:
    """The words that complete ``line`` (a ``torchrl ...`` command line, the cursor at its end)."""
    from torchrl_cli.cli import COMMANDS

    words = line.split()
    new_word = not line or line[-1].isspace()
    if len(words) < 2 or (len(words) == 2 and not new_word):
        partial = "" if len(words) < 2 else words[1]
        return [c for c in COMMANDS if c.startswith(partial)]
    if words[1] not in ("train", "tune"):
        return []  # the shell completes file names (run folders) itself
    whole, word = (words[2:], "") if new_word else (words[2:-1], words[-1])
    return cached_train_query(whole, word)


CACHE_SIZE = 500  # answers kept; the oldest go first
# a value Hydra completes as a file name (key=./path): the file system's, never cached
FILE_VALUE = re.compile(r"=(\.|/|\\|~)")


def cache_file() -> Path | None:
    """The cache's file; None where there is no home folder to hold it."""
    try:
        root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except (RuntimeError, KeyError):  # no HOME and no password entry
        return None
    return Path(root) / "torchrl-cli" / "completion.json"


def config_stamp(words: list[str]) -> list:
    """What Hydra's answers depend on besides the line: every file of the config folders (the
    shipped conf/, ``TORCHRL_CONFIG_DIR``'s, a ``--config-dir`` of the line) and the package's
    config code, by path, size and modification time."""
    from torchrl_cli.utils import config_dir

    package = Path(__file__).resolve().parents[1]
    folders = [config_dir(), os.environ.get("TORCHRL_CONFIG_DIR", "")]
    folders += [w.split("=", 1)[1] for w in words if w.startswith("--config-dir=")]
    folders += [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("--config-dir", "-cd")]
    files = [*(package / "config").glob("*.py"), Path(__file__)]
    for folder in folders:
        if folder and Path(folder).is_dir():
            files += [p for p in Path(folder).rglob("*") if p.is_file()]
    stamp = []
    for path in sorted(files):
        with contextlib.suppress(OSError):
            info = path.stat()
            stamp.append([str(path), info.st_size, info.st_mtime_ns])
    return stamp


def parent_of(word: str) -> str:
    """The part of ``word`` that Hydra's answer depends on: up to its last ``.``, ``=`` or
    ``/``, and a leading ``+`` or ``~`` (``+e`` asks for the groups that can be added)."""
    return re.match(r"^[+~]?(.*[.=/])?", word).group(0)


INDEX = Path(__file__).with_name("completion_index.json")
# the parents the index leaves to Hydra: its own groups and keys, which its plugins extend
HYDRA_PARENT = re.compile(r"^[+~]?hydra[./=]")


def index_stamp() -> str:
    """A hash of everything the index's answers depend on: the files of the shipped conf/ and
    of the package's config code, this file, and the Hydra and OmegaConf versions (read from
    their files, not imported)."""
    from torchrl_cli.utils import config_dir

    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    conf = config_dir()
    files = [(f"conf/{p.relative_to(conf).as_posix()}", p) for p in conf.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    files += [(f"config/{p.name}", p) for p in (package / "config").glob("*.py")]
    files.append(("completion.py", Path(__file__)))
    for name, path in sorted(files):
        digest.update(f"{name}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    for version in library_versions():
        digest.update(f"{version}\0".encode())
    return digest.hexdigest()


def library_versions() -> list[str]:
    """Hydra's and OmegaConf's versions from their source files (importing them is what the
    index saves)."""
    import importlib.util

    found = []
    for package, file in (("hydra", "__init__.py"), ("omegaconf", "version.py")):
        spec = importlib.util.find_spec(package)
        text = ""
        if spec is not None and spec.submodule_search_locations:
            with contextlib.suppress(OSError):
                text = (Path(next(iter(spec.submodule_search_locations))) / file).read_text()
        match = re.search(r"__version__\s*=\s*[\"']([^\"']+)", text)
        found.append(f"{package} {match.group(1) if match else '?'}")
    return found


def index_answer(whole: list[str], parent: str) -> list[str] | None:
    """Hydra's answer for ``parent`` after the ``whole`` words, from the index; None where the
    index cannot say (``index_lookup``), for Hydra's own parents, with a user's config folder,
    or where the index was made from other files than the installed ones."""
    if HYDRA_PARENT.match(parent) or os.environ.get("TORCHRL_CONFIG_DIR"):
        return None
    try:
        index = json.loads(INDEX.read_text())
        if index["stamp"] != index_stamp():
            return None
        return index_lookup(index, whole, parent)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


# the groups whose options the index has answers for (one option chosen on a line)
VARIANT_GROUPS = ("agent", "env", "net", "memory", "experiment", "hparams_search")
# an override the index can follow: key=value, the key a plain dotted name (no +, ~, hydra. or
# group path), the value a plain word that Hydra's override parser reads as one value
OVERRIDE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)=([A-Za-z0-9_.+-]+)$")
INT = re.compile(r"^[+-]?[0-9]+$")
FLOAT = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")


def index_lookup(index: dict, whole: list[str], parent: str) -> list[str] | None:
    """The index's answer for ``parent`` after the ``whole`` words, or None.

    Hydra answers a group's parent (``env=``, ``agent/``, ``+``, ``~``: the index's ``fixed``)
    from the config files, whatever the line's overrides, and every other parent from the
    config the line composes (``_get_matches`` of Hydra's completion plugin): its keys, each
    as ``key.`` or ``key=`` (a node or a value), and a key's value. So the index can answer
    after words that each either choose an option of a group (at most one, ``agent=a2c``:
    the index holds each option's answers) or set a leaf key of that config to a value its
    type takes (``agent.lr=1e-3``: the keys stay the same, and so do the answers but the
    values, which such a line leaves to Hydra). Anything else (two options chosen, ``+``,
    ``~``, a list or a sweep, a key of Hydra's, a value the key's type refuses, which makes
    Hydra answer no keys at all) is left to Hydra, but a group's parent after plain
    ``key=value`` words and options with files (an env id without one adds an option)."""
    answers = index["answers"]
    if not whole:
        return list(answers[parent]) if parent in answers else None
    choices, values = [], {}
    for word in whole:
        match = OVERRIDE.match(word)
        if not match or match.group(1) == "hydra" or match.group(1).startswith("hydra."):
            return None
        key, value = match.groups()
        if key in values or any(c.startswith(f"{key}=") for c in choices):
            return None
        if key in index["groups"]:
            choices.append(word)
        else:
            values[key] = value
    if not all(choice in index["variants"] for choice in choices):
        return None  # an option without a file (an env id), which adds an option of its own
    if parent in index["fixed"]:
        return list(answers[parent])
    if len(choices) > 1:
        return None
    variant = index["variants"][choices[0]] if choices else {"answers": {}, "types": {}}
    types = {**index["types"], **variant["types"]}  # a key the option removes: None
    if not all(value_fits(types.get(key), value) for key, value in values.items()):
        return None
    if values and parent.endswith("="):
        return None  # a key's value, which the line may have set (or one that refers to it)
    found = variant["answers"].get(parent, answers.get(parent))
    return None if found is None else list(found)


def value_fits(kind: str | None, value: str) -> bool:
    """Whether Hydra sets a leaf key of this kind (``int``, ``float``, ``bool``, ``str``,
    ``any``, ``?`` where null is allowed) to ``value`` without an error; no where unsure."""
    if kind is None:
        return False
    optional, kind = kind.endswith("?"), kind.rstrip("?")
    if value == "null":
        return optional
    if kind == "int":
        return bool(INT.match(value))
    if kind == "float":
        return bool(INT.match(value) or FLOAT.match(value))
    if kind == "bool":
        return value in ("true", "false")
    return kind in ("str", "any")


def cached_train_query(whole: list[str], word: str) -> list[str]:
    """``train_query`` for the line of ``whole`` words and the ``word`` being completed, from
    the cache when it holds the answer for the word's parent."""
    if FILE_VALUE.search(word):
        return train_query(" ".join([*whole, word]), whole)
    parent = parent_of(word)
    indexed = index_answer(whole, parent)
    if indexed is not None:
        return [w for w in indexed if w.startswith(word)]
    key = json.dumps([whole, parent, os.environ.get("TORCHRL_CONFIG_DIR", "")])
    stamp = config_stamp(whole)
    path = cache_file()
    try:
        cache = json.loads(path.read_text()) if path else {}
        answers = cache["answers"] if cache.get("stamp") == stamp else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        answers = {}
    if key in answers:
        found = answers.pop(key)  # put back last: the most recently used
    else:
        found = train_query(" ".join([*whole, parent]) if parent else
                            "".join(f"{w} " for w in whole), whole)
    answers[key] = found
    while len(answers) > CACHE_SIZE:
        answers.pop(next(iter(answers)))
    if path is None:
        return [w for w in found if w.startswith(word)]
    with contextlib.suppress(OSError):  # no cache where nothing can be written: just slower
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps({"stamp": stamp, "answers": answers}))
        os.replace(temporary, path)  # another shell's TAB reads the old file or this one
    return [w for w in found if w.startswith(word)]


def train_query(rest: str, overrides: list[str]) -> list[str]:
    """Hydra's completion of the overrides ``rest`` (the options of the env the line chooses
    included), without the internal schema nodes.

    Hydra's query only composes configs, so it runs with a task that does nothing rather than
    the training app (``cli.hydra_app``, whose imports reach torch: three seconds a TAB)."""
    import sys

    import hydra

    from torchrl_cli.config import CONFIG_NAME, config_dir, register_configs
    from torchrl_cli.config.store import SCHEMA_SUFFIX

    register_configs([o for o in overrides if "=" in o], quick=True)
    os.environ["COMP_LINE"] = f"torchrl {rest}"
    os.environ["COMP_POINT"] = str(len(os.environ["COMP_LINE"]))
    app = hydra.main(config_path=str(config_dir()), config_name=CONFIG_NAME, version_base="1.3")(
        lambda cfg: None
    )
    out, argv = io.StringIO(), sys.argv
    sys.argv = ["torchrl", "-sc", "query=bash"]
    try:
        with contextlib.redirect_stdout(out), one_config_repository():
            app()
    finally:
        sys.argv = argv
    return [w for w in out.getvalue().split() if SCHEMA_SUFFIX not in w and "tuned" not in w]


@contextlib.contextmanager
def one_config_repository():
    """Hydra's query asks for each group's options through a fresh copy of its config
    repository (a deep copy of every stored node, some 60 ms, 17 times for ``torchrl train
    <TAB>``): within one query, where the search path and the overrides stay the same, the
    copy made for an overrides list is made once. Hydra's private method is wrapped only
    while the query runs, and left alone when it is not there (another Hydra version)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    name = "_parse_overrides_and_create_caching_repo"
    original = getattr(ConfigLoaderImpl, name, None)
    if original is None:
        yield
        return
    made: dict = {}

    def once(self, config_name, overrides):
        key = (id(self), config_name, tuple(overrides))
        if key not in made:
            made[key] = original(self, config_name, overrides)
        return made[key]

    setattr(ConfigLoaderImpl, name, once)
    try:
        yield
    finally:
        setattr(ConfigLoaderImpl, name, original)
