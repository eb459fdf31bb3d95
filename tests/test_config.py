"""Config tests through Hydra composition: every option composes, builds and trains one step."""

import re
import shlex

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import compose_config, make_agent
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from torchrl_cli.config import config_dir, load_default, register_configs
from torchrl_cli.config.compose import compose_config as cli_compose
from torchrl_cli.config.schema import Config, EnvConfig, PPOClipAgentConfig
from torchrl_cli.config.validate import validate
from torchrl_cli.envs import BaseEnv, EnvStep
from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind
from torchrl_cli.errors import ConfigError
from torchrl_cli.nn import FlattenLinear, nn_from_config
from torchrl_cli.run.build import check_run

CONF = config_dir()
N_ENVS, N_STEPS = 2, 8
# Small but valid: one epoch of two minibatches over a 2 x 8 rollout.
SMALL = [f"env.n_envs={N_ENVS}", f"agent.n_steps={N_STEPS}", "agent.num_epochs=1",
         "agent.num_mini_batches=2", "logger.progress=false"]
IMAGE_SHAPE = (4, 84, 84)


def options(group: str) -> list[str]:
    """The options of a config group: its YAML files; env ids may nest ('ALE/Pong-v5'), while
    folders inside other groups are groups of their own (agent/advantage)."""
    root = CONF / group
    files = root.rglob("*.yaml") if group == "env" else root.glob("*.yaml")
    return sorted(str(p.relative_to(root).with_suffix("")) for p in files)


def tuned_pairs() -> list[tuple[str, str]]:
    root = CONF / "tuned"
    return sorted((p.relative_to(root).parts[0],
                   str(p.relative_to(root / p.relative_to(root).parts[0]).with_suffix("")))
                  for p in root.rglob("*.yaml"))


def tuned_memories() -> list[tuple[str, str, str]]:
    """(agent, env, memory) of every conf/tuned_memory/<agent>/<env>/<memory>.yaml."""
    root = CONF / "tuned_memory"
    return sorted((p.relative_to(root).parts[0],
                   str(p.parent.relative_to(root / p.relative_to(root).parts[0])), p.stem)
                  for p in root.rglob("*.yaml"))


def is_image_net(net: str) -> bool:
    """Nets whose body has a conv layer need image observations."""
    body = load(CONF / "net" / f"{net}.yaml")["body"]
    return any("Conv" in node["_target_"] for node in body)


def load(path) -> dict:
    """A YAML file as OmegaConf reads it (YAML 1.1 would keep '1e-3' a string)."""
    return OmegaConf.to_container(OmegaConf.load(path))


