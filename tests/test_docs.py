"""The documentation cannot drift: the README's size, the site's nav against its pages, every
relative link, every `torchrl train` / `torchrl tune` command quoted in the README and the pages
(composed, not trained), the generated config reference, the examples (run with tiny budgets)
and, where mkdocs is installed, the strict site build."""

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
PAGES = sorted(DOCS.rglob("*.md"))
WRITTEN = [README, ROOT / "CHANGELOG.md", *PAGES]  # what a reader reads: links and commands
GROUPS = ("agent", "agent/advantage", "env", "net", "experiment", "hparams_search")
# words that mark a command as a template to fill in rather than a command to run as written
PLACEHOLDERS = ("<", "…", "...", "my_", "MyOld", "HEAD_IP")


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- size, nav, links ------------------------------------------------------------------------


def test_the_readme_stays_under_20_kb():
    size = README.stat().st_size
    assert size <= 20 * 1024, f"README.md is {size} bytes; move detail into docs/ pages"


def nav_pages(nav) -> list[str]:
    """Every page path that mkdocs.yml's nav names, nested sections included."""
    if isinstance(nav, str):
        return [] if re.match(r"^[a-z]+://", nav) else [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = nav_pages(config["nav"])
    on_disk = {page.relative_to(DOCS).as_posix() for page in PAGES}
    assert len(listed) == len(set(listed)), "a page is listed twice in the nav"
    assert on_disk - set(listed) == set(), "pages under docs/ missing from mkdocs.yml's nav"
    assert set(listed) - on_disk == set(), "nav entries without a page under docs/"


def prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code spans (their brackets are code)."""
    text = re.sub(r"(?ms)^(```+|~~~+).*?^\1\s*$", "", text)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """The anchor of a heading, as mkdocs' toc makes it (Python-Markdown's slugify)."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    text = re.sub(r"(?ms)^(```+|~~~+).*?^\1\s*$", "", page.read_text())
    return {slug(h) for h in re.findall(r"(?m)^#{1,6}\s+(.+?)\s*#*$", text)}


def relative_links(page: Path) -> list[str]:
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose(page.read_text()))
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", t)]


@pytest.mark.parametrize("page", WRITTEN, ids=shown)
def test_relative_links_resolve(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve()
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{shown(page)}: links that resolve to nothing: {broken}"


# -- commands --------------------------------------------------------------------------------


def command_lines(text: str) -> list[tuple[str, str | None]]:
    """Every `torchrl train` / `torchrl tune` command a reader would type, with the error line
    the page shows for it (`torchrl: error: ...` on the next line) or None: lines of shell
    blocks (continuation lines joined, a `$ ` prompt and leading VAR=value assignments
    dropped), `$ `-prompted lines of output blocks, and inline code spans."""
    found = []
    for lang, block in re.findall(r"(?ms)^```(\w*)[^\n]*\n(.*?)^```", text):
        lines = block.replace("\\\n", " ").splitlines()
        for i, line in enumerate(lines):
            prompted = re.match(r"^\s*\$\s+", line) is not None
            if lang not in ("", "bash", "sh", "shell", "console") and not prompted:
                continue
            line = re.sub(r"^\s*(\$\s+)?((export\s+)?\w+=\S+\s+)*", "", line)
            if is_command(line):
                following = lines[i + 1] if i + 1 < len(lines) else ""
                error = following.split("torchrl: error: ", 1)[1] if following.startswith(
                    "torchrl: error: ") else None
                found.append((line, error))
    outside = re.sub(r"(?ms)^```.*?^```", "", text)
    found += [(s, None) for s in re.findall(r"`([^`\n]+)`", outside) if is_command(s)]
    return found


def is_command(line: str) -> bool:
    """`torchrl train|tune` followed by nothing, flags or overrides (not console output)."""
    words = line.split()
    return (len(words) >= 2 and words[:2] in (["torchrl", "train"], ["torchrl", "tune"])
            and (len(words) == 2 or "=" in words[2] or words[2].startswith(("-", "#"))))


def documented_commands() -> list[tuple[str, str, str | None]]:
    """(page, command, shown error) for each distinct command, on the first page quoting it."""
    seen, found = set(), []
    for page in WRITTEN:
        for line, error in command_lines(page.read_text()):
            words = " ".join(line.split("#")[0].split())
            if (words, error) not in seen:
                seen.add((words, error))
                found.append((shown(page), line, error))
    return found


def split_command(line: str) -> tuple[str, list[str], list[str]]:
    """(subcommand, Hydra flags, key=value overrides) of a documented command line."""
    from torchrl_cli.cli.train import split_args

    words = shlex.split(line, comments=True)
    ends = [i for i, w in enumerate(words) if w in ("|", "&", "&&", ";", ">", "2>", "||")]
    words = words[: ends[0]] if ends else words  # a pipe or a background job: the command only
    subcommand, rest = words[1], [w.replace("$PWD", "/tmp") for w in words[2:]]
    flags, overrides = split_args(rest)
    return subcommand, flags, overrides


def is_template(line: str, flags: list[str], overrides: list[str]) -> bool:
    """A command to fill in (placeholders, a run folder, a config folder of yours): its keys
    are checked, it is not composed."""
    return (
        any(p in line for p in PLACEHOLDERS)
        or any(re.search(r"=[A-Z]$", o) for o in overrides)  # seed=S, max_steps=N
        or any(o.startswith("resume=") for o in overrides)
        or bool({"--config-dir", "-cd"} & set(flags))
        or "TORCHRL_CONFIG_DIR" in line
    )


@pytest.fixture(scope="module")
def examples_importable(tmp_path_factory):
    """The pages name examples/custom_env.py's env as `custom_env:Corridor-v0`; validation
    may write beside the working directory (MLflow's default sqlite file): a folder of its own."""
    cwd = Path.cwd()
    sys.path.insert(0, str(EXAMPLES))
    os.chdir(tmp_path_factory.mktemp("commands"))
    yield
    os.chdir(cwd)
    sys.path.remove(str(EXAMPLES))


COMMANDS = documented_commands()


def test_the_docs_quote_commands():
    assert len(COMMANDS) > 50, "the command extraction found almost nothing: is it broken?"


# what validation says about this machine rather than about the command
MACHINE_DEPENDENT = ("torch sees no CUDA device", "needs a W&B login", "does not answer")


@pytest.mark.parametrize(("page", "line", "error"), COMMANDS,
                         ids=[f"{p}: {c[:70]}" for p, c, _ in COMMANDS])
def test_every_documented_command_composes(page, line, error, examples_importable):
    """A renamed key, group option or value in the code fails here, naming the page. A command
    shown with its error line must still fail with that error."""
    from torchrl_cli.config.compose import check_overrides
    from torchrl_cli.errors import ConfigError
    from torchrl_cli.run.build import check_run

    subcommand, flags, overrides = split_command(line)
    if is_template(line, flags, overrides):
        problems = unknown_keys(overrides)
        assert not problems, f"{page}: `{line}`: {problems}"
        return
    multirun = bool({"-m", "--multirun"} & set(flags))
    try:
        check_overrides(overrides, check_run, multirun=multirun, with_hydra=subcommand == "train")
    except ConfigError as err:
        if error is not None:
            shown_start = re.split(r"…|\.\.\.|\(", error)[0].strip()
            assert str(err).startswith(shown_start), f"{page}: `{line}` now says: {err}"
        elif not any(m in str(err) for m in MACHINE_DEPENDENT):
            pytest.fail(f"{page}: `{line}` does not compose: {err}")
    else:  # a missing package's error cannot show where the package is installed
        assert error is None or "not installed" in error, (
            f"{page}: `{line}` is shown failing ({error}) but composes")


@cache
def base_config(choices: tuple[tuple[str, str], ...]) -> DictConfig:
    from torchrl_cli.config.compose import compose_config

    return compose_config([f"{k}={v}" for k, v in choices])


def has_key(cfg: DictConfig, key: str) -> bool:
    node = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        node = node._get_node(part)
    return True


def unknown_keys(overrides: list[str]) -> list[str]:
    """The keys of a template command that the config it names does not have: group options
    that do not exist, and keys that are not in the composed config (``+key``: its parent)."""
    from torchrl_cli.cli.configs import options

    choices, problems = [], []
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key in GROUPS and not any(p in value for p in PLACEHOLDERS):
            if key != "env" and value not in options(key):
                problems.append(f"{key}={value} is not an option of {key}")
            elif key != "env" or value in options("env"):
                choices.append((key, value))
    cfg = base_config(tuple(choices))
    for override in overrides:
        raw, equals, _ = override.partition("=")
        key = raw.lstrip("+~")
        if (not equals or key in GROUPS or key.startswith("hydra") or key == "resume"
                or "/" in key or any(p in key for p in PLACEHOLDERS)):
            continue
        if raw.startswith("+"):  # a new key: the nearest existing ancestor must be a real node
            parts = key.split(".")[:-1]
            while parts and not has_key(cfg, ".".join(parts)):
                parts.pop()
            if key.count(".") and not parts:
                problems.append(f"no config node for +{key}")
        elif not has_key(cfg, key):
            problems.append(f"no config key {key}")
    return problems


def test_a_renamed_key_fails_the_command_check():
    """The check itself: a key the config lacks is caught in both tiers."""
    from torchrl_cli.config.compose import check_overrides
    from torchrl_cli.errors import ConfigError
    from torchrl_cli.run.build import check_run

    with pytest.raises(ConfigError, match="agent.policy.ppo_clip_rnge"):
        check_overrides(["agent.policy.ppo_clip_rnge=0.1"], check_run)
    assert unknown_keys(["resume=runs/x", "agent.lrr=1"]) == ["no config key agent.lrr"]
    assert unknown_keys(["agent=ppo_clp"]) == ["agent=ppo_clp is not an option of agent"]


# -- the generated reference -----------------------------------------------------------------


def test_the_config_reference_matches_the_schema():
    check = subprocess.run([sys.executable, str(ROOT / "tools" / "config_reference.py"),
                            "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def leaf_keys(node, prefix: str = "") -> set[str]:
    """The keys of a composed config, down to the nodes a user sets as a whole (lists, and
    the free-form dicts: _target_ nodes, kwargs, the search space)."""
    keys = set()
    for key in node:
        path = f"{prefix}{key}"
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing() \
                and "_target_" not in child and key not in ("kwargs", "params"):
            keys |= leaf_keys(child, path + ".")
        else:
            keys.add(path)
    return keys


@pytest.mark.parametrize("overrides", [
    ["agent=ppo_clip"], ["agent=ppo_adaptive"], ["agent=surrogate_pg"], ["agent=a2c"],
    ["agent=vanilla_pg", "env=Pendulum-v1"], ["env=ALE/Pong-v5"],
    ["hparams_search=ppo_clip_cartpole"],
    ["agent=mappo", "env=pettingzoo:mpe2.simple_spread_v3"],
], ids=lambda o: " ".join(o))
def test_every_composed_key_is_in_the_config_reference(overrides):
    """Every key of `torchrl train --cfg job` (or an ancestor set as a whole) has a row."""
    from torchrl_cli.config.compose import compose_config

    reference = (DOCS / "reference" / "config.md").read_text()
    documented = set(re.findall(r"^\| `([\w.]+)` \|", reference, re.M))
    documented |= {f"agent.advantage.{k}" for k in ("_target_", "gamma", "gae_lambda")}
    missing = []
    for key in leaf_keys(compose_config(overrides)):
        generic = key.replace("agent.value.", "agent.policy.")
        parts = key.split(".")
        ancestors = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        if not (ancestors | {generic}) & documented:
            missing.append(key)
    assert not missing, f"keys without a row in docs/reference/config.md: {missing}"


def defined_names(module: str) -> set[str]:
    """The top-level functions and classes a module of the package defines (read, not
    imported) and the public methods and properties of its classes, as ``Class.name``."""
    import ast

    path = ROOT / Path(*module.split("."))
    tree = ast.parse((path / "__init__.py" if path.is_dir() else path.with_suffix(".py"))
                     .read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {f"{node.name}.{item.name}" for item in node.body
                      if isinstance(item, ast.FunctionDef)}
    return names


def test_the_python_api_page_covers_the_public_face():
    """docs/reference/python.md (mkdocstrings): each ``:::`` target and member exists, and every
    public name of ``torchrl_cli/__init__.py`` and ``torchrl_cli.config`` has an entry."""
    page = (DOCS / "reference" / "python.md").read_text()
    targets = re.findall(r"(?m)^::: ([\w.]+)$", page)
    assert len(targets) >= 8
    documented = set()
    for target in targets:
        module, _, name = target.rpartition(".")
        assert name in defined_names(module), f"{target} is not defined"
        documented.add(name)
    for block in re.findall(r"(?m)^::: [\w.]+\.(\w+)\n(?:    .*\n)*?      members: \[(.*)\]", page):
        cls, members = block
        for member in members.split(", "):
            assert member in {n.split(".")[1] for n in defined_names("torchrl_cli.run.policy")
                              if n.startswith(cls + ".")}, f"{cls}.{member}"
    public = {n for n in defined_names("torchrl_cli") if not n.startswith("_")}
    from torchrl_cli import config

    public |= set(config.__all__) - {"CONFIG_NAME", "config_dir", "register_configs"}
    assert public and public <= documented, public - documented


def test_the_commands_page_matches_the_commands_help():
    """docs/reference/cli.md is tools/cli_reference.py's output: each command's --help."""
    check = subprocess.run([sys.executable, str(ROOT / "tools" / "cli_reference.py"),
                            "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("command", ["train", "tune", "configs", "eval", "export", "compare"])
def test_each_command_prints_the_help_the_page_shows(command, capsys):
    """`torchrl <command> --help` prints the page's text, and exits 0 (eval, export and
    configs used to take --help for a run folder or an argument)."""
    from torchrl_cli.cli import command_help, main

    assert main([command, "--help"]) == 0
    printed = capsys.readouterr().out
    if command == "train":  # then the groups' options and the composed config
        assert printed.startswith(command_help("train").split("\n\nHydra flags")[0])
    else:
        assert printed.rstrip() == command_help(command)
    assert command_help(command) in (DOCS / "reference" / "cli.md").read_text()


def test_eval_and_export_parse_the_options_their_help_shows():
    from torchrl_cli.cli import eval as eval_cli
    from torchrl_cli.cli import export as export_cli
    from torchrl_cli.cli.usage import EVAL, EXPORT

    for module, command in ((eval_cli, EVAL), (export_cli, EXPORT)):
        assert module.OPTIONS == {o.key: o.type for o in command.options}
        assert all(f"{key}=" in command.help() for key in module.OPTIONS)


def test_the_commands_page_has_a_section_per_command():
    from torchrl_cli.cli import COMMANDS as SUBCOMMANDS

    headings = re.findall(r"(?m)^## (\w+)$", (DOCS / "reference" / "cli.md").read_text())
    assert set(SUBCOMMANDS) <= set(headings)


def test_the_configs_footer_names_an_id_without_a_file():
    text = (ROOT / "torchrl_cli" / "cli" / "configs.py").read_text()
    env_id = re.search(r"without a file, e\.g\. \"\s*'env=([\w/-]+)", text).group(1)
    import gymnasium

    gymnasium.spec(env_id)  # registered
    assert not (ROOT / "conf" / "env" / f"{env_id}.yaml").exists()


# -- examples and the site -------------------------------------------------------------------


def run_example(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": f"{ROOT}:{EXAMPLES}", "PATH": "/usr/bin:/bin", "HOME": str(cwd),
           "TMPDIR": str(cwd)}  # the examples' own run folders land in the test's folder
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def test_example_train_from_python(tmp_path):
    proc = run_example([str(EXAMPLES / "train_from_python.py"), "--max-steps", "1024",
                        "--out", str(tmp_path)], tmp_path)
    assert "cartpole_solve:" in proc.stdout and "a2c seed 1:" in proc.stdout
    assert (tmp_path / "a2c" / "metrics.json").is_file()


def test_example_load_policy(tmp_path):
    proc = run_example([str(EXAMPLES / "load_policy.py"), "--train-steps", "1024",
                        "--episodes", "2"], tmp_path)
    assert "episode 1: return" in proc.stdout


def test_example_custom_env(tmp_path):
    proc = run_example([str(EXAMPLES / "custom_env.py"), "--max-steps", "2048"], tmp_path)
    assert "Corridor-v0: mean return" in proc.stdout


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_example_reproduce_evaluation(tmp_path, env):
    """metrics.json's episodes, replayed outside the tool, match episode by episode
    (CartPole's copies in Gymnasium's native vector env; Pendulum's in torchrl-cli's own)."""
    from torchrl_cli.config.compose import compose_config
    from torchrl_cli.run.train import train

    run = tmp_path / "run"
    train(compose_config([f"env={env}", "max_steps=2048", "logger.console=quiet",
                          "logger.progress=false"]), run)
    proc = run_example([str(EXAMPLES / "reproduce_evaluation.py"), str(run)], tmp_path)
    assert "every episode matches" in proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                    or importlib.util.find_spec("onnxscript") is None,
                    reason="the onnx extra is not installed")
def test_example_onnx_inference(tmp_path):
    """An exported policy plays with onnxruntime and Gymnasium alone (neither torch nor
    torchrl-cli imported), episode for episode as the torch policy does."""
    import numpy as np

    import torchrl_cli
    from torchrl_cli.cli import main
    from torchrl_cli.config.compose import compose_config
    from torchrl_cli.run.train import train

    run, model = tmp_path / "run", tmp_path / "cartpole.onnx"
    train(compose_config(["max_steps=2048", "logger.console=quiet", "logger.progress=false",
                          "eval_episodes=2"]), run)
    assert main(["export", str(run), "format=onnx", f"out={model}"]) == 0
    script = str(EXAMPLES / "onnx_inference.py")
    check = (f"import runpy, sys; sys.argv = [{script!r}, {str(model)!r}, '--episodes', '2']; "
             f"runpy.run_path({script!r}, run_name='__main__'); "
             "assert not any(m.split('.')[0] in ('torch', 'torchrl_cli') for m in sys.modules)")
    proc = run_example(["-c", check], tmp_path)
    shown = [float(r) for r in re.findall(r"episode \d: return (\S+)", proc.stdout)]
    policy, env = torchrl_cli.load_policy(run), None
    expected = []
    try:
        env = policy.make_env()
        for episode in range(2):
            obs, _ = env.reset(seed=episode)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy(obs))
                total, done = total + float(reward), terminated or truncated
            expected.append(total)
    finally:
        env.close()
    np.testing.assert_allclose(shown, expected)


def test_example_sweep_summary(tmp_path):
    """A real sweep's summary.csv, ranked, with each configuration's seeds from the jobs."""
    import csv

    torchrl = Path(sys.executable).parent / "torchrl"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "NO_COLOR": "1"}
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [str(torchrl), "train", "-m", "agent.lr=1e-3,3e-4", "seed=0,1", "max_steps=256",
         "agent.n_steps=32", "env.n_envs=2", "eval_freq=0", "eval_episodes=2",
         "logger.progress=false", "logger.console=quiet", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_example([str(EXAMPLES / "sweep_summary.py"), str(sweep)], tmp_path)
    with (sweep / "summary.csv").open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: -float(r["mean_return"]))
    ranked = re.findall(r"(?m)^\s+\d+\s+(\S+)\s+\[.*\]\s+2  (.+)$", proc.stdout)
    assert ranked == [(f"{float(r['mean_return']):.1f}", r["config"]) for r in rows]
    assert proc.stdout.count("each seed's final return: ") == 2
    assert f"best: {rows[0]['config']}" in proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None
                    or importlib.util.find_spec("material") is None,
                    reason="mkdocs and mkdocs-material are not installed (the docs extra)")
def test_the_site_builds_strictly(tmp_path):
    """Broken links and anchors, pages outside the nav and a stale reference fail the build."""
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1",
             "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "agents" / "ppo_clip.html").is_file()
    api = (tmp_path / "reference" / "python.html").read_text()
    assert "run_dir" in api and "end_episodes" in api  # mkdocstrings rendered the docstrings
    config = (tmp_path / "reference" / "config.html").read_text()
    # a pipe in code in a table row: written \\| for GitHub, shown bare on the site
    assert "<code>list[int] | None</code>" in config and "\\|" not in config
