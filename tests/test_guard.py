"""The non-finite guard and the divergence warnings: NaN observations, rewards and weights
stop a run with one line and leave its finite checkpoints alone; skip mode undoes the update."""

import math

import pytest
import torch
from conftest import TINY, assert_no_traceback, compose_config, make_agent, torchrl
from fixtures.faulty_envs import register

from torchrl_cli.agents.guard import NonFiniteError
from torchrl_cli.run.checkpoint import BEST, CHECKPOINT_DIR, load_checkpoint, step_checkpoints
from torchrl_cli.run.train import train

# 4 envs x 32 steps per iteration; a checkpoint every 256 env steps and an evaluation (so a
# best.pt) every 256, so that several finite checkpoints exist when the fault comes at ~1000
FAULT_RUN = ["max_steps=4096", "agent.n_steps=32", "env.n_envs=4", "eval_freq=256",
             "eval_episodes=2", "checkpoint_freq=256", "keep_checkpoints=2",
             "logger.progress=false", "agent.num_epochs=1", "agent.num_mini_batches=2"]


def finite_weights(path) -> bool:
    weights = load_checkpoint(path).agent["models"]
    return all(torch.isfinite(t).all() for m in weights.values() for t in m.values()
               if t.is_floating_point())


@pytest.mark.parametrize(("fault", "what"), [("nan_obs", "observations"),
                                              ("nan_reward", "rewards")])
def test_a_non_finite_env_stops_the_run_and_keeps_its_finite_checkpoints(tmp_path, fault, what):
    # each copy counts its own steps: 4 copies x 250 steps = env step ~1000
    env_id = register(f"Guard-{fault}", fault=fault, start=250)
    cfg = compose_config([*FAULT_RUN, f"env={env_id}"])
    with pytest.raises(NonFiniteError) as err:
        train(cfg, run_dir=tmp_path)
    message = str(err.value)
    assert f"non-finite {what} at env step 1024, iteration 8" in message
    saved = step_checkpoints(tmp_path / CHECKPOINT_DIR)
    assert [p.name for p in saved] == ["step_000000512.pt", "step_000000768.pt"]  # keep 2
    assert f"the last checkpoint (finite, like every one) is {saved[-1]}" in message
    assert "torchrl train resume=" in message and "\n" not in message
    for path in [*saved, tmp_path / CHECKPOINT_DIR / BEST]:
        assert finite_weights(path), path
    assert not (tmp_path / "metrics.json").exists()


def test_a_huge_learning_rate_is_one_line_and_exit_1(torchrl_bin, cli_env, tmp_path):
    proc = torchrl(torchrl_bin, ["train", *TINY, "agent.lr=1e30"], tmp_path, cli_env)
    assert_no_traceback(proc)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("torchrl: error: non-finite "), proc.stderr
    assert "at env step 64, iteration 1" in lines[0]


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_skip_mode_undoes_the_bad_updates_and_goes_on(tmp_path, backend):
    env_id = register("Guard-window", fault="nan_reward", start=100, stop=140)
    cfg = compose_config([*FAULT_RUN, f"env={env_id}", "guard.mode=skip", "max_steps=2048",
                          f"agent.backend={backend}"])
    metrics = train(cfg, run_dir=tmp_path)
    assert metrics["env_steps"] == 2048 and math.isfinite(metrics["mean_return"])
    for path in step_checkpoints(tmp_path / CHECKPOINT_DIR):
        assert finite_weights(path)


def test_skip_mode_restores_weights_optimizer_and_normalizer():
    env_id = register("Guard-always", fault="nan_obs", start=0)
    agent, env = make_agent([*TINY, f"env={env_id}", "guard.mode=skip",
                             "env.running_normalize_states=true"])
    try:
        before = {k: v.clone() for k, v in agent.policy_model.state_dict().items()}
        stats = agent.normalizer.rms.mean.clone()
        agent.step()
        agent.step()
    finally:
        env.close()
    assert agent.guard.skipped == 2
    for key, value in agent.policy_model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert torch.equal(agent.normalizer.rms.mean, stats)


def test_checkpoints_refuse_non_finite_weights(tmp_path):
    agent, env = make_agent(TINY)
    env.close()
    from torchrl_cli.run.checkpoint import Checkpoints

    checkpoints = Checkpoints(tmp_path, freq=0, keep=2, meta={})
    with torch.no_grad():
        next(agent.value_model.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="non-finite weights"):
        checkpoints.save(agent.state_dict(), 100)
    with pytest.raises(NonFiniteError):
        checkpoints.save_best(agent.state_dict())
    assert list(tmp_path.iterdir()) == []


def test_divergence_short_of_nan_is_warned(torchrl_bin, cli_env, tmp_path):
    """agent.lr=1000 never goes NaN on CartPole, but its KL explodes and entropy collapses."""
    proc = torchrl(torchrl_bin, ["train", *TINY, "agent.lr=1000", "max_steps=2048"], tmp_path,
                   cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the policy is diverging" in proc.stdout
    assert "has collapsed" in proc.stdout
    quiet = torchrl(torchrl_bin, ["train", *TINY, "max_steps=2048"], tmp_path, cli_env)
    assert "diverging" not in quiet.stdout and "collapsed" not in quiet.stdout