def leaves(node, prefix=""):
    """(dotted key, value) for every scalar of a nested dict."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "defaults":
                yield from leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


def test_groups_are_not_empty():
    """The globbed groups find the shipped options (a wrong glob would skip every test)."""
    assert "ppo_clip" in options("agent")
    assert {"CartPole-v1", "Acrobot-v1", "Pendulum-v1"} <= set(options("env"))
    assert {"mlp", "mlp_large", "nature_cnn"} <= set(options("net"))
    assert {"cartpole_solve", "pendulum_solve"} <= set(options("experiment"))
    assert ("ppo_clip", "CartPole-v1") in tuned_pairs()


# --- every option composes, validates, builds and runs one agent.step() -------------------------


def build_and_step(cfg, env: BaseEnv | None = None) -> None:
    """Validate, build env + agent on CPU, run one step: the batch is full and weights move."""
    own_env = env is None
    if own_env:
        validate(cfg)
    agent, env = make_agent(cfg, env=env)
    try:
        before = [p.detach().clone() for p in agent.policy_model.parameters()]
        agent.step()
        # env steps count copies (a multi-agent env's rows are its copies' agents)
        assert agent.num_steps == cfg.agent.n_steps * env.n_envs // env.n_agents
        after = list(agent.policy_model.parameters())
        assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
        info = env.get_action_info()
        obs = agent.collector.obs.clone()
        with torch.no_grad():
            out, values = agent.policy_model(obs), agent.values(obs)
        width = info.n if info.kind == "discrete" else int(np.prod(info.shape))
        assert out.shape == (env.n_envs, width)
        assert values.shape == (env.n_envs,)
    finally:
        if own_env:
            env.close()


@pytest.mark.parametrize("agent", options("agent"))
def test_agent_option_composes_and_steps(agent):
    """agent=<option> composes with its name and trains one step (the many-agent ones on a
    PettingZoo env)."""
    many = ["env=pettingzoo:mpe2.simple_spread_v3"] if agent in ("ippo", "mappo") else []
    cfg = compose_config([f"agent={agent}", *many, *SMALL])
    assert cfg.agent.name == agent
    build_and_step(cfg)


@pytest.mark.parametrize("env", options("env"))
def test_env_option_composes_and_steps(env):
    """env=<option> composes with env.id equal to the file name and trains one step."""
    cfg = compose_config([f"env={env}", *SMALL])
    assert cfg.env.id == env
    assert cfg.env.n_envs == N_ENVS
    build_and_step(cfg)


@pytest.mark.parametrize("env", options("env"))
def test_env_file_values_reach_the_config(env):
    """Every value an env file writes is the composed value (no typo drops it); a file that
    sets its budget (`@package _global_`) writes from the root, with its env under `env:`."""
    path = CONF / "env" / f"{env}.yaml"
    written = load(path)
    cfg = compose_config([f"env={env}"])
    root = path.read_text().startswith("# @package _global_")
    tuned = CONF / "tuned" / "ppo_clip" / f"{env}.yaml"  # the default agent's file wins
    overridden = dict(leaves(load(tuned))) if tuned.exists() else {}
    for key, value in leaves(written):
        if key not in overridden:
            assert OmegaConf.select(cfg if root else cfg.env, key) == value, key
    if root:
        assert cfg.env.id == written["env"]["id"] == env


def test_every_env_file_outside_ale_sets_its_budget():
    """`torchrl train env=<id>` runs each shipped env's own budget, with evaluation every 5 % of
    it or more often (docs/budgets.md measures each); ALE ids keep the schema's (see README)."""
    for path in sorted((CONF / "env").glob("*.yaml")):
        written = load(path)
        assert written["max_steps"] >= 50_000 and 0 < written["eval_freq"], path.name
        assert written["max_steps"] / written["eval_freq"] >= 10, path.name
        tuned = CONF / "tuned" / "ppo_clip" / path.name  # the default agent's file may set its own
        expected = {**written, **(load(tuned) if tuned.exists() else {})}
        cfg = compose_config([f"env={path.stem}"])
        assert (cfg.max_steps, cfg.eval_freq) == (expected["max_steps"], expected["eval_freq"])


class FakeImageEnv(BaseEnv):
    """Random uint8 image stacks (4, 84, 84) with 6 discrete actions: no image env is installed."""

    state_holder, restorable, action_mask = "fake", False, None

    def __init__(self, n_envs: int):
        self.n_envs = n_envs
        self.rng = np.random.default_rng(0)

    def get_state(self) -> list[str]:
        return []

    def set_state(self, state: list[str]) -> None:
        raise NotImplementedError("a fake env's episodes are not restorable")

    def get_state_info(self) -> dict:
        return SpaceInfo(SpaceKind.CONTINUOUS, IMAGE_SHAPE, dtype="uint8",
                         low=np.zeros(IMAGE_SHAPE, np.uint8),
                         high=np.full(IMAGE_SHAPE, 255, np.uint8))

    def get_action_info(self) -> dict:
        return SpaceInfo(SpaceKind.DISCRETE, (), n=6, dtype="int64")

    @property
    def simulator(self) -> str:
        return "fake"

    def _obs(self) -> np.ndarray:
        return self.rng.integers(0, 256, (self.n_envs, *IMAGE_SHAPE), dtype=np.uint8)

    def reset(self, seed: int | None = None) -> np.ndarray:
        return self._obs()

    def step(self, actions: np.ndarray) -> EnvStep:
        assert actions.shape == (self.n_envs,)
        done = self.rng.random(self.n_envs) < 0.2
        return EnvStep(self._obs(), self.rng.standard_normal(self.n_envs), done,
                       np.zeros(self.n_envs, bool), None)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("net", options("net"))
