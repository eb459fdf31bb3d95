"""The image path's speed work keeps its behaviour: one body shared by policy and value (one
forward per minibatch step and per acting step, the same gradients as two forwards), values
given while acting, uint8 frames scaled unchanged, channels-last convolutions equal to the
contiguous ones, the thread choice, and the banner. LitSide (tests/envmods) gives 40x40 gray
frames, small enough for the Nature CNN to run in milliseconds."""

import copy
import json
import os

import numpy as np
import pytest
import torch
from conftest import ENVMODS, make_agent, torchrl

from torchrl_cli.config.compose import compose_config
from torchrl_cli.errors import ConfigError
from torchrl_cli.nn import PixelScale
from torchrl_cli.nn.shared import SharedBody, one_forward
from torchrl_cli.rollout.update import normalize
from torchrl_cli.run.build import MAX_AUTO_THREADS, check_run, choose_threads

# 40x40 frames, no resize and no stack: the Nature CNN's smallest input, for speed
LIT = ["env=torchrl_test_envs:LitSide", "env.pixels.resize=null", "env.pixels.frame_stack=1",
       "env.n_envs=4", "agent.n_steps=16", "agent.num_mini_batches=2", "agent.num_epochs=2"]


def body_of(model) -> torch.nn.Module:
    return model.net.layers[0]


def test_nature_cnn_gives_policy_and_value_one_body_trained_by_the_policy():
    agent, env = make_agent(LIT)
    policy, value = agent.policy_model, agent.value_model
    body = body_of(policy)
    assert isinstance(body, SharedBody) and body_of(value) is body
    body_ids = {id(p) for p in body.parameters()}
    policy_ids = {id(p) for g in policy.optimizer.param_groups for p in g["params"]}
    value_ids = {id(p) for g in value.optimizer.param_groups for p in g["params"]}
    assert body_ids <= policy_ids and not body_ids & value_ids
    head_ids = {id(p) for p in value.parameters()} - body_ids
    assert head_ids and head_ids == value_ids
    env.close()


def test_shared_body_false_gives_each_model_its_own():
    agent, env = make_agent([*LIT, "net.shared_body=false"])
    policy, value = agent.policy_model, agent.value_model
    assert not isinstance(body_of(policy), SharedBody)
    assert not {id(p) for p in policy.parameters()} & {id(p) for p in value.parameters()}
    env.close()


def test_net_auto_resolves_to_the_shared_nature_cnn_and_a_user_can_unshare_it():
    cfg = compose_config(LIT)
    assert cfg.net.name == "auto" and cfg.net.shared_body is None
    agent, env = make_agent(cfg)
    assert isinstance(body_of(agent.policy_model), SharedBody)
    env.close()


def count_forwards(body: SharedBody) -> list[int]:
    calls = [0]
    body.body.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_one_body_forward_per_acting_step_and_per_minibatch_step():
    agent, env = make_agent(LIT)
    calls = count_forwards(body_of(agent.policy_model))
    rollout = agent.collector.collect(agent.value_fn())
    # one per acting step (actions and values), one for V of the observation after the last
    assert calls[0] == 16 + 1
    calls[0] = 0
    agent.learn(rollout)
    assert calls[0] == 2 * 2  # epochs x minibatches
    env.close()


def test_values_given_while_acting_equal_the_value_models_pass():
    agent, env = make_agent(LIT)
    rollout = agent.collector.collect(agent.value_fn())
    assert agent.collector.valued
    with torch.no_grad():
        again = agent.value_model(rollout.obs.flatten(0, 1)).view_as(rollout.values)
    torch.testing.assert_close(rollout.values, again, rtol=1e-5, atol=1e-5)
    env.close()


def test_first_minibatch_scores_the_actions_as_they_were_sampled():
    agent, env = make_agent(LIT)
    rollout = agent.collector.collect(agent.value_fn())
    batch = agent.batch_of(rollout)
    with torch.no_grad():
        log_probs = agent.policy_model.batch_dist(batch).log_prob(batch.actions)
    torch.testing.assert_close(log_probs, batch.log_probs, rtol=1e-5, atol=1e-5)
    env.close()


