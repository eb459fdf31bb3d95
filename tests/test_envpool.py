"""env.vectorization=envpool (the envpool extra): same-step autoreset, time limits, seeding,
the refusals, not restorable, and a real CLI run that learns and resumes."""

import json
import sys

import numpy as np
import pytest
from conftest import THETA_LIMIT, X_LIMIT, compose_config, needs_envpool, torchrl

from torchrl_cli.config.validate import validate
from torchrl_cli.envs import GymEnv, env_seeds
from torchrl_cli.envs.envpool_env import INT32_SEEDS, EnvPoolVectorEnv, atari_options
from torchrl_cli.errors import ConfigError


@needs_envpool
def test_auto_never_picks_envpool():
    assert GymEnv("CartPole-v1", n_envs=64, vectorization="auto").vectorization == "native"
    assert GymEnv("Acrobot-v1", n_envs=64, vectorization="auto").vectorization == "sync"


@needs_envpool
def test_terminated_copies_reset_in_the_same_step_with_no_dead_transition():
    """A copy that falls returns its terminal observation in final_obs and a fresh start state
    in obs, in that same step; on the next step it is pushed from there (x velocity below -0.1
    after one push left), not restarted again as EnvPool alone would do."""
    env = GymEnv("CartPole-v1", n_envs=16, vectorization="envpool")
    assert env.simulator == "classic_control" and not env.restorable
    assert env.get_state_info().shape == (4,) and env.get_action_info().n == 2
    env.reset(seed=0)
    ends, restarted = 0, np.zeros(16, dtype=bool)
    for _ in range(200):
        step = env.step(np.zeros(16, dtype=np.int64))  # always push left: falls within ~10 steps
        assert np.all(step.reward == 1.0)
        assert np.all(step.obs[restarted, 1] < -0.1)
        done = step.terminated | step.truncated
        restarted = done
        if not done.any():
            assert step.final_obs is None
            continue
        ends += done.sum()
        assert not step.truncated.any()
        final = step.final_obs[done]
        assert np.all((np.abs(final[:, 0]) > X_LIMIT) | (np.abs(final[:, 2]) > THETA_LIMIT))
        assert np.all(np.abs(step.obs[done]) <= 0.05)
        np.testing.assert_array_equal(step.final_obs[~done], step.obs[~done])
    assert ends > 100
    env.close()


@needs_envpool
def test_a_fall_on_the_time_limit_step_is_truncated_only():
    """The one known difference from Gymnasium (see envs.envpool_env): poles that fall on the
    last step of a 9-step limit are truncated, not terminated; Gymnasium's are both."""
    env = GymEnv("CartPole-v1", n_envs=64, vectorization="envpool", max_episode_steps=9)
    env.reset(seed=0)
    first = np.ones(64, dtype=bool)  # still in their first episode
    for _ in range(8):
        step = env.step(np.zeros(64, dtype=np.int64))  # push left: most fall at steps 8 to 10
        first &= ~(step.terminated | step.truncated)
    step = env.step(np.zeros(64, dtype=np.int64))
    final = step.final_obs[first]
    fell = (np.abs(final[:, 0]) > X_LIMIT) | (np.abs(final[:, 2]) > THETA_LIMIT)
    assert fell.sum() > 10 and step.truncated[first].all() and not step.terminated[first].any()


@needs_envpool
@pytest.mark.filterwarnings("ignore:.*precision lowered by casting")  # the raw EnvPool's Box
def test_pendulum_is_truncated_every_200_steps_with_its_last_observation():
    """Truncations at steps 200 and 400 (EnvPool alone: 200 and 401); final_obs is what a raw
    EnvPool seeded alike observes at step 200, obs a new start state."""
    import envpool

    env = GymEnv("Pendulum-v1", n_envs=4, vectorization="envpool")
    env.reset(seed=5)
    seeds = [s % INT32_SEEDS for s in env_seeds(5, 4)]
    raw = envpool.make("Pendulum-v1", env_type="gymnasium", num_envs=4, seed=seeds)
    raw.reset()
    actions = np.linspace(-2.0, 2.0, 4, dtype=np.float32)[:, None]
    for t in range(1, 451):
        step = env.step(actions)
        assert not step.terminated.any()
        assert step.truncated.any() == (t in (200, 400))
        assert step.truncated.all() == step.truncated.any()
        if t <= 200:
            raw_obs = raw.step(actions)[0]
            expected = step.final_obs if t == 200 else step.obs
            np.testing.assert_array_equal(expected, raw_obs)
        if t == 200:
            cos, sin, theta_dot = step.obs.T
            np.testing.assert_allclose(cos**2 + sin**2, 1.0, rtol=1e-5)
            assert np.all(np.abs(theta_dot) <= 1.0) and not np.array_equal(step.obs, raw_obs)
    env.close()
    raw.close()