def test_net_option_composes_and_steps(net):
    """net=<option> composes and trains one step (conv nets on a synthetic image env)."""
    cfg = compose_config([f"net={net}", *SMALL])
    assert cfg.net.name == net
    if is_image_net(net):
        build_and_step(cfg, FakeImageEnv(N_ENVS))
    else:
        build_and_step(cfg)


def test_nature_cnn_builds_on_image_state():
    """net=nature_cnn through nn_from_config on (4,84,84): in_channels 4, Flatten 3136 -> 512."""
    cfg = compose_config(["net=nature_cnn"])
    net = nn_from_config(cfg.net, SpaceInfo(SpaceKind.CONTINUOUS, IMAGE_SHAPE))
    body = list(net.layers[0].layers)
    assert next(m for m in body if isinstance(m, torch.nn.Conv2d)).in_channels == 4
    flat = next(m for m in body if isinstance(m, FlattenLinear))
    assert flat.in_features == 64 * 7 * 7
    assert net.out_shape == (512,)
    assert net(torch.zeros(2, *IMAGE_SHAPE)).shape == (2, 512)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_option_composes_and_steps(experiment):
    """experiment=<option> composes (its @package _global_ header applies) and trains one step."""
    cfg = compose_config([f"experiment={experiment}", *SMALL])
    written = load(CONF / "experiment" / f"{experiment}.yaml")
    assert "experiment" not in cfg
    assert cfg.target_return == written["target_return"]
    build_and_step(cfg)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_is_its_tuned_pair_plus_its_keys(experiment):
    """experiment=X equals composing its agent and env (tuned file included) plus its own keys."""
    written = load(CONF / "experiment" / f"{experiment}.yaml")
    choices = {k.split("/")[-1]: v for d in written["defaults"] for k, v in d.items()}
    base = compose_config([f"agent={choices['agent']}", f"env={choices['env']}"])
    cfg = compose_config([f"experiment={experiment}"])
    for key, value in leaves(written):
        OmegaConf.update(base, key, value)
    assert OmegaConf.to_container(cfg) == OmegaConf.to_container(base)


def command_line(experiment: str) -> str:
    """The experiment's first line after Hydra's '# @' header lines."""
    lines = (CONF / "experiment" / f"{experiment}.yaml").read_text().splitlines()
    return next(line for line in lines if not re.match(r"^\s*#\s*@", line))


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_first_line_is_its_command(experiment):
    """The first line (after '# @' headers) is a comment with 'torchrl train experiment=<name>'."""
    line = command_line(experiment)
    assert line.startswith("#")
    assert re.search(rf"torchrl train experiment={re.escape(experiment)}$", line), line


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_command_runs(experiment):
    """The overrides of the command in the experiment's first comment compose and validate."""
    line = command_line(experiment)
    overrides = shlex.split(line.split("torchrl train", 1)[1])
    assert overrides == [f"experiment={experiment}"]
    cfg = compose_config(overrides)
    validate(cfg)
    assert cfg.target_return is not None


def test_load_default_cartpole_solve():
    """load_default('cartpole_solve') returns PPO-clip on CartPole-v1 with target_return 475."""
    cfg = load_default("cartpole_solve")
    assert cfg.target_return == 475
    assert cfg.env.id == "CartPole-v1"
    assert cfg.agent.name == "ppo_clip"
    assert cfg.agent.n_steps == 32  # the tuned pair applies under the preset too
    assert load_default("cartpole_solve", ["seed=3"]).seed == 3


# --- the tuned group ----------------------------------------------------------------------------