def test_one_forward_gives_the_gradients_of_two_forwards():
    agent, env = make_agent(LIT)
    rollout = agent.collector.collect(agent.value_fn())
    batch = agent.batch_of(rollout)
    batch.advantages = normalize(batch.advantages)
    policy, value = agent.policy_model, agent.value_model
    body = body_of(policy)

    def grads(shared: bool) -> list[torch.Tensor]:
        for p in [*policy.parameters(), *value.parameters()]:
            p.grad = None
        bodies = [body] if shared else []
        calls = count_forwards(body)
        with one_forward(bodies):
            terms = {**policy.register_losses(batch), **value.register_losses(batch)}
        assert calls[0] == (1 if shared else 2)
        sum(v for k, v in terms.items() if k.startswith("loss_")).backward()
        return [p.grad.clone() for p in [*policy.parameters(), *value.parameters()]]

    for once, twice in zip(grads(True), grads(False), strict=True):
        torch.testing.assert_close(once, twice, rtol=1e-5, atol=1e-6)
    env.close()


def test_the_body_runs_again_outside_the_scope_and_copies_hold_no_graph():
    body = SharedBody(torch.nn.Linear(3, 2), (2,))
    x = torch.ones(4, 3)
    with one_forward([body]):
        assert body(x) is body(x)
        assert body(x.clone()) is not body(x)
        assert copy.deepcopy(body)._memo is None
    assert body._memo is None and body(x) is not body(x)


def test_uint8_frames_reach_the_net_unchanged_and_channels_last():
    frames = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    scaled = PixelScale()(frames)
    assert scaled.dtype == torch.float32
    assert scaled.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(scaled, frames.float() / 255.0, rtol=1e-6, atol=0.0)
    floats = torch.rand(2, 4, 84, 84)
    assert PixelScale()(floats) is floats


def test_rollouts_keep_frames_as_uint8():
    agent, env = make_agent(LIT)
    rollout = agent.collector.collect(agent.value_fn())
    assert rollout.obs.dtype == torch.uint8 and rollout.obs.shape[-2:] == (40, 40)
    env.close()


