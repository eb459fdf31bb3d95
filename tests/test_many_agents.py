"""Many agents: PettingZoo parallel envs as rows (envs/pettingzoo_env.py), IPPO and MAPPO.

The env checks run on ``torchrl_test_marl`` (tests/envmods): two agents whose spaces differ,
one of whom leaves at step 2 of 4, so that padding, masks and absent agents are all seen."""

import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY, assert_no_traceback, assert_one_line_error, compose_config, make_agent
from conftest import torchrl as run_torchrl

from torchrl_cli.config.compose import compose_config as compose_checked
from torchrl_cli.config.validate import validate
from torchrl_cli.envs.factory import build_env
from torchrl_cli.envs.pettingzoo_env import PettingZooEnv
from torchrl_cli.errors import ConfigError
from torchrl_cli.nn import Columns, PerAgent
from torchrl_cli.run.policy import load_policy

pytest.importorskip("pettingzoo")
ENVMODS = Path(__file__).resolve().parent / "envmods"
sys.path.insert(0, str(ENVMODS))

PAIR = "pettingzoo:torchrl_test_marl"
SPREAD = "pettingzoo:mpe2.simple_spread_v3"
STRUCTURED = "pettingzoo:torchrl_test_marl_dict"  # Dict and Tuple observations
SMALL = [*TINY, "max_steps=64", "agent.n_steps=8"]


def envmods_env(cli_env: dict) -> dict:
    """``cli_env`` with the test env modules importable, as a user's PYTHONPATH would."""
    path = os.pathsep.join(p for p in (str(ENVMODS), cli_env.get("PYTHONPATH")) if p)
    return {**cli_env, "PYTHONPATH": path}


def pair(n_envs: int = 2, central: bool = False, module: str = PAIR) -> PettingZooEnv:
    return PettingZooEnv(module, n_envs=n_envs, central=central)


# the env: rows, padding, ids, masks, autoreset