def test_tuned_cartpole_values_apply():
    """agent=ppo_clip env=CartPole-v1 gets conf/tuned/ppo_clip/CartPole-v1.yaml's values."""
    cfg = compose_config(["agent=ppo_clip", "env=CartPole-v1"])
    agent = cfg.agent
    assert (agent.n_steps, agent.gamma, agent.lr) == (32, 0.99, 8e-3)
    assert isinstance(agent.lr, float)
    assert agent.advantage.gae_lambda == 0.95
    assert agent.advantage.gamma == 0.99  # interpolated from agent.gamma
    assert (agent.policy.num_epochs, agent.policy.num_mini_batches) == (6, 2)
    assert agent.policy.clip_schedule == "linear"
    assert agent.policy.optimizer.lr == 8e-3
    assert (agent.value.num_epochs, agent.value.num_mini_batches) == (6, 2)
    assert cfg.env.n_envs == 16
    assert (cfg.max_steps, cfg.eval_freq) == (50000, 10240)
    assert agent.policy.ppo_clip_range == 0.2  # not in the tuned file: schema default


@pytest.mark.parametrize(("agent", "env"), tuned_pairs())
def test_tuned_file_values_reach_the_config(agent, env):
    """Every value a tuned file writes is the composed value for its agent/env pair."""
    written = load(CONF / "tuned" / agent / f"{env}.yaml")
    cfg = compose_config([f"agent={agent}", f"env={env}"])
    pairs = list(leaves(written))
    assert pairs
    for key, value in pairs:
        assert OmegaConf.select(cfg, key) == value, key


@pytest.mark.parametrize(("agent", "env", "memory"), tuned_memories())
def test_tuned_memory_file_values_reach_the_config(agent, env, memory):
    """Every value a tuned_memory file writes is the composed value for its pair with that
    memory, where the pair's tuned file (which wins) does not set the key; the other memories
    of the pair do not get them."""
    written = dict(leaves(load(CONF / "tuned_memory" / agent / env / f"{memory}.yaml")))
    pair_file = CONF / "tuned" / agent / f"{env}.yaml"
    pair = dict(leaves(load(pair_file))) if pair_file.exists() else {}
    cfg = compose_config([f"agent={agent}", f"env={env}", f"memory={memory}"])
    assert written
    for key, value in written.items():
        assert OmegaConf.select(cfg, key) == pair.get(key, value), key
    assert cfg.memory.kind == memory


def test_each_memory_gets_its_own_cartpolenovel_values():
    """CartPoleNoVel-v1: the LSTM trains with lr 2e-3, an entropy bonus and one minibatch, the
    GRU with lr 1e-3, none and two, no memory (the frame-stack baseline) with 4 epochs of a
    64x64 tanh MLP; all three share the pair's rollout; the command line still wins."""
    def composed(*overrides):
        return compose_config(["env=CartPoleNoVel-v1", *overrides])

    lstm, gru, none = (composed(f"memory={m}") for m in ("lstm", "gru", "none"))
    assert (lstm.agent.lr, lstm.agent.policy.entropy_coef) == (2e-3, 0.01)
    assert (gru.agent.lr, gru.agent.policy.entropy_coef) == (1e-3, 0.0)
    assert (lstm.agent.num_mini_batches, gru.agent.num_mini_batches) == (1, 2)
    assert (none.agent.lr, none.agent.policy.num_epochs) == (3e-3, 4)
    assert list(none.net.hidden) == [64, 64]
    for cfg in (lstm, gru, none):
        assert (cfg.env.n_envs, cfg.agent.n_steps, cfg.agent.gamma) == (16, 32, 0.98)
    assert composed("env.frame_stack=4").agent.lr == 3e-3  # memory=none is the default
    cfg = composed("memory=lstm", "agent.lr=5e-4", "agent.policy.entropy_coef=0")
    assert (cfg.agent.lr, cfg.agent.policy.entropy_coef) == (5e-4, 0.0)