@needs_envpool
def test_seeded_reset_reproduces_the_run():
    """Same seed, same trajectory (through resets), on a new env or after a re-seed; another
    seed differs, and the copies of one env differ from each other."""
    a, b = (GymEnv("CartPole-v1", n_envs=8, vectorization="envpool") for _ in range(2))
    actions = np.ones(8, dtype=np.int64)
    first = a.reset(seed=3)
    np.testing.assert_array_equal(first, b.reset(seed=3))
    assert len(np.unique(first[:, 0])) == 8
    run = [a.step(actions).obs for _ in range(60)]
    for obs in run:
        np.testing.assert_array_equal(obs, b.step(actions).obs)
    np.testing.assert_array_equal(a.reset(seed=3), first)
    np.testing.assert_array_equal(a.step(actions).obs, run[0])
    assert not np.array_equal(a.reset(seed=4), first)


@needs_envpool
@pytest.mark.parametrize(("env_id", "kwargs", "needle"), [
    ("CartPole-v1", {"wrappers": [lambda e: e]}, "takes no env.wrappers; use sync or async"),
    ("Taxi-v4", {}, "EnvPool has no 'Taxi-v4'"),
    ("CartPole-v1", {"sutton_barto_reward": True},
     "takes no env.kwargs sutton_barto_reward (it takes max_episode_steps"),
])
def test_what_envpool_cannot_serve_is_refused(env_id, kwargs, needle):
    with pytest.raises(ConfigError, match="use sync or async") as err:
        GymEnv(env_id, n_envs=2, vectorization="envpool", **kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_missing_envpool_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "envpool", None)  # import envpool raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'torchrl-cli\[envpool\]'"):
        GymEnv("CartPole-v1", n_envs=2, vectorization="envpool")


@needs_envpool
@pytest.mark.parametrize(("overrides", "needle"), [
    (["env=ALE/Pong-v5", "+env.kwargs.frameskip=1"], "takes no env.kwargs frameskip"),
    (["env=Acrobot-v1", "+env.wrappers=[{_target_:gymnasium.wrappers.ClipReward,min_reward:-1}]"],
     "takes no env.wrappers"),
    (["env=CartPole-v1", "+env.kwargs.sutton_barto_reward=true"], "takes no env.kwargs"),
])
def test_refusals_come_before_anything_is_built(overrides, needle):
    """validate() refuses what GymEnv would, so that no run folder is made."""
    if "ALE" in overrides[0]:
        pytest.importorskip("ale_py")
    cfg = compose_config([*overrides, "env.vectorization=envpool"])
    with pytest.raises(ConfigError, match=needle):
        validate(cfg)


