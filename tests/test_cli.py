"""The real ``torchrl`` command in a subprocess: what a user sees, and the files a run leaves."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import torch
import yaml
from conftest import (
    TIMEOUT,
    TINY,
    assert_no_traceback,
    assert_one_line_error,
    compose_config,
    snapshot,
    torchrl,
)
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

from torchrl_cli.config import config_dir
from torchrl_cli.errors import ConfigError
from torchrl_cli.run.train import train

RUN_NAME = re.compile(r"\d{2}-\d{2}-\d{2}_ppo_clip_CartPole-v1(_\d+)?")
METRIC_KEYS = ("mean_return", "std_return", "episodes", "env_steps", "wall_seconds",
               "train_seconds", "eval_seconds")
SCALAR_TAGS = ("charts/steps_per_second", "charts/episode_return", "charts/learning_rate",
               "losses/approx_kl", "losses/policy_loss", "losses/value_loss", "losses/entropy",
               "eval/mean_return", "eval/std_return")


def run_folders(cwd: Path) -> list[Path]:
    """The folders ``runs/<date>/<name>`` under ``cwd``."""
    return sorted(p for p in (cwd / "runs").glob("*/*") if p.is_dir())


# what every command imports at least: the time a command cannot beat
IMPORT_FLOOR = "import torch, gymnasium, hydra, omegaconf, rich, tensorboard"
_TINY_RUN: dict = {}


@pytest.fixture
def tiny_run(tmp_path_factory, torchrl_bin, cli_env) -> dict:
    """One tiny training run (in a fresh folder), shared by the tests that only read it."""
    if not _TINY_RUN:
        cwd = tmp_path_factory.mktemp("tiny_run")
        proc = torchrl(torchrl_bin, ["train", *TINY], cwd, cli_env)
        _TINY_RUN.update(cwd=cwd, proc=proc, folders=run_folders(cwd))
    proc = _TINY_RUN["proc"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(_TINY_RUN["folders"]) == 1, _TINY_RUN["folders"]
    return {**_TINY_RUN, "dir": _TINY_RUN["folders"][0]}


@pytest.mark.parametrize("args", [["--help"], ["-h"], []], ids=["--help", "-h", "no-args"])
def test_usage(torchrl_bin, cli_env, tmp_path, args):
    """`torchrl --help` and a bare `torchrl` print the usage with both commands and exit 0."""
    proc = torchrl(torchrl_bin, args, tmp_path, cli_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: torchrl <command>")
    for word in ("train", "configs", "-m"):
        assert word in proc.stdout
    assert proc.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_configs_lists_every_group(torchrl_bin, cli_env, tmp_path):
    """`torchrl configs` has a row for every group folder of conf/ (but tuned/ and Hydra's
    own), with each of its options."""
    proc = torchrl(torchrl_bin, ["configs"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    conf = config_dir()
    groups = {str(p.parent.relative_to(conf)) for p in conf.rglob("*.yaml")}
    groups = {g for g in groups if g != "." and not g.startswith(("tuned", "hydra", "env/"))}
    assert groups >= {"agent", "agent/advantage", "hparams_search"}
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^│ (\S+)\s+│ (.*?)\s*│$",
                                                         proc.stdout, re.M)}
    assert groups <= rows.keys(), rows.keys()
    for group in groups - {"env"}:
        for option in (conf / group).glob("*.yaml"):
            assert option.stem in proc.stdout, (group, option.stem)
    for name in ("CartPole-v1", "Pendulum-v1", "tuned"):
        assert name in proc.stdout
    assert "ppo_clip_schema" not in proc.stdout  # internal schema nodes are not options
    assert list(tmp_path.iterdir()) == []


def test_configs_of_a_pair_prints_its_tuned_values(torchrl_bin, cli_env, tmp_path):
    """`torchrl configs ppo_clip CartPole-v1`: one row per value the tuned file sets; with a
    memory, its tuned_memory file's values too; a pair without a file says so; an unknown agent
    or memory is one error line."""
    proc = torchrl(torchrl_bin, ["configs", "ppo_clip", "CartPole-v1"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stderr
    tuned = OmegaConf.load(config_dir() / "tuned" / "ppo_clip" / "CartPole-v1.yaml")
    assert re.search(rf"│ agent\.lr\s+│ {tuned.agent.lr}\s+│", proc.stdout), proc.stdout
    assert re.search(r"│ agent\.advantage\.gae_lambda\s+│ 0\.95\s+│", proc.stdout)
    assert re.search(rf"│ max_steps\s+│ {tuned.max_steps}\s+│", proc.stdout)
    proc = torchrl(torchrl_bin, ["configs", "ppo_clip", "CartPoleNoVel-v1", "gru"], tmp_path,
                   cli_env)
    assert proc.returncode == 0, proc.stderr
    gru = "conf/tuned_memory/ppo_clip/CartPoleNoVel-v1/gru.yaml"
    assert re.search(r"│ agent\.lr\s+│ 0\.001\s+│ conf/tuned_memory/ppo_clip", proc.stdout)
    assert "+ memory=gru:" in proc.stdout and "<lstm|none>" in proc.stdout
    assert gru in proc.stdout.replace("│", "").replace("\n", "").replace(" ", "")
    proc = torchrl(torchrl_bin, ["configs", "a2c", "Acrobot-v1"], tmp_path, cli_env)
    assert proc.returncode == 0 and "no tuned file for a2c + Acrobot-v1" in proc.stdout
    proc = torchrl(torchrl_bin, ["configs", "ppo_clip", "CartPole-v1", "lsmt"], tmp_path, cli_env)
    assert_one_line_error(proc, "unknown memory 'lsmt'", "did you mean 'lstm'")
    assert_one_line_error(torchrl(torchrl_bin, ["configs", "ppo_clp", "CartPole-v1"], tmp_path,
                                  cli_env), "unknown agent 'ppo_clp'", "did you mean 'ppo_clip'")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags", [["--cfg", "job"], ["--cfg=job"]], ids=["--cfg job", "--cfg=job"])
def test_cfg_job_prints_config_and_runs_nothing(torchrl_bin, cli_env, tmp_path, flags):
    """`torchrl train --cfg job` prints the composed config as YAML and creates no run folder."""
    proc = torchrl(torchrl_bin, ["train", *flags, "agent.lr=3e-4"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    assert "ppo_clip" in proc.stdout and "CartPole-v1" in proc.stdout
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["agent"]["name"] == "ppo_clip"
    assert cfg["env"]["id"] == "CartPole-v1"
    assert cfg["net"]["name"] == "auto"  # chosen from the observation space at build time
    assert cfg["agent"]["lr"] == pytest.approx(3e-4)
    assert "final evaluation" not in proc.stdout
    assert not (tmp_path / "runs").exists(), run_folders(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_train_help_lists_the_real_options(torchrl_bin, cli_env, tmp_path):
    """`torchrl train --help`: each group with its real options (conf/ files), one line for any
    other env id, no internal schema node or per-id tuned entry, then the composed config;
    under 180 lines (the config dump grows with the schema), runs nothing."""
    proc = torchrl(torchrl_bin, ["train", "--help"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    assert "== Configuration groups ==" in proc.stdout
    assert "== Config ==" in proc.stdout
    conf = config_dir()
    for group in ("agent", "agent/advantage", "net", "experiment", "hparams_search"):
        line = re.search(rf"^{group}: (.*)$", proc.stdout, re.M)
        assert line, (group, proc.stdout)
        assert line.group(1).split(", ") == sorted(p.stem for p in (conf / group).glob("*.yaml"))
    env_line = re.search(r"^env: (.*)$", proc.stdout, re.M).group(1).split(", ")
    assert env_line == sorted(str(p.relative_to(conf / "env").with_suffix(""))
                              for p in (conf / "env").rglob("*.yaml"))
    assert re.search(r"any registered Gymnasium id.*module:-qualified", proc.stdout)
    assert "_schema" not in proc.stdout and "tuned/" not in proc.stdout
    assert "FrozenLake-v1, " not in proc.stdout  # registered ids are not listed one by one
    assert re.search(r"^max_steps: \d+$", proc.stdout, re.M)  # then the composed config
    assert len(proc.stdout.splitlines()) < 180, len(proc.stdout.splitlines())
    assert list(tmp_path.iterdir()) == []


def test_train_help_shows_the_config_the_overrides_compose(torchrl_bin, cli_env, tmp_path):
    """--help with overrides shows their config (an id without a file too); a bad override is
    the usual one-line error."""
    proc = torchrl(torchrl_bin, ["train", "--help", "env=FrozenLake-v1", "agent.lr=0.125"],
                   tmp_path, cli_env)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^  id: FrozenLake-v1$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^  lr: 0.125$", proc.stdout, re.M)
    assert_one_line_error(torchrl(torchrl_bin, ["train", "--help", "agent=ppo_clipp"], tmp_path,
                                  cli_env), "unknown agent 'ppo_clipp'")
    assert list(tmp_path.iterdir()) == []


def _wall(cmd: list[str], cwd: Path, env: dict, timeout: float) -> float:
    """Seconds ``cmd`` takes from start to exit (it must succeed within ``timeout``)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return time.perf_counter() - start