def test_each_memory_explores_mountaincarcontinuousnovel_its_own_way():
    """MountainCarContinuousNoVel-v0: stacked frames with a wider Gaussian (log_std_init 0.5),
    the LSTM and the GRU with gSDE (from the schema's log_std_init and from 0.5); all at the
    pair's 300k."""
    def composed(*overrides):
        return compose_config(["env=MountainCarContinuousNoVel-v0", *overrides])

    none = composed()
    assert (none.env.frame_stack, none.agent.policy.log_std_init) == (4, 0.5)
    assert not none.agent.policy.sde.enabled
    for memory, log_std in (("lstm", 0.0), ("gru", 0.5)):
        cfg = composed(f"memory={memory}")
        assert (cfg.env.frame_stack, cfg.agent.policy.log_std_init) == (1, log_std)
        assert cfg.agent.policy.sde.enabled, memory
    assert {composed(f"memory={m}").max_steps for m in ("none", "lstm", "gru")} == {300_000}
    assert not composed("memory=lstm", "agent.policy.sde.enabled=false").agent.policy.sde.enabled


@pytest.mark.parametrize(("env", "frames"), [
    ("CartPoleNoVel-v1", 4), ("PendulumNoVel-v1", 4), ("MountainCarContinuousNoVel-v0", 4),
    ("LunarLanderNoVel-v3", 16)])
def test_a_partially_observed_env_without_a_memory_stacks_frames(env, frames):
    """`torchrl train env=<NoVel id>` trains the frame-stack baseline its tuned files were
    measured with; a memory reads single observations; the command line still wins."""
    assert compose_config([f"env={env}"]).env.frame_stack == frames
    for memory in ("lstm", "gru"):
        assert compose_config([f"env={env}", f"memory={memory}"]).env.frame_stack == 1
    assert compose_config([f"env={env}", "env.frame_stack=1"]).env.frame_stack == 1


def test_untuned_pair_gets_schema_defaults():
    """An id with neither an env file nor a tuned file (InvertedPendulum-v4) gets the schema's
    agent and run defaults, the budget included."""
    assert not (CONF / "env" / "InvertedPendulum-v4.yaml").exists()
    cfg = compose_config(["agent=ppo_clip", "env=InvertedPendulum-v4"])
    schema = OmegaConf.to_container(OmegaConf.structured(PPOClipAgentConfig))
    agent = OmegaConf.to_container(cfg.agent)
    assert agent.pop("advantage") == OmegaConf.to_container(
        OmegaConf.load(CONF / "agent" / "advantage" / "gae.yaml"))
    schema.pop("advantage")
    assert agent == schema
    assert (cfg.agent.n_steps, cfg.agent.gamma, cfg.agent.lr) == (128, 0.99, 3e-4)
    assert (cfg.agent.policy.num_epochs, cfg.agent.policy.num_mini_batches) == (10, 4)
    assert cfg.agent.policy.clip_schedule == "constant"
    defaults = Config()
    assert (cfg.max_steps, cfg.eval_freq) == (defaults.max_steps, defaults.eval_freq)
    assert (cfg.max_steps, cfg.eval_freq) == (100_000, 10_000)


def test_command_line_beats_tuned_values():
    """A command-line override wins over the tuned file; other tuned values stay."""
    cfg = compose_config(["env=CartPole-v1", "agent.n_steps=16", "max_steps=777"])
    assert (cfg.agent.n_steps, cfg.max_steps) == (16, 777)
    assert cfg.agent.gamma == 0.99


# --- generic env nodes for registered ids without a file ----------------------------------------


@pytest.mark.parametrize("env_id", ["CartPole-v0", "phys2d/CartPole-v0", "FrozenLake-v1"])
def test_registered_id_without_file_composes_with_defaults(env_id):
    """env=<registered id without a YAML file> sets env.id and keeps the schema defaults."""
    assert env_id in gym.registry
    assert env_id not in options("env")
    cfg = compose_config([f"env={env_id}"])
    expected = OmegaConf.to_container(OmegaConf.structured(EnvConfig(id=env_id)))
    assert OmegaConf.to_container(cfg.env) == expected
    assert cfg.agent.n_steps == 128  # no tuned file for this pair