@needs_envpool
def test_cli_learns_cartpole_and_resumes_with_a_warning(tmp_path, torchrl_bin, cli_env):
    """20k steps of PPO-clip reach a mean return well above random (~20); resuming the run
    restarts EnvPool's episodes and says so."""
    run = ["train", "env=CartPole-v1", "env.vectorization=envpool", "max_steps=20480", "seed=0",
           "eval_episodes=8", "logger.progress=false", "hydra.run.dir=run"]
    proc = torchrl(torchrl_bin, run, tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "precision lowered" not in proc.stderr, proc.stderr  # EnvPool's Box, silenced
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["mean_return"] > 200
    resumed = torchrl(torchrl_bin, ["train", "resume=run", "max_steps=22528"], tmp_path, cli_env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "EnvPool envs cannot be restored mid-episode" in resumed.stdout


ATARI = {"noop_max": 30, "frame_skip": 4, "screen_size": 84, "frame_stack": 4,
         "episodic_life": True, "clip_reward": True}


@needs_envpool
def test_atari_preprocessing_runs_in_envpool_with_the_same_spaces_and_settings():
    """ALE/Pong-v5 on EnvPool: Gymnasium's preprocessed spaces (4 x 84 x 84 uint8, 6 actions);
    env.atari as EnvPool's options, episodic life and clipping for training only, the v5 id's
    sticky actions (p = 0.25) unless env.kwargs says otherwise."""
    pytest.importorskip("ale_py")
    from torchrl_cli.envs.factory import build_env

    cfg = compose_config(["env=ALE/Pong-v5", "env.vectorization=envpool"])
    validate(cfg)
    shapes = {}
    for vectorization in ("envpool", "sync"):
        cfg.env.vectorization = vectorization
        env = build_env(cfg.env, n_envs=2)
        obs = env.reset(seed=0)
        shapes[vectorization] = (obs.shape, obs.dtype, env.get_action_info().n)
        env.close()
    assert shapes["envpool"] == shapes["sync"] == ((2, 4, 84, 84), np.uint8, 6)
    train = atari_options("ALE/Pong-v5", ATARI, training=True)
    evaluate = atari_options("ALE/Pong-v5", ATARI, training=False)
    assert train["episodic_life"] and train["reward_clip"]
    assert not evaluate["episodic_life"] and not evaluate["reward_clip"]
    assert train["repeat_action_probability"] == 0.25 and train["stack_num"] == 4
    cfg = compose_config(["env=ALE/Pong-v5", "env.vectorization=envpool",
                          "+env.kwargs.repeat_action_probability=0"])
    for evaluation in (False, True):
        env = build_env(cfg.env, n_envs=1, evaluation=evaluation)
        assert env.vec.kwargs["repeat_action_probability"] == 0 and env.vec.env_id == "Pong-v5"
        assert env.vec.episodic_life is not evaluation
        assert env.vec.kwargs["reward_clip"] is not evaluation
        env.close()


@needs_envpool
def test_envpool_episodic_life_ends_the_episode_and_goes_on_with_the_game():
    """Breakout (5 lives) in training: a lost life terminates the copy's episode; its reset
    within the step goes on with the same game (4 lives left), not a new one (EnvPool's own
    episodic life would restart it on that reset)."""
    pytest.importorskip("ale_py")
    vec = EnvPoolVectorEnv("ALE/Breakout-v5", 1, [],
                           atari_options("ALE/Breakout-v5", ATARI, training=True))
    vec.reset(seed=[0])
    rng = np.random.default_rng(0)
    for _ in range(2000):
        _, _, terminated, truncated, info = vec.step(rng.integers(0, 4, size=1))
        if terminated[0] or truncated[0]:
            break
    assert terminated[0] and info["lives"][0] == 4
    vec.reset_copies(terminated)
    _, _, _, _, info = vec.step(np.zeros(1, dtype=np.int64))
    assert info["lives"][0] == 4
    vec.close()


@needs_envpool
def test_pong_trains_on_envpool_through_the_cli(tmp_path, torchrl_bin, cli_env):
    """`torchrl train env=ALE/Pong-v5 env.vectorization=envpool` for 256 steps: a game score."""
    pytest.importorskip("ale_py")
    run = ["train", "env=ALE/Pong-v5", "env.vectorization=envpool", "max_steps=256",
           "agent.n_steps=32", "env.n_envs=2", "eval_freq=0", "eval_episodes=1",
           "+env.kwargs.max_episode_steps=100", "logger.progress=false", "agent.num_epochs=1",
           "agent.num_mini_batches=2", "hydra.run.dir=run"]
    proc = torchrl(torchrl_bin, run, tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["env_steps"] == 256 and -21 <= metrics["mean_return"] <= 21
