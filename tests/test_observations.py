"""Every observation space: how it is encoded (envs.encode), normalized, which net reads it,
and a Dict-observation env that only a policy reading both entries solves."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_config
from gymnasium import spaces

import torchrl_cli
from torchrl_cli.envs import StateNormalizer, state_info
from torchrl_cli.envs.encode import ObsEncoder, encode_numpy, make_encoder
from torchrl_cli.errors import ConfigError
from torchrl_cli.nn import choose_net
from torchrl_cli.run.policy import export_policy
from torchrl_cli.run.train import train

sys.path.insert(0, str(Path(__file__).resolve().parent / "envmods"))


def encode(space, obs):
    return encode_numpy(make_encoder(state_info(space, "test")), obs)


def test_plain_box_of_any_dtype_is_not_encoded_and_cast_once_by_the_normalizer():
    """Integer and uint8 vectors pass the env as they are; the normalizer makes them float32."""
    for dtype in (np.int64, np.uint8, np.float32):
        info = state_info(spaces.Box(0, 10, (3,), dtype), "test")
        assert info.entries is None and make_encoder(info) is None
        norm = StateNormalizer(info, running=False, fixed=False, clip=10.0)
        out = norm(torch.as_tensor(np.array([[1, 2, 3]], dtype=dtype)))
        assert out.dtype == torch.float32 and out.tolist() == [[1.0, 2.0, 3.0]]


def test_channels_last_images_are_transposed_and_stay_uint8():
    space = spaces.Box(0, 255, (40, 50, 3), np.uint8)
    info = state_info(space, "test")
    assert info.shape == (3, 40, 50) and info.dtype == "uint8" and info.image
    batch = np.random.default_rng(0).integers(0, 255, (2, 40, 50, 3), dtype=np.uint8)
    out = encode(space, batch)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 40, 50)
    assert np.array_equal(out[1, 2], batch[1, :, :, 2])
    norm = StateNormalizer(info, running=False, fixed=False, clip=10.0)
    assert norm(torch.as_tensor(out)).dtype == torch.uint8  # the net scales it (PixelScale)
    first = state_info(spaces.Box(0, 255, (4, 84, 84), np.uint8), "test")
    assert first.entries is None and first.shape == (4, 84, 84)  # channels first: as it is
    assert choose_net(info) == "nature_cnn" and choose_net(first) == "nature_cnn"
    assert choose_net(state_info(spaces.Box(0, 255, (7, 7, 3), np.uint8), "t")) == "grid_cnn"


def test_discrete_multidiscrete_multibinary_observations_are_one_hot_or_flat():
    assert encode(spaces.Discrete(4, start=1), np.array([1, 4])).tolist() == [
        [1, 0, 0, 0], [0, 0, 0, 1]]
    assert encode(spaces.MultiDiscrete([2, 3]), np.array([[1, 2]])).tolist() == [
        [0, 1, 0, 0, 1]]
    assert encode(spaces.MultiBinary(3), np.array([[1, 0, 1]])).tolist() == [[1, 0, 1]]
    assert choose_net(state_info(spaces.Discrete(16), "t")) == "mlp"


def test_dict_and_tuple_observations_become_one_flat_vector():
    space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,), np.float32),
                         "t": spaces.Tuple((spaces.Discrete(3), spaces.MultiBinary(2)))})
    info = state_info(space, "test")
    assert [e.key for e in info.entries] == ["pos", "t.0", "t.1"] and info.shape == (7,)
    obs = {"pos": np.array([[0.5, -0.5]], np.float32), "t": (np.array([2]), np.array([[0, 1]]))}
    assert encode(space, obs).tolist() == [[0.5, -0.5, 0, 0, 1, 0, 1]]
    assert choose_net(info) == "mlp"  # no image: the flat vector is one MLP input


def test_running_normalization_touches_only_the_vector_entries_of_a_dict():
    space = spaces.Dict({"img": spaces.Box(0, 255, (6, 6, 1), np.uint8),
                         "vec": spaces.Box(-np.inf, np.inf, (2,), np.float32),
                         "d": spaces.Discrete(2)})
    info = state_info(space, "test")
    assert choose_net(info) == "multi_input"
    norm = StateNormalizer(info, running=True, fixed=False, clip=10.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs = {"img": rng.integers(0, 255, (8, 6, 6, 1), dtype=np.uint8),
               "vec": rng.normal(100.0, 5.0, (8, 2)).astype(np.float32),
               "d": rng.integers(0, 2, 8)}
        encoded = torch.as_tensor(encode(space, obs))
        out = norm(encoded)
    assert [e.key for e in info.entries] == ["d", "img", "vec"]  # Gymnasium sorts the keys
    assert torch.equal(out[:, :38], encoded[:, :38])  # one-hot and image values pass through
    assert out[:, 38:].abs().mean() < 3  # the vector is standardized (raw ~100)


def test_text_entries_are_dropped_with_one_warning(capsys):
    space = spaces.Dict({"a": spaces.Box(0, 1, (2,)), "mission": spaces.Text(10)})
    for _ in range(2):
        info = state_info(space, "TextEnv-v0")
    assert [e.key for e in info.entries] == ["a"]
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "'mission'" in lines[0] and "dropped" in lines[0]


@pytest.mark.parametrize("space", [spaces.Sequence(spaces.Discrete(2)),
                                   spaces.Graph(spaces.Box(0, 1, (2,)), None)])
def test_sequence_and_graph_entries_are_refused_naming_the_key_path(space):
    with pytest.raises(ConfigError, match=r"'outer\.1' is a (Sequence|Graph)"):
        state_info(spaces.Dict({"outer": spaces.Tuple((spaces.Discrete(2), space))}), "t")


def test_the_encoder_exports_with_dict_inputs():
    space = spaces.Dict({"img": spaces.Box(0, 255, (6, 6, 1), np.uint8), "d": spaces.Discrete(3)})
    encoder = ObsEncoder(state_info(space, "test"))
    batch = torch.export.Dim("batch", min=1)
    example = {"img": torch.zeros(2, 6, 6, 1, dtype=torch.uint8),
               "d": torch.zeros(2, dtype=torch.long)}
    program = torch.export.export(encoder, (example,), dynamic_shapes=(
        {"img": {0: batch}, "d": {0: batch}},))
    obs = {"img": torch.full((3, 6, 6, 1), 7, dtype=torch.uint8), "d": torch.tensor([0, 1, 2])}
    assert torch.equal(program.module()(obs), encoder(obs))


XOR = ["env=torchrl_test_envs:XorDictEnv", "max_steps=4096", "agent.n_steps=32", "env.n_envs=8",
       "eval_freq=0", "eval_episodes=50", "logger.progress=false", "logger.log_freq=1000",
       "agent.lr=1e-3", "seed=0"]


@pytest.mark.slow
def test_dict_env_needing_both_entries_is_solved_and_served_as_dicts(tmp_path):
    """XorDictEnv rewards grid-bit XOR vector-bit: seeded PPO-clip with the multi-input net
    solves it (a policy that sees one entry earns 0.5); load_policy and the export take the
    env's dicts of arrays."""
    run = tmp_path / "run"
    run.mkdir()
    metrics = train(compose_config(XOR), run)
    assert metrics["mean_return"] == pytest.approx(1.0)
    policy = torchrl_cli.load_policy(run)
    env = policy.make_env()
    obs, _ = env.reset(seed=1)
    assert isinstance(obs, dict) and set(obs) == {"grid", "vec"}
    returns = []
    for _ in range(20):
        obs, reward, *_ = env.step(policy(obs))
        returns.append(reward)
        obs, _ = env.reset()
    assert np.mean(returns) == 1.0
    out = export_policy(policy, tmp_path / "p.pt2")
    program = torch.export.load(out).module()
    batch = {k: torch.as_tensor(np.stack([obs[k]] * 3)) for k in obs}
    expected = policy({k: v.numpy() for k, v in batch.items()})
    assert torch.equal(program(batch), torch.as_tensor(expected))