def test_registered_id_without_file_builds_and_steps():
    """env=CartPole-v0 (generic node) builds and trains one step."""
    cfg = compose_config(["env=CartPole-v0", *SMALL])
    assert cfg.env.id == "CartPole-v0"
    build_and_step(cfg)


def test_only_the_chosen_env_ids_get_a_node():
    """The ConfigStore holds nodes for the ids a command line chooses, not one per registered
    id (hundreds, each deep-copied by every composition); a sweep's values all get one, and
    the Atari tuned values apply to the ALE ids chosen."""
    from hydra.core.config_store import ConfigStore

    from torchrl_cli.config.compose import check_overrides

    def stored():
        env = ConfigStore.instance().repo.get("env", {})
        return {k.removesuffix(".yaml") for k in env if not isinstance(env[k], dict)}

    assert "FrozenLake8x8-v1" not in stored() and "CliffWalking-v1" not in stored()
    first = check_overrides(["env=FrozenLake8x8-v1,CliffWalking-v1"], check_run, multirun=True)
    assert first.env.id == "FrozenLake8x8-v1"
    assert {"FrozenLake8x8-v1", "CliffWalking-v1"} <= stored()
    assert len(stored()) < len(gym.registry) / 4, len(stored())
    cfg = compose_config(["env=ALE/Tennis-v5"])
    tuned = OmegaConf.load(config_dir() / "tuned" / "ppo_clip" / "ALE" / "Pong-v5.yaml")
    assert (cfg.net.name, cfg.agent.lr) == ("nature_cnn", tuned.agent.lr)
    register_configs(["hydra.sweeper.params.env=choice(FrozenLake-v1, Blackjack-v1)"])
    assert {"FrozenLake-v1", "Blackjack-v1"} <= stored()  # an Optuna sweep over env ids


def test_unregistered_env_is_a_config_error():
    """An env that is neither a file nor a registered id fails to compose, naming the id."""
    with pytest.raises(ConfigError, match="unknown env 'NoSuchEnv-v9'"):
        cli_compose(["env=NoSuchEnv-v9"])


# --- the structured schema type-checks overrides ------------------------------------------------


@pytest.mark.parametrize(
    "override",
    ["env.n_envs=abc", "agent.gamma=foo", "agent.n_steps=1.5", "seed=1.5", "max_steps=ten",
     "logger.progress=maybe", "agent.policy.ppo_clip_range=wide", "agent.value.clip_range=x",
     "eval_episodes=[1,2]", "env.running_normalize_states=sometimes"],
)
def test_wrong_type_override_raises(override):
    """An override whose value does not fit the schema's type fails to compose."""
    with pytest.raises(ConfigCompositionException) as err:
        compose_config([override])
    assert isinstance(err.value.__cause__, ValidationError)
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=re.escape(key)):
        cli_compose([override])


@pytest.mark.parametrize(
    "override",
    ["agent.foo=1", "env.bogus=1", "agent.policy.bogus=1", "agent.value.bogus=1", "net.bogus=1",
     "logger.bogus=1", "bogus=1", "agent.advantage.lambda=0.9"],
)
def test_unknown_key_override_raises(override):
    """An override of a key the schema does not have fails to compose."""
    with pytest.raises(ConfigCompositionException) as err:
        compose_config([override])
    assert isinstance(err.value.__cause__, ConfigAttributeError | ConfigKeyError)
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=re.escape(f"unknown config key '{key}'")):
        cli_compose([override])


def test_string_numbers_are_converted_to_the_schema_type():
    """Typed fields convert what the command line gives: '0.5' to float, '3' to int."""
    cfg = compose_config(["agent.gamma=0.5", "env.n_envs=3", "target_return=100"])
    assert isinstance(cfg.agent.gamma, float) and cfg.agent.gamma == 0.5
    assert isinstance(cfg.env.n_envs, int) and cfg.env.n_envs == 3
    assert isinstance(cfg.target_return, float) and cfg.target_return == 100.0


