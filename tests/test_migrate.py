"""Old run folders: a folder written before the migrations existed (tests/fixtures, by commit
ef1578b) upgrades to today's schema and still evaluates, resumes and exports; keys the schema
gained since are filled from the schema's defaults; a folder the tool cannot read is one line."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import assert_no_traceback, assert_one_line_error, torchrl
from omegaconf import OmegaConf

from torchrl_cli.config.migrate import MIGRATIONS, upgrade
from torchrl_cli.config.schema import CONFIG_VERSION
from torchrl_cli.config.validate import validate
from torchrl_cli.errors import ConfigError

FIXTURE = Path(__file__).parent / "fixtures" / "run_v0_ef1578b"


@pytest.fixture
def old_run(tmp_path) -> Path:
    run = tmp_path / "old_run"
    shutil.copytree(FIXTURE, run)
    return run


def edit_config(run: Path, drop: str) -> None:
    """Remove the dotted key ``drop`` from the folder's config.yaml."""
    path = run / "config.yaml"
    data = yaml.safe_load(path.read_text())
    *parents, last = drop.split(".")
    node = data
    for key in parents:
        node = node[key]
    del node[last]
    path.write_text(yaml.safe_dump(data))


def test_the_migrations_are_one_per_version_in_order():
    assert [m.version for m in MIGRATIONS] == list(range(CONFIG_VERSION))
    assert len({m.name for m in MIGRATIONS}) == len(MIGRATIONS)


def test_a_version_0_config_upgrades_to_todays_schema_and_validates():
    saved = OmegaConf.load(FIXTURE / "config.yaml")
    assert "config_version" not in saved
    assert saved.agent.advantage._target_ == "torchrl_cli.agents.estimators.GAE"
    cfg = upgrade(saved, "config.yaml")
    assert cfg.config_version == CONFIG_VERSION
    assert cfg.agent.advantage._target_ == "torchrl_cli.rollout.estimators.GAE"
    assert cfg.agent.vtarget._target_ == "torchrl_cli.rollout.estimators.FromAdvantage"
    assert cfg.agent.lr == saved.agent.lr  # the run's own values stay
    validate(cfg)


@pytest.mark.parametrize("key", ["guard", "net.init", "env.train_max_episode_steps",
                                 "agent.recompute_advantages", "seeds", "env.atari",
                                 "agent.policy.sde", "logger.backends", "env.pixels"])
def test_a_key_the_schema_gained_takes_its_default(key):
    data = yaml.safe_load((FIXTURE / "config.yaml").read_text())
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node[part]
    del node[last]
    cfg = upgrade(OmegaConf.create(data), "config.yaml")
    fresh = upgrade(OmegaConf.load(FIXTURE / "config.yaml"), "config.yaml")
    assert OmegaConf.select(cfg, key) == OmegaConf.select(fresh, key)


@pytest.mark.parametrize(("change", "needle"), [
    ({"config_version": 99}, "config_version 99"),
    ({"config_version": "x"}, "config_version 'x'"),
    ({"agent": {"name": "dqn"}}, "names agent 'dqn'"),
    ({"env": {"n_envs": "many"}}, "does not fit today's schema"),
])
def test_a_config_the_tool_cannot_read_is_one_error(change, needle):
    saved = OmegaConf.merge(OmegaConf.load(FIXTURE / "config.yaml"), change)
    with pytest.raises(ConfigError, match="config_version|agent") as err:
        upgrade(saved, "config.yaml")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_the_old_folder_evaluates_resumes_and_exports(torchrl_bin, cli_env, old_run, tmp_path):
    proc = torchrl(torchrl_bin, ["eval", str(old_run), "episodes=2"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the final evaluation's episodes again (same checkpoint, same seeds): the same returns
    saved = json.loads((old_run / "metrics.json").read_text())
    assert f"{saved['mean_return']:.2f}" in proc.stdout
    out = tmp_path / "policy.pt2"
    proc = torchrl(torchrl_bin, ["export", str(old_run), f"out={out}"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.is_file()
    proc = torchrl(torchrl_bin, ["train", f"resume={old_run}", "max_steps=512"], tmp_path,
                   cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_no_traceback(proc)
    assert (old_run / "checkpoints" / "step_000000512.pt").is_file()
    # the resumed run wrote today's format
    assert OmegaConf.load(old_run / "config.yaml").config_version == CONFIG_VERSION


@pytest.mark.parametrize("key", ["guard", "net.init", "env.train_max_episode_steps",
                                 "agent.recompute_advantages"])
def test_an_old_folder_lacking_a_key_evaluates_or_gives_one_line(torchrl_bin, cli_env, old_run,
                                                                  tmp_path, key):
    edit_config(old_run, key)
    proc = torchrl(torchrl_bin, ["eval", str(old_run), "episodes=2"], tmp_path, cli_env)
    if proc.returncode != 0:
        assert_one_line_error(proc)
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_folder_from_a_newer_tool_is_one_line(torchrl_bin, cli_env, old_run, tmp_path):
    path = old_run / "config.yaml"
    path.write_text(path.read_text() + "config_version: 99\n")
    proc = torchrl(torchrl_bin, ["eval", str(old_run)], tmp_path, cli_env)
    assert_one_line_error(proc, "config_version 99", "use the torchrl-cli release that wrote it")