@pytest.mark.slow
def test_the_dict_env_is_not_solved_from_one_entry():
    """The control: the same run seeing only the grid stays near 0.5 (the test above can fail)."""
    only_grid = "env.wrappers=[{_target_:gymnasium.wrappers.FilterObservation,filter_keys:[grid]}]"
    metrics = train(compose_config([*XOR, only_grid]), None)
    assert metrics["mean_return"] < 0.8


@pytest.mark.parametrize(
    ("overrides", "shape"),
    [
        ([], (4, 84, 84)),  # the pixel preset: gray, 84x84, 4 frames
        (["env.pixels.grayscale=false"], (12, 84, 84)),  # 4 RGB frames, channels first
        (["env.pixels.frame_stack=1", "env.pixels.resize=null"], (1, 96, 96)),
        (["env.pixels=null"], (3, 96, 96)),  # raw frames, transposed
        # a tuple argument from the command line (a list there)
        (["env.pixels=null",
          "env.wrappers=[{_target_:gymnasium.wrappers.ResizeObservation,shape:[48,40]}]"],
         (3, 48, 40)),
    ],
)
def test_pixel_preset_parts_switch_and_wrappers_take_tuples(overrides, shape):
    from torchrl_cli.envs.factory import build_env

    cfg = compose_config(["env=CarRacing-v3", *overrides])
    env = build_env(cfg.env, 1)
    try:
        info = env.get_state_info()
        assert info.shape == shape and info.dtype == "uint8"
        assert env.reset(seed=0).shape == (1, *shape)
    finally:
        env.close()
