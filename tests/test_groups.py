"""Group switches compose: an option never inherits keys (from a tuned file, an experiment)
that it does not take. Every agent/advantage option against every agent, composed as
``torchrl train`` composes it and built."""

import pytest
from conftest import TINY, assert_no_traceback, make_agent, torchrl
from omegaconf import OmegaConf

from torchrl_cli.config import config_dir
from torchrl_cli.config.compose import check_overrides, compose_config
from torchrl_cli.errors import ConfigError
from torchrl_cli.rollout.estimators import GAE, DiscountedReturns
from torchrl_cli.run.build import check_run

AGENTS = sorted(p.stem for p in (config_dir() / "agent").glob("*.yaml"))
ADVANTAGES = sorted(p.stem for p in (config_dir() / "agent" / "advantage").glob("*.yaml"))
ESTIMATOR = {"gae": GAE, "monte_carlo": GAE, "discounted_returns": DiscountedReturns}


def test_every_advantage_option_is_covered():
    assert set(ADVANTAGES) == set(ESTIMATOR) and len(AGENTS) == 7


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])  # both have tuned files
@pytest.mark.parametrize("advantage", ADVANTAGES)
@pytest.mark.parametrize("agent", AGENTS)
def test_every_advantage_builds_with_every_agent(agent, advantage, env):
    """The node holds the option's own keys (a tuned value of one it shares, such as GAE's
    lambda, stays) and the agent builds its estimator."""
    cfg = compose_config([f"agent={agent}", f"agent/advantage={advantage}", f"env={env}"])
    option = OmegaConf.load(config_dir() / "agent" / "advantage" / f"{advantage}.yaml")
    assert set(cfg.agent.advantage) == set(option)
    agent_obj, env_obj = make_agent(cfg, n_envs=2)
    try:
        assert type(agent_obj.advantage) is ESTIMATOR[advantage]
    finally:
        env_obj.close()


def test_a_tuned_lambda_survives_on_an_option_that_takes_it():
    """vanilla_pg's Pendulum file sets a GAE lambda on its Monte-Carlo default: kept for gae."""
    cfg = compose_config(["agent=vanilla_pg", "env=Pendulum-v1", "agent/advantage=gae"])
    tuned = OmegaConf.load(config_dir() / "tuned" / "vanilla_pg" / "Pendulum-v1.yaml")
    assert cfg.agent.advantage.gae_lambda == tuned.agent.advantage.gae_lambda


def test_a_key_the_option_does_not_take_given_on_the_command_line_is_one_error():
    with pytest.raises(ConfigError, match="DiscountedReturns takes no gae_lambda") as err:
        check_overrides(["agent/advantage=discounted_returns", "agent.advantage.gae_lambda=0.9"],
                        check_run)
    # what it takes leaves out the key it does not take (it used to read "it takes gamma,
    # gae_lambda", contradicting itself)
    assert "(it takes gamma)" in str(err.value)


def test_discounted_returns_with_the_default_agent_trains(torchrl_bin, cli_env, tmp_path):
    """The command of the issue: it used to fail with a TypeError (exit 1) and leave a run
    folder; the saved config holds no gae_lambda."""
    proc = torchrl(torchrl_bin, ["train", *TINY, "agent/advantage=discounted_returns",
                                 "hydra.run.dir=run"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_no_traceback(proc)
    saved = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert "gae_lambda" not in saved.agent.advantage
    assert "final evaluation" in proc.stdout