def test_channels_last_convolutions_equal_contiguous_ones():
    agent, env = make_agent(LIT)
    policy = agent.policy_model
    conv = next(m for m in policy.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    plain = copy.deepcopy(policy).to(memory_format=torch.contiguous_format)
    obs = torch.randint(0, 256, (5, 1, 40, 40), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(policy(obs), plain(obs), rtol=1e-5, atol=1e-5)
    env.close()


def test_threads_honour_torch_threads_and_are_chosen_per_net(monkeypatch):
    conv = compose_config(["net=nature_cnn"]).net
    mlp = compose_config(["net=mlp"]).net
    assert choose_threads(3, conv) == (3, "torch_threads")
    assert choose_threads(1, conv) == (1, "torch_threads")
    assert choose_threads(None, mlp) == (1, "auto: no convolutions")
    assert choose_threads(None, conv, job=True) == (1, "auto: a sweep's job, beside others")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(None, conv) == (3, "auto: a conv net, OMP_NUM_THREADS")
    assert choose_threads(None, mlp) == (1, "auto: no convolutions")
    monkeypatch.delenv("OMP_NUM_THREADS")
    threads, why = choose_threads(None, conv)
    cores = len(os.sched_getaffinity(0))
    assert threads == min(cores, MAX_AUTO_THREADS) and why.startswith("auto: a conv net")


def test_numpy_backend_refuses_a_shared_body_in_one_line():
    cfg = compose_config(["env=CartPole-v1", "net=mlp", "net.shared_body=true",
                          "agent.backend=numpy"])  # fmt: skip
    with pytest.raises(ConfigError, match="net.shared_body=true"):
        check_run(cfg)


def test_an_mlp_can_share_its_body_too_and_learns_the_same_way():
    agent, env = make_agent(["env=CartPole-v1", "net=mlp", "net.shared_body=true"])
    assert body_of(agent.value_model) is body_of(agent.policy_model)
    assert "net.shared_body" in agent.backend.describe()
    before = [p.detach().clone() for p in body_of(agent.policy_model).parameters()]
    agent.step()
    after = list(body_of(agent.policy_model).parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    env.close()


def test_a_shared_body_checkpoint_loads_into_a_fresh_agent_exactly():
    agent, env = make_agent(LIT)
    agent.step()
    state = agent.state_dict()
    other, env2 = make_agent(LIT, seed=5)
    other.load_state_dict(copy.deepcopy(state), seed=0)
    assert body_of(other.value_model) is body_of(other.policy_model)
    for a, b in zip(agent.value_model.parameters(), other.value_model.parameters(), strict=True):
        assert torch.equal(a, b)
    env.close()
    env2.close()


@pytest.fixture
def user_env(cli_env) -> dict:
    """CLI environment with the test env modules importable, as a user's PYTHONPATH would."""
    path = os.pathsep.join(p for p in (str(ENVMODS), cli_env.get("PYTHONPATH")) if p)
    return {**cli_env, "PYTHONPATH": path}


def test_banner_states_observations_the_shared_body_and_threads(torchrl_bin, user_env, tmp_path):
    proc = torchrl(torchrl_bin, ["train", *LIT, "max_steps=64", "eval_episodes=2",
                                 "torch_threads=1", f"hydra.run.dir={tmp_path / 'run'}"],
                   tmp_path, user_env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("observations"))
    assert line == (
        "observations uint8 (1, 40, 40), one body for policy and value; "
        "torch threads 1 (torch_threads)"
    )


def test_an_image_wrapper_on_the_pixel_preset_is_warned_about(torchrl_bin, user_env, tmp_path):
    wrapper = "env.wrappers=[{_target_:gymnasium.wrappers.ResizeObservation,shape:[40,40]}]"
    proc = torchrl(torchrl_bin, ["train", *LIT, wrapper, "max_steps=64", "eval_episodes=2",
                                 f"hydra.run.dir={tmp_path / 'run'}"], tmp_path,
                   user_env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "warning: env.wrappers has ResizeObservation on top of the env.pixels preset" in (
        proc.stdout
    )


def test_gray_one_channel_frames_pass_the_pixel_preset():
    agent, env = make_agent(["env=torchrl_test_envs:LitSide", "env.n_envs=2"])
    assert tuple(env.get_state_info().shape) == (4, 84, 84)
    assert np.asarray(env.reset(seed=0)).dtype == np.uint8
    env.close()
    del agent


@pytest.mark.parametrize("seed", [0, 1])
def test_a_shared_nature_cnn_learns_which_half_is_lit(torchrl_bin, user_env, tmp_path, seed):
    """Chance is 0.5; reading the frame earns 1. 2 048 env steps suffice at both seeds."""
    run = tmp_path / "run"
    proc = torchrl(torchrl_bin, ["train", "env=torchrl_test_envs:LitSide",
                                 "env.pixels.resize=null", "env.pixels.frame_stack=1",
                                 "agent.n_steps=32", "max_steps=2048", "eval_episodes=20",
                                 "torch_threads=1", f"seed={seed}", f"hydra.run.dir={run}"],
                   tmp_path, user_env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["mean_return"] >= 0.9, metrics["returns"]


def test_a_value_body_of_its_own_with_a_shared_body_is_one_line():
    cfg = compose_config(["env=CartPole-v1", "net=mlp", "net.shared_body=true",
                          "agent.value.net.hidden=[32]"])  # fmt: skip
    with pytest.raises(ConfigError, match="agent.value.net sets the value's own body"):
        check_run(cfg)


def test_uint8_bounds_survive_a_checkpoints_round_trip():
    """A frame env's run evaluates from its checkpoint (the bounds were saved as ints once,
    and read back as floats, so no uint8 env matched its own checkpoint)."""
    from torchrl_cli.envs.spaces import SpaceInfo

    agent, env = make_agent(LIT)
    info = env.get_state_info()
    assert info.low.dtype == np.uint8
    assert SpaceInfo.from_json(info.to_json()) == info
    env.close()
    del agent


def test_device_auto_puts_conv_nets_on_a_gpu_and_mlps_on_the_cpu(monkeypatch):
    from torchrl_cli.run.build import resolve_device

    conv, mlp = compose_config(["net=nature_cnn"]).net, compose_config(["net=mlp"]).net
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto", conv).type == "cuda"
    assert resolve_device("auto", mlp).type == "cpu"
    assert resolve_device("cpu", conv).type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", conv).type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")
def test_an_image_run_trains_on_the_gpu():
    """Where a GPU is (the device machines): the shared body, acting values and update there."""
    cfg = compose_config([*LIT, "device=cuda"])
    from torchrl_cli.envs.factory import build_env
    from torchrl_cli.run.build import build_agent
    from torchrl_cli.tracking.logger import Logger

    env = build_env(cfg.env, cfg.env.n_envs)
    logger = Logger(None, progress=False, histograms=False, mode="full", table_every_s=0.0)
    agent = build_agent(cfg, env, torch.device("cuda"), logger)
    rollout = agent.collector.collect(agent.value_fn())
    assert rollout.obs.device.type == "cuda" and rollout.obs.dtype == torch.uint8
    diagnostics = agent.learn(rollout)
    assert all(np.isfinite(v).all() for v in diagnostics.values())
    env.close()