# --- validate() range checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["agent.lr=-1"], "agent.lr"),
        (["agent.lr=0"], "agent.lr"),
        (["agent.gamma=0"], "agent.gamma"),
        (["agent.gamma=1.5"], "agent.gamma"),
        (["agent.n_steps=0"], "agent.n_steps"),
        (["agent.advantage.gae_lambda=1.5"], "agent.advantage.gae_lambda"),
        (["agent.advantage.gae_lambda=-0.1"], "agent.advantage.gae_lambda"),
        (["agent.policy.ppo_clip_range=0"], "agent.policy.ppo_clip_range"),
        (["agent.policy.num_mini_batches=1000"], "agent.policy.num_mini_batches"),
        (["agent.value.num_mini_batches=1000"], "agent.value.num_mini_batches"),
        (["agent.policy.num_mini_batches=0"], "agent.policy.num_mini_batches"),
        (["agent.policy.num_epochs=0"], "agent.policy.num_epochs"),
        (["agent.value.num_epochs=0"], "agent.value.num_epochs"),
        (["agent.policy.optimizer.lr=-1"], "agent.policy.optimizer.lr"),
        (["agent.value.optimizer.lr=0"], "agent.value.optimizer.lr"),
        (["agent.policy.clip_grad_norm=0"], "agent.policy.clip_grad_norm"),
        (["agent.value.lr_schedule=cosine"], "agent.value.lr_schedule"),
        (["agent.value.clip_range=0"], "agent.value.clip_range"),
        (["env.n_envs=0"], "env.n_envs"),
        (["env.train_max_episode_steps=0"], "env.train_max_episode_steps"),
        (["env.vectorization=threads"], "env.vectorization"),
        (["env.id=NoSuchEnv-v9"], "NoSuchEnv-v9"),
        (["env=CarRacing-v3", "env.pixels.frame_stack=0"], "env.pixels.frame_stack"),
        (["device=tpu"], "device"),
        (["max_steps=-1", "max_iters=-1", "max_episodes=-1"], "max_steps"),
        (["max_steps=0"], "max_steps"),
        (["max_iters=-2"], "max_iters"),
        (["max_episodes=0"], "max_episodes"),
        (["eval_episodes=0"], "eval_episodes"),
        (["torch_threads=0"], "torch_threads"),
        (["logger.log_freq=0"], "logger.log_freq"),
    ],
)
def test_validate_rejects_out_of_range(overrides, key):
    """validate() raises ConfigError whose message names the offending key."""
    cfg = compose_config(overrides)
    with pytest.raises(ConfigError, match=re.escape(key)):
        validate(cfg)


@pytest.mark.parametrize(
    "overrides",
    [[], ["agent.gamma=1"], ["agent.advantage.gae_lambda=0"], ["agent.advantage.gae_lambda=1"],
     ["max_steps=-1", "max_iters=5"], ["max_steps=-1", "max_episodes=3"],
     ["env.n_envs=2", "agent.n_steps=8", "agent.policy.num_mini_batches=8"],
     ["device=cpu"], ["agent.value.clip_range=0.2"], ["env.vectorization=async"],
     ["env.train_max_episode_steps=1"]],
)
def test_validate_accepts_boundary_values(overrides):
    """Values on the valid side of each boundary pass validate()."""
    validate(compose_config(overrides))


@pytest.mark.parametrize("option", options("agent/advantage"))
def test_advantage_option_composes_and_steps(option):
    """Every agent/advantage option composes and trains one step (REINFORCE without a value
    model for discounted_returns)."""
    extra = ["agent.value=null"] if option == "discounted_returns" else []
    cfg = compose_config([*SMALL, "agent=vanilla_pg", f"agent/advantage={option}", *extra])
    assert cfg.agent.advantage._target_.startswith("torchrl_cli.rollout.estimators.")
    agent, env = make_agent(cfg)
    try:
        agent.step()
        assert agent.num_steps == cfg.agent.n_steps * cfg.env.n_envs
    finally:
        env.close()