@pytest.mark.parametrize("module", [PAIR, "pettingzoo:torchrl_test_marl_aec"])
def test_rows_are_padded_observations_with_the_agent_id(module):
    env = pair(2, central=True, module=module)  # the AEC-only module: through aec_to_parallel
    assert (env.n_envs, env.n_agents, env.agents) == (4, 2, ["walker", "runner"])
    # [obs padded to 3 | one-hot of 2][state of 1 | one-hot of 2]
    assert env.get_state_info().shape == (8,)
    assert env.views() == {"policy": (0, 5), "value": (5, 8), "agent_ids": (3, 5)}
    obs = env.reset(seed=0)
    np.testing.assert_array_equal(obs[0], [0, 0, 0, 1, 0, 0, 1, 0])  # walker: 2 entries, 1 pad
    np.testing.assert_array_equal(obs[1], [100, 100, 100, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(obs[2:], obs[:2])  # copy-major rows
    assert env.valid.all()
    env.close()


def test_dict_and_tuple_observations_are_flattened_into_their_columns():
    """The walker's Dict (a Discrete phase one-hot, then its Box position) and the runner's
    Tuple (a Box, then a MultiBinary) fill the columns of their rows, zero-padded to 5."""
    env = pair(1, module=STRUCTURED)
    assert env.get_state_info().shape == (7,)  # [obs padded to 5 | one-hot of 2]
    np.testing.assert_array_equal(env.reset(seed=0), [[1, 0, 0, 0, 0, 1, 0],
                                                      [100, 1, 0, 0, 0, 0, 1]])  # fmt: skip
    step = env.step(np.ones(2, dtype=np.int64))
    np.testing.assert_array_equal(step.obs, [[0, 1, 0, 1, -1, 1, 0], [101, 1, 0, 0, 0, 0, 1]])
    # load_policy's rows, from a dict of observations as the parallel env gives them
    rows = env.rows_of({"walker": {"phase": 2, "pos": np.array([3.0, 4.0])}})
    np.testing.assert_array_equal(rows, [[0, 0, 1, 3, 4, 1, 0], [0, 0, 0, 0, 0, 0, 1]])
    env.close()


def test_discrete_actions_of_different_sizes_are_padded_and_masked():
    env = pair(1)
    info = env.get_action_info()
    assert (info.n, info.mask) == (3, "info")
    np.testing.assert_array_equal(env.action_mask, [[1, 1, 1], [1, 1, 0]])
    env.close()


def test_an_agent_that_leaves_is_masked_out_and_the_copy_restarts_on_the_same_step():
    env = pair(2, central=True)
    env.reset(seed=0)
    ones = np.ones(4, dtype=np.int64)
    env.step(ones)
    step = env.step(ones)  # t=2: the runner terminates, the walker goes on
    np.testing.assert_array_equal(step.terminated, [0, 1, 0, 1])
    np.testing.assert_array_equal(step.valid, [1, 0, 1, 0])
    assert step.final_obs[1, 0] == 102 and step.final_obs[1, 5] == 2  # its last obs and state
    assert not step.obs[1].any()  # a gone agent's row holds nothing
    step = env.step(ones)  # t=3: the runner's row gets no reward and no episode end
    np.testing.assert_array_equal(step.reward, [1, 0, 1, 0])
    assert not (step.terminated | step.truncated)[[1, 3]].any()
    step = env.step(ones)  # t=4: the walker is cut; every agent gone, the copy restarts
    np.testing.assert_array_equal(step.truncated, [1, 0, 1, 0])
    assert not step.terminated.any()
    np.testing.assert_array_equal(step.final_obs[0, :2], [4, 4])  # the cut episode's last obs
    np.testing.assert_array_equal(step.obs[:2, 0], [0, 100])  # the next episode's first
    assert step.valid.all()
    env.close()


def test_simple_spread_central_rows_hold_the_global_state():
    env = PettingZooEnv(SPREAD, n_envs=2, kwargs={"max_cycles": 3}, central=True)
    obs = env.reset(seed=1)
    assert obs.shape == (6, 18 + 3 + 54 + 3)
    state = env.copies[0].state()
    for row in range(3):
        np.testing.assert_allclose(obs[row, 21:75], state)
    step = None
    for _ in range(3):
        step = env.step(np.zeros(6, dtype=np.int64))
    assert step.truncated.all() and step.final_obs is not None  # max_cycles: a time limit
    env.close()


def test_seeded_resets_repeat():
    a, b = (PettingZooEnv(SPREAD, n_envs=2) for _ in range(2))
    np.testing.assert_array_equal(a.reset(seed=3), b.reset(seed=3))
    assert not np.array_equal(a.reset(seed=3)[:3], a.reset(seed=3)[3:])  # copies differ
    a.close()
    b.close()


# config and one-line errors


@pytest.mark.parametrize("agent,value_cols", [("ippo", (0, 21)), ("mappo", (21, 78))])
def test_compose_and_build_each_agent_on_simple_spread(agent, value_cols):
    cfg = compose_config([f"agent={agent}", f"env={SPREAD}", "+env.kwargs.max_cycles=25"])
    assert cfg.agent.name == agent and cfg.env.kwargs.max_cycles == 25
    state, action = validate(cfg)
    assert state.shape == ((78,) if agent == "mappo" else (21,)) and action.n == 5
    built, env = make_agent(cfg, n_envs=2)
    policy_cols = built.policy_model.layers[0]
    value_first = built.value_model.layers[0]
    assert isinstance(policy_cols, Columns) and (policy_cols.start, policy_cols.stop) == (0, 21)
    assert (value_first.start, value_first.stop) == value_cols
    env.close()


def test_a_centralized_value_reads_the_state_and_the_policy_does_not():
    built, env = make_agent(compose_config(["agent=mappo", f"env={PAIR}"]), n_envs=1)
    obs = torch.as_tensor(env.reset(seed=0))
    changed = obs.clone()
    changed[:, 5] += 3.0  # the global state's column
    with torch.no_grad():
        assert not torch.allclose(built.value_model(obs), built.value_model(changed))
        torch.testing.assert_close(built.policy_model(obs), built.policy_model(changed))
        local = obs.clone()
        local[:, 0] += 3.0  # an observation column: the central value does not read it
        torch.testing.assert_close(built.value_model(obs), built.value_model(local))
    env.close()


@pytest.mark.parametrize(
    "overrides,needles",
    [
        (["agent=ippo", "env=CartPole-v1"], ["agent=ippo", "env=pettingzoo:<module>"]),
        (["agent=ppo_clip", f"env={PAIR}"], ["many agents", "agent=ippo", "agent=mappo"]),
        (["agent=ippo", "env=pettingzoo:json"], ["not a PettingZoo env"]),
        (["agent=ippo", "env=pettingzoo:torchrl_no_such_pkg.env_v0"], ["no module"]),
        (["agent=ippo", "env=pettingzoo:torchrl_test_marl_needs"],
         ["torchrl_absent_dependency", "pip install torchrl_absent_dependency"]),
        pytest.param(
            ["agent=ippo", "env=pettingzoo:pettingzoo.butterfly.pistonball_v6"],
            ["pip install 'pettingzoo[butterfly]'"],
            marks=pytest.mark.skipif(
                importlib.util.find_spec("pymunk") is not None, reason="pymunk is installed"
            ),
        ),
        (["agent=ippo", f"env={STRUCTURED}", "+env.kwargs.observation_space=text"],
         ["agent walker's observation space holds a Text", "Dict or Tuple"]),
        (["agent=ippo", f"env={PAIR}", "memory=lstm"], ["memory=lstm", "memory=none"]),
        (["agent=ippo", f"env={PAIR}", "agent.critic=global"], ["agent.critic=global"]),
        (["agent=mappo", f"env={PAIR}", "agent.share_parameters=false", "agent.agent_id=false"],
         ["agent.share_parameters=false", "agent.agent_id=true"]),
    ],
)
def test_bad_input_is_one_line(overrides, needles):
    with pytest.raises(ConfigError) as err:
        validate(compose_checked(overrides))
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


# the collector and the batch


def test_rollout_masks_absent_agents_and_counts_agent_and_team_episodes():
    built, env = make_agent(
        compose_config(["agent=ippo", f"env={PAIR}", "agent.n_steps=8"]), n_envs=2
    )
    collector = built.collector
    rollout = collector.collect(built.value_fn())
    # steps 0-1 everyone; 2-3 the runner is gone; then a new episode (every copy in lockstep)
    expected = np.array([[1, 1], [1, 1], [1, 0], [1, 0]] * 2, dtype=bool)
    np.testing.assert_array_equal(rollout.valid.numpy(), np.tile(expected, (1, 2)))
    assert collector.num_steps == 16  # env steps: 8 steps of 2 copies, not of 4 rows
    # the second episode starts on every row, the runner's too (it was gone, not done)
    middle = [1, 2, 3, 5]
    assert rollout.first[4].all() and not (rollout.first & rollout.valid)[middle].any()
    episodes = collector.pop_episodes()
    assert len(episodes) == 8  # 2 episodes x 2 copies x 2 agents
    walker = [e for e in episodes if e.agent == 0]
    runner = [e for e in episodes if e.agent == 1]
    assert {e.length for e in walker} == {4} and {e.length for e in runner} == {2}
    teams = [e.team for e in episodes if e.team is not None]
    assert len(teams) == 4 and collector.num_episodes == 4
    # the team returns sum every agent's rewards of their copy's episode
    assert sum(teams) == pytest.approx(sum(e.ret for e in episodes))
    batch = built.batch_of(rollout)
    assert len(batch) == int(rollout.valid.sum()) == 24  # only rows that held an agent
    np.testing.assert_array_equal(
        batch.obs.numpy(), rollout.obs.flatten(0, 1)[rollout.valid.flatten()].numpy()
    )
    env.close()


def test_losses_ignore_the_rows_of_absent_agents():
    """The update reduces over real agent steps only: garbage in an absent row changes
    nothing, since the batch never holds it."""
    built, env = make_agent(
        compose_config(["agent=ippo", f"env={PAIR}", "agent.n_steps=8"]), n_envs=1
    )
    rollout = built.collector.collect(built.value_fn())
    clean = built.batch_of(rollout)
    invalid = ~rollout.valid
    rollout.rewards[invalid] = 1e6
    rollout.obs[invalid] = 1e6
    rollout.values[invalid] = -1e6
    dirty = built.batch_of(rollout)
    for field in ("obs", "advantages", "returns", "values"):
        torch.testing.assert_close(getattr(clean, field), getattr(dirty, field))
    terms = built.policy_model.register_losses(dirty)
    assert torch.isfinite(terms["loss_policy"])
    env.close()


def test_evaluation_reports_the_mean_over_agents_and_the_team_sum():
    cfg = compose_config(["agent=ippo", f"env={PAIR}"])
    built, env = make_agent(cfg, n_envs=1)
    eval_env = build_env(cfg.env, 3, evaluation=True, agent_cfg=cfg.agent)
    evaluation = built.evaluate(eval_env, 3, seed=0)
    assert len(evaluation.returns) == 6 and len(evaluation.team_returns) == 3
    per_copy = np.asarray(evaluation.returns).reshape(3, 2)
    np.testing.assert_allclose(evaluation.team_returns, per_copy.sum(1))
    assert evaluation.mean == pytest.approx(per_copy.mean())
    env.close()
    eval_env.close()


# the real command line


@pytest.mark.parametrize("agent", ["ippo", "mappo"])
def test_cli_trains_simple_spread_then_evaluates_in_a_fresh_process(
    agent, torchrl_bin, cli_env, tmp_path
):
    proc = run_torchrl(
        torchrl_bin,
        ["train", f"env={SPREAD}", f"agent={agent}", "+env.kwargs.max_cycles=10", *SMALL],
        tmp_path,
        cli_env,
    )
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "team return" in proc.stdout
    (run_dir,) = [p.parent for p in tmp_path.glob("runs/*/*/metrics.json")]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["agent"] == agent and len(metrics["team_returns"]) == 2
    assert len(metrics["returns"]) == 6  # 2 episodes x 3 agents
    proc = run_torchrl(torchrl_bin, ["eval", str(run_dir), "episodes=2"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "team mean" in proc.stdout and "agents" in proc.stdout
    # load_policy acts for every agent from the parallel env's dict of observations
    policy = load_policy(run_dir)
    env = policy.make_env()
    observations, _ = env.reset(seed=0)
    steps = 0
    while env.agents:
        actions = policy(observations)
        assert set(actions) == set(env.agents) and all(0 <= a < 5 for a in actions.values())
        observations, *_ = env.step(actions)
        steps += 1
    assert steps == 10  # max_cycles
    env.close()
    if agent == "mappo":  # mpe2 renders rgb_array: the episode's video, as a Gymnasium env's
        proc = run_torchrl(torchrl_bin, ["eval", str(run_dir), "video=true", "episodes=1"],
                           tmp_path, cli_env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "1 videos in" in proc.stdout
        (video,) = (run_dir / "videos").glob("*/*.mp4")
        assert video.name == "episode_000.mp4" and video.stat().st_size > 1000
        if importlib.util.find_spec("imageio_ffmpeg"):
            import imageio_ffmpeg

            frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
            # the reset's frame and one per step of max_cycles=10; moviepy may drop the last
            # (a clip of n / fps seconds cut by float rounding), as for RecordVideo's
            assert frames in (10, 11)
    if agent == "mappo" and importlib.util.find_spec("onnxruntime"):  # ONNX on the rows
        proc = run_torchrl(torchrl_bin, ["export", str(run_dir), "format=onnx"], tmp_path,
                           cli_env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "checked against the torch policy" in proc.stdout
        assert "one row per agent" in proc.stdout


def test_cli_video_of_an_env_that_does_not_render_frames_is_one_line(
    torchrl_bin, cli_env, tmp_path
):
    """torchrl_test_marl declares no rgb_array render mode: one line, before any folder."""
    cli_env = envmods_env(cli_env)
    proc = run_torchrl(torchrl_bin, ["train", f"env={PAIR}", "agent=ippo", *SMALL], tmp_path,
                       cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = [p.parent for p in tmp_path.glob("runs/*/*/metrics.json")]
    proc = run_torchrl(torchrl_bin, ["eval", str(run_dir), "video=true"], tmp_path, cli_env)
    assert_one_line_error(proc, "video=true", "PettingZoo", "rgb_array", "renders none")
    assert not (run_dir / "videos").exists()


def test_cli_trains_and_evaluates_on_dict_and_tuple_observations(torchrl_bin, cli_env,
                                                                 tmp_path):
    cli_env = envmods_env(cli_env)
    proc = run_torchrl(torchrl_bin, ["train", f"env={STRUCTURED}", "agent=ippo", *SMALL],
                       tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = [p.parent for p in tmp_path.glob("runs/*/*/metrics.json")]
    assert len(json.loads((run_dir / "metrics.json").read_text())["team_returns"]) == 2
    proc = run_torchrl(torchrl_bin, ["eval", str(run_dir), "episodes=2"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "team mean" in proc.stdout
    policy = load_policy(run_dir)  # acts from the env's own Dict and Tuple observations
    env = policy.make_env()
    observations, _ = env.reset(seed=0)
    actions = policy(observations)
    assert set(actions) == {"walker", "runner"}
    assert actions["walker"] in range(3) and actions["runner"] in range(2)
    env.close()


def test_cli_sweep_over_simple_spread_runs_each_job(torchrl_bin, cli_env, tmp_path):
    """``train -m``: a job per value, each with its agents' and team returns."""
    proc = run_torchrl(
        torchrl_bin,
        ["train", "-m", f"env={SPREAD}", "agent=ippo", "agent.lr=1e-3,3e-4",
         "+env.kwargs.max_cycles=10", *SMALL],
        tmp_path,
        cli_env,
    )  # fmt: skip
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = sorted(tmp_path.glob("runs/*/*_multirun/*/metrics.json"))
    assert len(found) == 2, found
    lrs = set()
    for path in found:
        metrics = json.loads(path.read_text())
        assert metrics["agent"] == "ippo" and metrics["env"] == SPREAD
        assert len(metrics["team_returns"]) == 2 and len(metrics["returns"]) == 6
        lrs.add(yaml.safe_load((path.parent / "config.yaml").read_text())["agent"]["lr"])
    assert lrs == {1e-3, 3e-4}
    assert "sweep summary" in proc.stdout
    assert len(re.findall(r"team -?\d+\.\d", proc.stdout)) == 2  # under each final return
    (summary,) = tmp_path.glob("runs/*/*_multirun/summary.md")
    header, _, *rows = summary.read_text().splitlines()
    assert "team return" in header and len(rows) == 2
    for row in rows:  # each job's team return: the mean of its final evaluation's
        cells = [c.strip() for c in row.strip("|").split("|")]
        job = [p for p in found if f"agent.lr={cells[0].split('=')[-1]}" in
               " ".join(yaml.safe_load((p.parent / ".hydra" / "overrides.yaml").read_text()))]
        team = np.mean(json.loads(job[0].read_text())["team_returns"])
        assert float(cells[3]) == pytest.approx(team, abs=0.05)


def test_cli_tune_over_simple_spread_scores_two_trials(torchrl_bin, cli_env, tmp_path):
    """``torchrl tune`` with the CartPole preset's search space on simple_spread (ippo):
    two trials scored by the mean return per agent, and the best written as the tuned file
    of ippo on the env."""
    proc = run_torchrl(
        torchrl_bin,
        ["tune", "hparams_search=ppo_clip_cartpole", "agent=ippo", f"env={SPREAD}",
         "+env.kwargs.max_cycles=10", "seeds=[0]", "max_steps=64", "eval_freq=32",
         "agent.n_steps=8", "env.n_envs=2", "eval_episodes=2", "agent.num_epochs=1",
         "logger.progress=false", "tune.n_trials=2"],
        tmp_path,
        cli_env,
    )  # fmt: skip
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "runs" / "tune" / "ppo_clip_cartpole"
    study = json.loads((folder / "study.json").read_text())
    assert study["counts"] == {"complete": 2}
    assert (study["budget"]["agent"], study["budget"]["env"]) == ("ippo", SPREAD)
    for trial in (0, 1):
        metrics = json.loads((folder / f"trial_{trial}_seed_0" / "metrics.json").read_text())
        assert len(metrics["team_returns"]) == 2
        assert f"trial {trial} " in proc.stdout
    tuned = yaml.safe_load((folder / "tuned" / "ippo" / f"{SPREAD}.yaml").read_text())
    assert tuned["env"]["kwargs"]["max_cycles"] == 10


def test_an_mpe_copy_restored_from_its_snapshot_goes_on_as_the_original():
    """``get_state`` mid-episode, ``set_state`` into freshly built copies: the same rows,
    rewards and ends for 60 more steps, two restarts (drawn from the env's own generator)
    included; a snapshot of other copies is refused."""
    original = PettingZooEnv(SPREAD, n_envs=2, kwargs={"max_cycles": 25}, central=True)
    original.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(10):
        original.step(rng.integers(0, 5, original.n_envs))
    assert original.restorable
    restored = PettingZooEnv(SPREAD, n_envs=2, kwargs={"max_cycles": 25}, central=True)
    restored.set_state(original.get_state())
    ends = 0
    for t in range(60):
        actions = rng.integers(0, 5, original.n_envs)
        want, got = original.step(actions), restored.step(actions)
        assert np.array_equal(want.obs, got.obs), t
        assert np.array_equal(want.reward, got.reward), t
        assert np.array_equal(want.truncated, got.truncated), t
        ends += int(want.truncated.any())
    assert ends == 2
    other = PettingZooEnv(SPREAD, n_envs=2, kwargs={"max_cycles": 25, "N": 2})
    with pytest.raises(ValueError, match="other objects"):
        other.set_state(original.get_state())


def goals(env: PettingZooEnv) -> list[list[tuple[str, int]]]:
    """Per copy, each agent's goal attributes that point at a landmark: (name, its index)."""
    found = []
    for copy in env.copies:
        world = copy.unwrapped.world
        found.append([(f"{agent.name}.{name}", world.landmarks.index(value))
                      for agent in world.agents for name, value in vars(agent).items()
                      if any(value is mark for mark in world.landmarks)])
    return found


@pytest.mark.parametrize("scenario", ["simple_adversary_v3", "simple_speaker_listener_v4"])
def test_a_restored_mpe_copy_points_at_the_snapshots_goal(scenario):
    """Scenarios that pick a landmark per episode (``agent.goal_a = world.landmarks[k]``): the
    restored copies point at the same landmarks as the original, whatever their own
    constructor picked (here: moved to another one on purpose), and go on as it does."""
    env_id = f"pettingzoo:mpe2.{scenario}"
    original = PettingZooEnv(env_id, n_envs=2, kwargs={"max_cycles": 25})
    original.reset(seed=3)
    rng = np.random.default_rng(0)
    legal = min(space.n for space in original.act_spaces)  # an action every agent has
    for _ in range(5):
        original.step(rng.integers(0, legal, original.n_envs))
    restored = PettingZooEnv(env_id, n_envs=2, kwargs={"max_cycles": 25})
    restored.reset(seed=4)
    for copy, picked in zip(restored.copies, goals(original), strict=True):
        world = copy.unwrapped.world
        for name, k in picked:  # another landmark than the original's
            agent_name, attr = name.split(".")
            agent = next(a for a in world.agents if a.name == agent_name)
            setattr(agent, attr, world.landmarks[(k + 1) % len(world.landmarks)])
    assert goals(restored) != goals(original)
    restored.set_state(original.get_state())
    assert goals(restored) == goals(original) and all(goals(original))
    for t in range(20):
        actions = rng.integers(0, legal, original.n_envs)
        want, got = original.step(actions), restored.step(actions)
        assert np.array_equal(want.obs, got.obs), t
        assert np.array_equal(want.reward, got.reward), t


def test_a_checkpoint_without_env_snapshots_restarts_the_episodes():
    """Checkpoints written before mpe2's envs could be snapshot hold none (``"env": []``):
    resuming one starts new episodes (the warned restart), and a snapshot of other copies is
    a ValueError, which ``torchrl train resume=`` turns into one line."""
    agent, env = make_agent([f"env={SPREAD}", "agent=mappo", *TINY])
    try:
        agent.collector.collect(agent.value_fn())
        state = agent.state_dict()
        assert len(state["batcher"]["env"]) == env.n_copies
        state["batcher"]["env"] = []
        assert agent.load_state_dict(state, seed=0) is False
        assert agent.collector.first.all()
        state["batcher"]["env"] = state["batcher"]["env"] + ["{}"] * env.n_copies
        with pytest.raises((ValueError, KeyError)):
            agent.load_state_dict(state, seed=0)
    finally:
        env.close()


def test_cli_mappo_resumed_mid_episode_ends_as_the_whole_run(tmp_path, torchrl_bin, cli_env):
    """MAPPO on simple_spread, and the same run resumed from its middle checkpoint (what a
    kill -9 after it leaves), taken 16 steps into a 25-step episode: the same final weights
    bit for bit, and the same episodes."""
    args = ["train", f"env={SPREAD}", "agent=mappo", *TINY, "agent.n_steps=41",
            "max_steps=492", "checkpoint_freq=246", "logger.progress=false"]
    whole = tmp_path / "whole"
    proc = run_torchrl(torchrl_bin, [*args, f"hydra.run.dir={whole}"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    kept = sorted(int(p.stem.split("_")[1]) for p in (cut / "checkpoints").glob("step_*.pt"))
    assert kept[0] < kept[-1], kept
    for path in (cut / "checkpoints").glob("step_*.pt"):
        if int(path.stem.split("_")[1]) > kept[0]:
            path.unlink()
    for name in ("model.pt", "metrics.json"):
        (cut / name).unlink()
    resumed = run_torchrl(torchrl_bin, ["train", f"resume={cut}"], tmp_path, cli_env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "restarted" not in resumed.stdout
    want, got = (torch.load(d / "model.pt", weights_only=True) for d in (whole, cut))
    for part in ("policy", "value"):
        for key, tensor in want[part].items():
            assert torch.equal(got[part][key], tensor), f"{part}.{key}"
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (whole, cut)]
    assert metrics[0]["team_returns"] == metrics[1]["team_returns"]


def test_cli_bad_env_module_is_one_line_and_makes_no_folder(torchrl_bin, cli_env, tmp_path):
    proc = run_torchrl(
        torchrl_bin, ["train", "env=pettingzoo:json", "agent=ippo", *SMALL], tmp_path, cli_env
    )
    assert_one_line_error(proc, "not a PettingZoo env")
    assert not (tmp_path / "runs").exists()


def test_shared_parameters_tell_agents_apart_and_respect_their_action_sets():
    """A tiny learning check: each step pays each agent its action's index, so the walker
    should learn its action 2 and the runner its action 1 (its 2 is a padded, masked action):
    8 + 2 per episode, 5 per agent (a random policy: 2.5). One shared policy gets there only
    by reading the agent id and the mask. Seeded: 5.0 at 1024 env steps (seeds 0, 2, 3;
    seed 1: 4.5)."""
    cfg = compose_config(["agent=ippo", f"env={PAIR}", "agent.n_steps=16", "env.n_envs=4",
                          "agent.lr=0.01", "agent.num_mini_batches=1", "agent.num_epochs=4",
                          "max_steps=1024"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a run sets it (torch_threads): small nets, no contention
    try:
        built, env = make_agent(cfg, seed=0)
        eval_env = build_env(cfg.env, 4, evaluation=True, agent_cfg=cfg.agent)
        while not built._check_termination():
            built.step()
        evaluation = built.evaluate(eval_env, 4, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert evaluation.mean >= 4.5, evaluation.returns
    assert min(evaluation.team_returns) >= 9.0
    env.close()
    eval_env.close()


def test_box_actions_of_different_widths_are_padded_and_each_agent_takes_its_own():
    from gymnasium import spaces

    from torchrl_cli.envs.pettingzoo_env import joint_actions

    narrow = spaces.Box(-1.0, 1.0, (1,), np.float32)
    wide = spaces.Box(np.array([0.0, -2.0], np.float32), np.array([0.5, 2.0], np.float32))
    info, legal = joint_actions([narrow, wide], "pettingzoo:x")
    assert info.shape == (2,) and info.mask is None and legal.all()
    np.testing.assert_array_equal(info.low, [-1.0, -2.0])  # the widest bounds of each entry
    np.testing.assert_array_equal(info.high, [1.0, 2.0])
    env = pair(1)
    env.act_spaces = [narrow, wide]
    np.testing.assert_allclose(env.env_action(0, np.array([0.7, 9.0])), [0.7], rtol=1e-6)
    np.testing.assert_array_equal(env.env_action(1, np.array([-0.9, 9.0])), [0.0, 2.0])
    with pytest.raises(ConfigError, match="not all Discrete"):
        joint_actions([narrow, spaces.Discrete(2)], "pettingzoo:x")
    env.close()


def test_a_run_folder_naming_a_pettingzoo_module_is_held_to_the_trust_rule():
    """The module checked is the one ``pettingzoo:<module>`` imports, not ``pettingzoo``."""
    from omegaconf import OmegaConf

    from torchrl_cli.run.trust import check_targets, env_modules

    cfg = OmegaConf.create({"env": {"id": "pettingzoo:os", "imports": []}})
    assert env_modules(cfg) == ["os"]
    with pytest.raises(ConfigError, match="env module 'os'"):
        check_targets(cfg, "config.yaml")


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_running_statistics_count_only_rows_that_hold_an_agent(backend):
    """An absent agent's row (its last observation, or zeros) is no sample of the
    observations: the running mean and variance count the rows that held an agent."""
    built, env = make_agent(
        compose_config(["agent=ippo", f"env={PAIR}", "agent.n_steps=8",
                        "env.running_normalize_states=true", f"agent.backend={backend}"]),
        n_envs=2,
    )  # fmt: skip
    rms = built.collector.actor.normalizer.rms
    start = float(rms.count)
    rollout = built.collector.collect(built.value_fn())
    # each step's new observation: rows 1..7 of the rollout, then the one after it (4 rows
    # of 2 copies x 2 agents per step, 32 in all, of which 24 held an agent)
    seen = int(rollout.valid[1:].sum()) + int(torch.as_tensor(built.collector.valid).sum())
    assert seen == 24
    assert float(rms.count) - start == pytest.approx(seen)
    env.close()


def test_reward_scaling_counts_only_rows_that_hold_an_agent():
    """env.scale_reward: the running return's statistics take a sample per row that held an
    agent at the step (24 of the rollout's 32), as computed by hand from the raw rewards."""
    cfg = compose_config(["agent=ippo", f"env={PAIR}", "agent.n_steps=8", "env.scale_reward=true"])
    built, env = make_agent(cfg, n_envs=2)
    collector = built.collector
    collector.collect(built.value_fn())
    scaler = collector.reward_scaler
    returns, seen = np.zeros(4), []
    dones = collector.env_terminated | collector.env_truncated
    for reward, done, valid in zip(collector.env_rewards, dones, collector.env_valid,
                                   strict=True):  # fmt: skip
        returns = returns * cfg.agent.gamma + reward
        seen.extend(returns[valid])
        returns[done] = 0.0
    assert len(seen) == 24
    prior = 1e-4  # RunningMeanStd's pseudo-count of mean 0, variance 1
    n, m, v = len(seen), np.mean(seen), np.var(seen)
    total = n + prior
    assert scaler.rms.count.item() == pytest.approx(total, rel=1e-12)
    assert scaler.rms.mean.item() == pytest.approx(n * m / total, rel=1e-6)
    assert scaler.rms.var.item() == pytest.approx(
        (prior + n * v + m * m * prior * n / total) / total, rel=1e-6
    )
    env.close()


# a network per agent (agent.share_parameters=false)


@pytest.mark.parametrize("agent", ["ippo", "mappo"])
def test_a_network_per_agent_reads_and_trains_only_its_own_agents_rows(agent):
    """Policy and value each hold one net per agent: a row's output moves with its own
    agent's parameters only, a loss on one agent's rows gives the other's no gradient, and an
    update moves both agents' nets (each by its own rows)."""
    cfg = compose_config([f"agent={agent}", f"env={PAIR}", "agent.share_parameters=false",
                          "agent.n_steps=8"])  # fmt: skip
    built, env = make_agent(cfg, n_envs=2)
    nets = {}
    for name, model in (("policy", built.policy_model), ("value", built.value_model)):
        (per,) = [m for m in model.modules() if isinstance(m, PerAgent)]
        assert len(per.nets) == 2
        nets[name] = per
    obs = torch.as_tensor(env.reset(seed=0))  # copy-major rows: agent 0, agent 1, agent 0, ...
    for name, model in (("policy", built.policy_model), ("value", built.value_model)):
        model.zero_grad()
        model(obs[0::2]).sum().backward()  # agent 0's rows only
        own, other = nets[name].nets
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in own.parameters())
        assert all(p.grad is None or not p.grad.any() for p in other.parameters())
        model.zero_grad()
        with torch.no_grad():
            before = model(obs)
            for p in other.parameters():
                p.add_(0.5)
            after = model(obs)
            for p in other.parameters():
                p.sub_(0.5)
        torch.testing.assert_close(after[0::2], before[0::2])
        assert not torch.allclose(after[1::2], before[1::2])
    start = {name: [[p.detach().clone() for p in net.parameters()] for net in per.nets]
             for name, per in nets.items()}  # fmt: skip
    built.step()
    for name, per in nets.items():
        for net, first in zip(per.nets, start[name], strict=True):
            assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), first,
                                                             strict=True)), name
    env.close()


def test_cli_a_network_per_agent_trains_evaluates_and_exports(torchrl_bin, cli_env, tmp_path):
    proc = run_torchrl(
        torchrl_bin,
        ["train", f"env={SPREAD}", "agent=mappo", "agent.share_parameters=false",
         "+env.kwargs.max_cycles=10", *SMALL],
        tmp_path,
        cli_env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = [p.parent for p in tmp_path.glob("runs/*/*/metrics.json")]
    proc = run_torchrl(torchrl_bin, ["eval", str(run_dir), "episodes=2"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "team mean" in proc.stdout
    if importlib.util.find_spec("onnxruntime"):
        proc = run_torchrl(torchrl_bin, ["export", str(run_dir), "format=onnx"], tmp_path,
                           cli_env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "checked against the torch policy" in proc.stdout


def test_a_network_per_agent_finds_the_agent_in_normalized_rows():
    """Running observation normalization shifts and scales the one-hot columns; the row's
    agent is still the one whose column is positive, and a row of no agent gets zeros."""
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(Columns(0, 2), torch.nn.Linear(2, 3)) for _ in range(3)]
    per = PerAgent(nets, (2, 5))
    rows = torch.cat([torch.randn(4, 2), torch.eye(3)[[0, 2, 1, 1]]], dim=1)
    mean, std = torch.tensor([0.0, 0.0, 0.3, 0.5, 0.2]), torch.tensor([1.0, 1.0, 0.46, 0.5, 0.4])
    for x in (rows, (rows - mean) / std):
        out = per(x)
        for r, agent in enumerate([0, 2, 1, 1]):
            blocks = out[r].reshape(3, 3)
            torch.testing.assert_close(blocks[agent], nets[agent](rows[r : r + 1])[0])
            assert not blocks[[a for a in range(3) if a != agent]].any()
    assert not per(torch.zeros(1, 5)).any()
    assert not per((torch.zeros(1, 5) - mean) / std).any()  # a normalized absent row