def test_train_help_takes_about_the_import_time(torchrl_bin, cli_env, tmp_path):
    """--help within 60 s even on a loaded machine, and close to the time the imports alone
    take (best of two each; it took 30x that when every Gymnasium id had a config node)."""
    floor = min(_wall([sys.executable, "-c", IMPORT_FLOOR], tmp_path, cli_env, TIMEOUT)
                for _ in range(2))
    help_s = min(_wall([torchrl_bin, "train", "--help"], tmp_path, cli_env, 60)
                 for _ in range(2))
    assert help_s < 3 * floor, (help_s, floor)


def test_the_process_ends_without_the_interpreter_teardown(torchrl_bin, cli_env, tmp_path):
    """After the last line the process exits at once: atexit handlers still run and the output
    is complete, but the interpreter's teardown (half a second with torch loaded) is skipped."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import atexit, os, sys\n"
        "out = os.path.dirname(os.path.abspath(__file__))\n"
        "atexit.register(lambda: open(os.path.join(out, 'atexit'), 'w').close())\n"
        "class Teardown:  # freed in the teardown, when the module globals may be gone\n"
        "    def __del__(self, _open=os.open, _close=os.close,\n"
        "                _path=os.path.join(out, 'teardown'), _flags=os.O_CREAT | os.O_WRONLY):\n"
        "        _close(_open(_path, _flags))\n"
        "sys.torchrl_test_teardown = Teardown()\n"
    )
    env = {**cli_env, "PYTHONPATH": os.pathsep.join([str(site), cli_env.get("PYTHONPATH", "")])}
    work = tmp_path / "work"
    work.mkdir()
    proc = torchrl(torchrl_bin, ["train", "--cfg", "job"], work, env)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["env"]["id"] == "CartPole-v1"  # all of it flushed
    assert (site / "atexit").exists()
    assert not (site / "teardown").exists()
    # the same interpreter without the CLI does tear down (so the check above can fail)
    subprocess.run([sys.executable, "-c", "pass"], env=env, timeout=TIMEOUT, check=True)
    assert (site / "teardown").exists()


def _complete(script: str, line: str, env: dict, cwd: Path) -> list[str]:
    """What bash offers for ``line`` (the cursor at its end) with the completion ``script``
    installed: its function run the way bash runs it on TAB."""
    driver = (
        'eval "$TORCHRL_SCRIPT"\n'
        'COMP_LINE="$TORCHRL_LINE"; COMP_POINT=${#COMP_LINE}\n'
        'read -ra COMP_WORDS <<< "$COMP_LINE"\n'
        'COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))\n'
        '[[ "$COMP_LINE" == *" " ]] && COMP_CWORD=${#COMP_WORDS[@]}\n'
        "hydra_bash_completion\n"
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    proc = subprocess.run(["bash", "-c", driver], cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT,
                          env={**env, "TORCHRL_SCRIPT": script, "TORCHRL_LINE": line})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_completes_groups_options_and_keys(torchrl_bin, cli_env, tmp_path):
    """`eval "$(torchrl train -sc install=bash)"` installs a completion whose query works: the
    subcommand, a group's options, the keys of a node (of the env the line chooses, too)."""
    proc = torchrl(torchrl_bin, ["train", "-sc", "install=bash"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stderr
    script = proc.stdout
    assert re.search(r"^COMP_WORDBREAKS=.*-F hydra_bash_completion torchrl$", script, re.M)
    env = {**cli_env, "PATH": os.pathsep.join([str(Path(torchrl_bin).parent),
                                               cli_env.get("PATH", "")])}
    assert _complete(script, "torchrl tr", env, tmp_path) == ["train"]
    agents = sorted(p.stem for p in (config_dir() / "agent").glob("*.yaml"))
    assert _complete(script, "torchrl train agent=", env, tmp_path) == [
        f"agent={a}" for a in agents]
    assert _complete(script, "torchrl train agent=ppo", env, tmp_path) == [
        "agent=ppo_adaptive", "agent=ppo_clip"]
    keys = _complete(script, "torchrl train seed=1 agent.", env, tmp_path)
    assert {"agent.lr=", "agent.gamma=", "agent.policy."} <= set(keys), keys
    assert "env=CartPole-v1" in _complete(script, "torchrl train env=Car", env, tmp_path)
    atari = _complete(script, "torchrl train env=ALE/Pong-v5 env.atari.fr", env, tmp_path)
    assert atari == ["env.atari.frame_skip=", "env.atari.frame_stack="], atari
    groups = _complete(script, "torchrl train ", env, tmp_path)
    assert "net=" in groups and not [g for g in groups if "_schema" in g or "tuned" in g]
    assert list(tmp_path.iterdir()) == []


def test_zsh_completion_is_the_bash_one_through_bashcompinit(torchrl_bin, cli_env, tmp_path):
    """-sc install=zsh loads bashcompinit first; its query answers as bash's does."""
    proc = torchrl(torchrl_bin, ["train", "-sc", "install=zsh"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "autoload -Uz bashcompinit && bashcompinit"
    assert "-F hydra_bash_completion torchrl" in proc.stdout
    proc = subprocess.run([torchrl_bin, "-sc", "query=zsh"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=TIMEOUT,
                          env={**cli_env, "COMP_LINE": "torchrl train net=m"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["net=mlp", "net=mlp_large", "net=multi_input"]
    assert_one_line_error(torchrl(torchrl_bin, ["train", "-sc", "install=fish"], tmp_path,
                                  cli_env), "install=fish", "bash, zsh")


def test_tiny_run_creates_one_run_folder(tiny_run):
    """A tiny run exits 0, creates exactly one runs/<date>/<time>_ppo_clip_CartPole-v1 folder."""
    folder = tiny_run["dir"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", folder.parent.name)
    assert RUN_NAME.fullmatch(folder.name), folder.name
    assert [p.name for p in (tiny_run["cwd"] / "runs").iterdir()] == [folder.parent.name]
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml",
                 "model.pt", "metrics.json"):
        assert (folder / name).is_file(), name
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1


def test_a_run_composes_its_config_once(tmp_path, monkeypatch):
    """A plain run composes its config once, for the check and the job alike (Hydra's own entry
    composes twice more); the run folder's .hydra/ still records it as Hydra does."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    from torchrl_cli.cli import main

    compositions = []
    original = ConfigLoaderImpl.load_configuration

    def counted(self, *args, **kwargs):
        compositions.append(kwargs.get("overrides"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counted)
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "seed=3"]) == 0
    assert compositions == [[*TINY, "seed=3"]]
    (folder,) = (tmp_path / "runs").glob("*/*")
    hydra_cfg = yaml.safe_load((folder / ".hydra" / "hydra.yaml").read_text())["hydra"]
    assert (hydra_cfg["run"]["dir"], hydra_cfg["mode"]) == (str(folder), "RUN")
    assert yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text()) == [*TINY, "seed=3"]
    assert yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())["seed"] == 3
    assert json.loads((folder / "metrics.json").read_text())["env_steps"] == 256


def test_tiny_run_console_output(tiny_run):
    """The console names the run folder and ends with the 'final evaluation' line."""
    proc = tiny_run["proc"]
    assert_no_traceback(proc)
    assert "torchrl train ppo_clip on CartPole-v1" in proc.stdout
    assert tiny_run["dir"].name in proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    assert re.match(r"final evaluation: mean return [\d.]+ ± [\d.]+ over 2 episodes after 256 "
                    r"env steps \([\d.]+ s of training\)$", last), last


def test_tiny_run_console_is_unwrapped_and_mirrored_to_train_log(tiny_run):
    """Piped, no line is hard-wrapped (the banner holds the whole run folder path, longer than
    the console); train.log in the run folder holds exactly what was printed."""
    proc, folder = tiny_run["proc"], tiny_run["dir"]
    banner = proc.stdout.splitlines()[0]
    assert banner.startswith("torchrl train ppo_clip") and len(banner) > 120, banner
    assert banner.endswith(str(folder)), banner
    assert (folder / "train.log").read_text() == proc.stdout


def test_target_reached_is_said_and_stops(torchrl_bin, cli_env, tmp_path):
    """A target every evaluation reaches: one line names the step and training time, then
    the final evaluation, and training stops there."""
    proc = torchrl(torchrl_bin, ["train", *TINY, "eval_freq=64", "target_return=-1"], tmp_path,
                   cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    reached = [line for line in lines if line.startswith("target -1 reached")]
    assert len(reached) == 1, proc.stdout
    assert re.fullmatch(r"target -1 reached at 64 env steps, [\d.]+ s of training; stopping",
                        reached[0])
    assert re.match(r"final evaluation: .* after 64 env steps", lines[-1]), lines[-1]


def test_console_quiet_prints_the_start_and_the_end(torchrl_bin, cli_env, tmp_path):
    proc = torchrl(torchrl_bin, ["train", *TINY, "eval_freq=64", "logger.console=quiet"],
                   tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4, proc.stdout  # banner, backend, observations, final evaluation
    assert lines[2] == "observations float32 (4,); torch threads 1 (auto: no convolutions)"
    assert lines[0].startswith("torchrl train") and lines[-1].startswith("final evaluation")


def test_tiny_run_saves_config_and_overrides(tiny_run):
    """.hydra/config.yaml holds the config with the overrides; overrides.yaml lists them."""
    folder = tiny_run["dir"]
    cfg = OmegaConf.load(folder / ".hydra" / "config.yaml")
    assert cfg.agent.name == "ppo_clip" and cfg.env.id == "CartPole-v1"
    assert cfg.max_steps == 256 and cfg.agent.n_steps == 32 and cfg.env.n_envs == 2
    assert cfg.eval_freq == 0 and cfg.eval_episodes == 2 and cfg.logger.progress is False
    for model in ("policy", "value"):
        assert cfg.agent[model].num_epochs == 1
        assert cfg.agent[model].num_mini_batches == 2
    assert cfg.agent.policy.optimizer.lr == cfg.agent.lr  # interpolations resolve
    overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
    assert overrides == TINY


def test_tiny_run_saved_config_is_resolved(tiny_run):
    """config.yaml in the run folder is the resolved config (the README's promise): no ${...}
    left, and the values equal Hydra's composed config once resolved."""
    text = (tiny_run["dir"] / "config.yaml").read_text()
    assert "${" not in text, [line for line in text.splitlines() if "${" in line]
    composed = OmegaConf.load(tiny_run["dir"] / ".hydra" / "config.yaml")
    assert OmegaConf.load(tiny_run["dir"] / "config.yaml") == OmegaConf.create(
        OmegaConf.to_container(composed, resolve=True))


def test_tiny_run_saves_model(tiny_run):
    """model.pt holds the policy, value and state-normalizer state dicts as tensors."""
    state = torch.load(tiny_run["dir"] / "model.pt", weights_only=True)
    assert set(state) == {"policy", "value", "state_normalizer", "reward_scaler"}
    for name in ("policy", "value"):
        assert state[name] and all(isinstance(t, torch.Tensor) for t in state[name].values())
        assert all(torch.isfinite(t).all() for t in state[name].values())


def test_tiny_run_writes_metrics(tiny_run):
    """metrics.json has the final evaluation: returns over eval_episodes, steps and timings."""
    metrics = json.loads((tiny_run["dir"] / "metrics.json").read_text())
    for key in METRIC_KEYS:
        assert key in metrics, key
    assert metrics["agent"] == "ppo_clip" and metrics["env"] == "CartPole-v1"
    assert metrics["episodes"] == 2 == len(metrics["returns"])
    assert metrics["mean_return"] == pytest.approx(sum(metrics["returns"]) / 2)
    assert all(r >= 1 for r in metrics["returns"])  # CartPole pays 1 per step
    assert math.isfinite(metrics["std_return"]) and metrics["std_return"] >= 0
    assert metrics["env_steps"] == 256
    assert 0 < metrics["train_seconds"] <= metrics["wall_seconds"]
    # the final evaluation's time is counted, apart from training's
    assert 0 < metrics["eval_seconds"] <= metrics["wall_seconds"] - metrics["train_seconds"]


def test_tiny_run_writes_tensorboard_events(tiny_run):
    """TensorBoard's own reader finds the scalars at env steps > 0 and the config as text."""
    events = EventAccumulator(str(tiny_run["dir"]), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    for tag in SCALAR_TAGS:
        assert tag in tags["scalars"], tag
        steps = [e.step for e in events.Scalars(tag)]
        assert steps and all(0 < s <= 256 for s in steps), (tag, steps)
    assert [e.step for e in events.Scalars("charts/steps_per_second")] == [64, 128, 192, 256]
    assert all(e.value > 0 for e in events.Scalars("charts/steps_per_second"))
    metrics = json.loads((tiny_run["dir"] / "metrics.json").read_text())
    final = events.Scalars("eval/mean_return")[-1]
    assert (final.step, final.value) == (256, pytest.approx(metrics["mean_return"]))
    assert "config/text_summary" in tags["tensors"]
    proto = events.Tensors("config/text_summary")[0].tensor_proto
    text = tensor_util.make_ndarray(proto).item().decode()
    for line in ("max_steps: 256", "n_envs: 2", "id: CartPole-v1", "name: ppo_clip"):
        assert line in text, line
    assert "${" not in text  # the config is logged resolved


def test_concurrent_runs_get_distinct_folders(torchrl_bin, cli_env, tmp_path):
    """Two runs started together get two fresh folders, even when their second's name is taken."""
    # Runs that started earlier in each of the coming seconds: their folders must be left alone.
    now = datetime.now()
    decoys = []
    for dt in range(-1, 90):
        t = now + timedelta(seconds=dt)
        decoy = tmp_path / "runs" / f"{t:%Y-%m-%d}" / f"{t:%H-%M-%S}_ppo_clip_CartPole-v1"
        decoy.mkdir(parents=True, exist_ok=True)
        (decoy / "metrics.json").write_text("{}\n")
        decoys.append(decoy)
    procs = [subprocess.Popen([torchrl_bin, "train", *TINY, f"seed={seed}"], cwd=tmp_path,
                              env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for seed in (0, 1)]
    outputs = [p.communicate(timeout=TIMEOUT) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out + err
        assert "Traceback" not in out + err
    for decoy in decoys:
        assert [p.name for p in decoy.rglob("*")] == ["metrics.json"], decoy
        assert (decoy / "metrics.json").read_text() == "{}\n"
    folders = [f for f in run_folders(tmp_path) if f not in decoys]
    assert len(folders) == 2, folders
    for folder in folders:
        match = RUN_NAME.fullmatch(folder.name)
        assert match and match.group(1), folder.name  # a taken name gets a _<n> suffix
        overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
        seed = int(overrides[-1].removeprefix("seed="))
        assert json.loads((folder / "metrics.json").read_text())["seed"] == seed
        assert OmegaConf.load(folder / ".hydra" / "config.yaml").seed == seed
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1
        assert folder.name in outputs[seed][0]  # each run printed its own folder
    seeds = {json.loads((f / "metrics.json").read_text())["seed"] for f in folders}
    assert seeds == {0, 1}


@pytest.mark.parametrize("form", ["plain", "double-quoted", "interpolated", "++"])
def test_existing_run_dir_is_refused(tiny_run, torchrl_bin, cli_env, tmp_path, form):
    """hydra.run.dir=<a folder holding a run>, however it is written, fails with exit 2 and
    leaves its files untouched."""
    old = tmp_path / "runs" / "old"
    shutil.copytree(tiny_run["dir"], old)
    before = snapshot(old)
    env = {**cli_env, "RUN_NAME": "old"}
    override = {
        "plain": f"hydra.run.dir={old}",
        "double-quoted": f'hydra.run.dir="{old}"',
        "interpolated": f"hydra.run.dir={old.parent}/${{oc.env:RUN_NAME,new}}",
        "++": f"++hydra.run.dir={old}",
    }[form]
    proc = torchrl(torchrl_bin, ["train", *TINY, "seed=5", override], tmp_path, env)
    assert_one_line_error(proc, "hydra.run.dir", "already exists and is not an empty folder")
    assert snapshot(old) == before
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]


def test_the_hydra_app_itself_refuses_an_existing_run_dir(tiny_run, tmp_path, capsys):
    """Past the command line's check (the Hydra app run directly), the resolved folder is
    claimed in the process that writes it: a run is refused before anything is written."""
    from torchrl_cli.cli.hydra_app import run_hydra

    old = tmp_path / "old"
    shutil.copytree(tiny_run["dir"], old)
    before = snapshot(old)
    assert run_hydra([*TINY, f"hydra.run.dir={old}"]) == 2
    assert snapshot(old) == before
    line = capsys.readouterr().err.strip()
    assert line.startswith("torchrl: error: hydra.run.dir=") and "already holds files" in line
    with pytest.raises(ConfigError, match="already holds a run"):
        train(compose_config(TINY), run_dir=old)
    assert snapshot(old) == before


def test_run_dir_that_is_a_file_is_refused(torchrl_bin, cli_env, tmp_path):
    """hydra.run.dir naming an existing file fails with a one-line error, exit 2."""
    (tmp_path / "taken").write_text("not a folder\n")
    proc = torchrl(torchrl_bin, ["train", *TINY, "hydra.run.dir=taken"], tmp_path, cli_env)
    assert_one_line_error(proc, "hydra.run.dir")
    assert (tmp_path / "taken").read_text() == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_multirun_writes_one_sweep_folder(torchrl_bin, cli_env, tmp_path):
    """`torchrl train -m seed=0,1` writes one sweep folder with a subfolder and metrics per job."""
    proc = torchrl(torchrl_bin, ["train", "-m", "seed=0,1", *TINY], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_no_traceback(proc)
    assert proc.stdout.count("final evaluation:") == 2
    for job in (0, 1):  # each job's lines say whose they are
        assert re.search(rf"^\[job {job}\] final evaluation:", proc.stdout, re.M), proc.stdout
        assert re.search(rf"^\[job {job}\] torchrl train ppo_clip", proc.stdout, re.M)
    sweeps = run_folders(tmp_path)
    assert len(sweeps) == 1, sweeps
    sweep = sweeps[0]
    assert re.fullmatch(r"\d{2}-\d{2}-\d{2}_multirun", sweep.name), sweep.name
    assert (sweep / "multirun.yaml").is_file()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0_ppo_clip_CartPole-v1", "1_ppo_clip_CartPole-v1"]
    for seed, job in enumerate(jobs):
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["seed"] == seed and metrics["episodes"] == 2
        assert (job / "model.pt").is_file()
        assert (job / ".hydra" / "config.yaml").is_file()
        assert len(list(job.glob("events.out.tfevents.*"))) == 1
        log = (job / "train.log").read_text()  # the job's own log: untagged
        assert log.startswith("torchrl train ppo_clip") and "final evaluation" in log


# (command line after `torchrl`, what the one error line must contain)
BAD_INPUT = {
    "unknown-agent": (["train", "agent=ppo_clipp"],
                      ["unknown agent 'ppo_clipp'", "did you mean 'ppo_clip'"]),
    "unknown-env": (["train", "env=CartPol-v1"],
                    ["unknown env 'CartPol-v1'", "did you mean 'CartPole-v1'"]),
    "unknown-net": (["train", "net=mlpp"], ["unknown net 'mlpp'", "did you mean 'mlp'"]),
    "unknown-experiment": (["train", "experiment=nope"],
                           ["unknown experiment 'nope'", "cartpole_solve"]),
    "unknown-key": (["train", "agent.lrr=1"], ["'agent.lrr'", "did you mean 'lr'"]),
    "lr-not-a-number": (["train", "agent.lr=abc"], ["agent.lr", "abc"]),
    "lr-negative": (["train", "agent.lr=-1"], ["agent.lr", "> 0"]),
    "lr-zero": (["train", "agent.lr=0"], ["agent.lr", "> 0"]),
    "gamma-zero": (["train", "agent.gamma=0"], ["agent.gamma", "(0, 1]"]),
    "gamma-above-1": (["train", "agent.gamma=1.5"], ["agent.gamma=1.5", "(0, 1]"]),
    "clip-range-zero": (["train", "agent.policy.ppo_clip_range=0"],
                        ["agent.policy.ppo_clip_range", "> 0"]),
    "too-many-minibatches": (["train", "agent.policy.num_mini_batches=100000"],
                             ["agent.policy.num_mini_batches=100000", "use at most"]),
    "no-envs": (["train", "env.n_envs=0"], ["env.n_envs=0", "at least 1"]),
    # Discrete and Tuple observations train now (tests/test_custom_envs.py)
    "pixel-preset-range": (["train", "env=CarRacing-v3", "env.pixels.frame_stack=0"],
                           ["env.pixels.frame_stack=0", "at least 1"]),
    "image-too-small-for-net": (["train", "env=CarRacing-v3", "net=nature_cnn",
                                 "env.pixels.resize=24"],
                                ["net nature_cnn takes images of at least 36x36", "24x24"]),
    "unparsable-override": (["train", "agent.lr=[1"], ["cannot parse", "agent.lr=[1"]),
    "unknown-command": (["trian"], ["unknown command 'trian'", "did you mean 'train'"]),
    "sweep-without-m": (["train", "seed=0,1"], ["seed=0,1"]),
    "native-without-one": (["train", "env=Acrobot-v1", "env.vectorization=native"],
                           ["'Acrobot-v1' has no native vector env", "use sync or async"]),
}


@pytest.mark.parametrize("args,needles", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_line_error(torchrl_bin, cli_env, tmp_path, args, needles):
    """Bad input: exit 2, one 'torchrl: error:' line naming it, no traceback, no run folder."""
    if args[0] == "train":  # tiny settings first, so a check that slips through fails fast
        args = ["train", *TINY, *args[1:]]
    proc = torchrl(torchrl_bin, args, tmp_path, cli_env)
    assert_one_line_error(proc, *needles)
    assert list(tmp_path.iterdir()) == []


def test_bad_value_in_sweep_fails_before_any_job(torchrl_bin, cli_env, tmp_path):
    """`-m agent.lr=1e-3,-1` is refused up front: no job runs and no sweep folder appears."""
    proc = torchrl(torchrl_bin, ["train", "-m", *TINY, "agent.lr=1e-3,-1"], tmp_path, cli_env)
    assert_one_line_error(proc, "agent.lr=-1", "> 0")
    assert "final evaluation" not in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spelling", [["--cfg", "hydra"], ["--cfg=hydra"], ["-c", "hydra"],
                                      ["-chydra"]])
def test_cfg_hydra_resolve_is_one_line_pointing_to_cfg_all(tmp_path, torchrl_bin, cli_env,
                                                           spelling):
    """Hydra's own --cfg hydra --resolve fails (the run folder's name interpolates the job's
    agent and env); the CLI says so in one line before Hydra starts."""
    proc = torchrl(torchrl_bin, ["train", *spelling, "--resolve"], tmp_path, cli_env)
    assert_one_line_error(proc, "--cfg hydra --resolve", "--cfg all --resolve")


def test_cfg_all_resolve_prints_the_run_folder(tmp_path, torchrl_bin, cli_env):
    proc = torchrl(torchrl_bin, ["train", "--cfg", "all", "--resolve"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "_ppo_clip_CartPole-v1" in proc.stdout and "${" not in proc.stdout


def test_train_max_episode_steps_is_said_and_spares_the_evaluation(torchrl_bin, cli_env, tmp_path):
    """env.train_max_episode_steps=4: the console says training episodes are cut, and the final
    evaluation's CartPole episodes run past 4 steps (a pole cannot fall in fewer than ~8)."""
    proc = torchrl(torchrl_bin, ["train", *TINY, "env.train_max_episode_steps=4"], tmp_path,
                   cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "training episodes cut at 4 steps (env.train_max_episode_steps)" in proc.stdout
    metrics = json.loads((run_folders(tmp_path)[0] / "metrics.json").read_text())
    assert min(metrics["returns"]) > 4


def test_a_reader_that_leaves_early_gets_no_traceback(torchrl_bin, cli_env, tmp_path):
    """`torchrl train --help | head -1`: the pipe closes before the help is written; the
    command ends quietly with 141, as a shell reports SIGPIPE, not with a BrokenPipeError."""
    proc = subprocess.Popen([torchrl_bin, "train", "--help"], cwd=tmp_path, env=cli_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the help is composed
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 141 and b"Traceback" not in stderr, stderr.decode()
