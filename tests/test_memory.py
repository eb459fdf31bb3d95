"""memory=lstm|gru: recurrent policies and values, from the cell's arithmetic to the CLI."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import (
    ENVMODS,
    TINY,
    assert_no_traceback,
    assert_one_line_error,
    compose_config,
    make_agent,
    torchrl,
)

from torchrl_cli.errors import ConfigError
from torchrl_cli.models.batch import Batch
from torchrl_cli.nn.memory import Memory
from torchrl_cli.nn.shared import one_forward, shared_parts
from torchrl_cli.rollout.minibatches import Sequences
from torchrl_cli.run.policy import load_policy
from torchrl_cli.run.train import train


@pytest.fixture(autouse=True)
def one_thread():
    """As the CLI runs (torch_threads=1): small nets on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SMALL = ["env.n_envs=4", "agent.n_steps=16", "agent.num_mini_batches=2", "agent.num_epochs=2"]


def constant_lstm() -> Memory:
    """An LSTM whose weights are zero: its gates are sigmoid(bias), its input tanh(bias), so
    c_k = i g (1 + f + ... + f^(k-1)) after k steps of an episode, whatever the inputs."""
    memory = Memory("lstm", 3, 1, 1, "policy")
    with torch.no_grad():
        for param in memory.rnn.parameters():
            param.zero_()
        # torch's gate order: input, forget, cell (g), output; biases ih and hh add
        memory.rnn.bias_ih_l0.copy_(torch.tensor([0.0, np.log(3.0), 1.0, 0.0]))
    return memory


def test_the_state_starts_over_at_episode_starts_inside_a_sequence():
    """By hand: i = o = 1/2, f = 3/4, g = tanh(1); h_k = o tanh(c_k). Row 0 starts an episode
    at step 2, so its steps count 1, 2, 1, 2; row 1 never starts over and carries a state."""
    memory = constant_lstm()
    i, f, o, g = 0.5, 0.75, 0.5, np.tanh(1.0)

    def h(k: int, c0: float = 0.0) -> float:
        c = c0
        for _ in range(k):
            c = f * c + i * g
        return o * np.tanh(c)

    x = torch.randn(2, 4, 3)
    first = torch.tensor([[True, False, True, False], [False, False, False, False]])
    state = torch.zeros(2, 2, 1, 1)
    state[1, 1] = 2.0  # row 1's cell at the rollout start (carried from a rollout before)
    out, before, end = memory.unroll(x, state, first, keep=True)
    want = [[h(1), h(2), h(1), h(2)], [h(k, 2.0) for k in (1, 2, 3, 4)]]
    torch.testing.assert_close(out[..., 0], torch.tensor(want, dtype=torch.float32))
    assert torch.equal(before[:, 0], state)  # the states before each step, as given
    torch.testing.assert_close(end[0, 0, 0, 0], torch.tensor(h(2), dtype=torch.float32))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stepping_equals_torchs_layer_over_the_sequence(kind):
    """``Memory.step`` (the cell functions, layer by layer) is torch's own LSTM/GRU on the
    same weights when no row starts over."""
    memory = Memory(kind, 5, 8, 2, "policy")
    x = torch.randn(3, 6, 5)
    out, _, end = memory.unroll(x, memory.initial_state(3), torch.zeros(3, 6, dtype=torch.bool))
    want, _ = memory.rnn(x.transpose(0, 1))
    torch.testing.assert_close(out, want.transpose(0, 1))


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_first_recurrent_minibatch_has_ratio_one(kind, env_id):
    """The update steps each env's sequence from its stored state as acting did: before any
    gradient step the log-probs (every row, and the first minibatch's) and the values equal
    the rollout's exactly, so PPO's first ratio is 1 and its first approx KL is 0."""
    agent, env = make_agent([f"memory={kind}", f"env={env_id}", *SMALL])
    try:
        rollout = agent.collector.collect(agent.value_fn())
        batch = agent.batch_of(rollout)
        assert batch.seq_len == 16 and len(batch) == 64
        with torch.no_grad():
            log_probs = agent.policy_model.batch_dist(batch).log_prob(batch.actions)
            values = agent.value_model.over(batch)
            minibatch = batch.index(next(Sequences(2, 16).minibatches(64, torch.device("cpu"))))
            first_mb = agent.policy_model.batch_dist(minibatch).log_prob(minibatch.actions)
        # bit for bit with Categorical log-probs; a Gaussian's over other batch shapes may
        # round its last bit differently (as feed-forward runs do)
        tol = 0.0 if env_id == "CartPole-v1" else 1e-6
        torch.testing.assert_close(log_probs, batch.log_probs, rtol=0, atol=tol)
        torch.testing.assert_close(first_mb, minibatch.log_probs, rtol=0, atol=tol)
        torch.testing.assert_close(values, batch.values, rtol=0, atol=tol)
        diagnostics = agent.update(batch)
        assert diagnostics["approx_kl"][0] <= tol and diagnostics["clip_fraction"][0] == 0.0
    finally:
        env.close()


def test_the_state_is_carried_from_one_rollout_to_the_next():
    """The next rollout starts from the state the last one ended in (policy and value), not
    from zeros; that state is each env's sequence stepped from the rollout's first state."""
    agent, env = make_agent(["memory=lstm", *SMALL])
    try:
        collector = agent.collector
        first = collector.collect(agent.value_fn())
        start = {k: v[0].clone() for k, v in first.states.items()}
        obs, starts = first.obs.clone(), first.first.clone()
        assert torch.equal(start["policy"], torch.zeros_like(start["policy"]))
        assert starts[0].all()
        carried = {k: v.clone() for k, v in collector.state.items()}
        for key, model in (("policy", agent.policy_model), ("value", agent.value_model)):
            with torch.no_grad():
                end = model.unroll(obs.transpose(0, 1), start[key], starts.T)[2]
            torch.testing.assert_close(carried[key], end, rtol=0, atol=1e-6)
            assert carried[key].abs().sum() > 0
        second = collector.collect(agent.value_fn())
        for key in ("policy", "value"):
            assert torch.equal(second.states[key][0], carried[key])
    finally:
        env.close()


def test_a_cut_episode_bootstraps_from_the_state_after_its_last_step():
    """V(final obs) of a time-limit cut continues the episode: one value step from the state
    after the cut step, with no reset."""
    agent, env = make_agent(["memory=gru", "env.train_max_episode_steps=5", *SMALL])
    try:
        rollout = agent.collector.collect(agent.value_fn())
        assert rollout.truncations
        cut = rollout.truncations[0]
        i = int(cut.envs[0])
        state_after = rollout.states["value"][cut.t + 1, i : i + 1]
        with torch.no_grad():
            want = agent.value_model.step(
                cut.final_obs[:1], state_after, torch.zeros(1, dtype=torch.bool)
            )[0]
        torch.testing.assert_close(rollout.final_values[cut.t, i], want[0], rtol=0, atol=1e-6)
        assert rollout.first[cut.t + 1, i]  # and the next step starts over
    finally:
        env.close()


def test_a_minibatch_of_sequences_is_the_hand_computed_loss_of_its_envs():
    """A minibatch holds whole env sequences in time order; the value loss over it is the
    plain mean of the squared errors of those envs' steps, unrolled on their own."""
    agent, env = make_agent(["memory=lstm", *SMALL])
    try:
        rollout = agent.collector.collect(agent.value_fn())
        batch = agent.batch_of(rollout)
        idx = next(Sequences(2, 16).minibatches(64, torch.device("cpu")))
        envs = idx.view(2, 16)[:, 0] // 16
        assert torch.equal(idx.view(2, 16), envs[:, None] * 16 + torch.arange(16))
        minibatch = batch.index(idx)
        model = agent.value_model
        with torch.no_grad():
            loss = model.register_losses(minibatch)["value_loss"]
            latent = model.unroll(
                rollout.obs[:, envs].transpose(0, 1),
                rollout.states["value"][0, envs],
                rollout.first[:, envs].T,
            )[0]
            values = model.head(latent)  # [2, 16]
        returns = agent.vtarget(agent.advantage(rollout), rollout.values)[:, envs].T
        torch.testing.assert_close(loss, 0.5 * (values - returns).square().mean())
    finally:
        env.close()


def test_a_shared_memory_is_one_trunk_trained_by_the_policys_optimizer():
    """memory.shared=true: the value reads the policy's net and memory (the same modules), its
    own output layer after them; the trunk's parameters are in the policy's optimizer only,
    the state is the policy's alone, and the first minibatch still has ratio 1 with the
    rollout's values."""
    agent, env = make_agent(["memory=lstm", "memory.shared=true", *SMALL])
    try:
        policy, value = agent.policy_model, agent.value_model
        assert value.memory is policy.memory and value.net is policy.net
        trunk = {id(p) for p in [*policy.net.parameters(), *policy.memory.parameters()]}
        in_value = [id(p) for g in value.optimizer.param_groups for p in g["params"]]
        in_policy = {id(p) for g in policy.optimizer.param_groups for p in g["params"]}
        assert set(in_value) == {id(p) for p in value.out.parameters()}
        assert trunk <= in_policy
        rollout = agent.collector.collect(agent.value_fn())
        assert set(rollout.states) == {"policy"} and set(agent.collector.state) == {"policy"}
        batch = agent.batch_of(rollout)
        with torch.no_grad():
            log_probs = policy.batch_dist(batch).log_prob(batch.actions)
            values = value.over(batch)
        torch.testing.assert_close(log_probs, batch.log_probs, rtol=0, atol=0)
        torch.testing.assert_close(values, batch.values, rtol=0, atol=1e-6)
        before = [p.detach().clone() for p in policy.memory.parameters()]
        diagnostics = agent.update(batch)
        assert diagnostics["approx_kl"][0] == 0.0 and diagnostics["clip_fraction"][0] == 0.0
        after = policy.memory.parameters()
        assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    finally:
        env.close()


def test_a_shared_memory_unrolls_once_per_minibatch_with_the_gradients_of_two():
    """One minibatch step unrolls the shared memory once for both losses, and the gradients
    it leaves equal those of the policy's and the value's unrolls done separately."""
    agent, env = make_agent(["memory=gru", "memory.shared=true", *SMALL])
    try:
        rollout = agent.collector.collect(agent.value_fn())
        batch = agent.batch_of(rollout)
        batch.advantages = torch.randn_like(batch.advantages)  # losses with gradients
        models = {"policy": agent.policy_model, "value": agent.value_model}
        memory = agent.policy_model.memory
        calls = []
        unroll = memory.unroll
        memory.unroll = lambda *a, **k: calls.append(1) or unroll(*a, **k)
        params = list(agent.policy_model.parameters())

        def grads(stepper_models) -> list[torch.Tensor]:
            terms = {}
            for model in stepper_models.values():
                terms.update(model.register_losses(batch))
            loss = sum(v for k, v in terms.items() if k.startswith("loss_"))
            return torch.autograd.grad(loss, params, allow_unused=True)

        with one_forward(shared_parts(models.values())):
            once = grads(models)
        assert len(calls) == 1
        twice = grads(models)  # outside the scope: each model unrolls on its own
        assert len(calls) == 3
        for a, b in zip(once, twice, strict=True):
            if a is None:
                assert b is None
            else:
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
        assert sum(float(g.abs().sum()) for g in once if g is not None) > 0
    finally:
        env.close()


def test_sequences_plan_keeps_whole_sequences_and_shuffles_them():
    plan = Sequences(3, 4)
    batches = list(plan.minibatches(28, torch.device("cpu")))  # 7 sequences: 1 sits out
    assert len(batches) == 3 and all(len(b) == 8 for b in batches)
    rows = torch.cat(batches).view(-1, 4)
    assert torch.equal(rows - rows[:, :1], torch.arange(4).expand(6, 4))
    assert len(set((rows[:, 0] // 4).tolist())) == 6
    assert list(Sequences(1, 4).minibatches(28, torch.device("cpu"))) == [None]


def test_batch_index_picks_rows_of_every_state():
    batch = Batch(*(torch.arange(6.0) for _ in range(6)), first=torch.zeros(6, dtype=torch.bool),
                  states={"policy": torch.arange(6.0).view(6, 1)}, seq_len=3)
    picked = batch.index(torch.tensor([3, 4, 5]))
    assert torch.equal(picked.states["policy"][:, 0], torch.tensor([3.0, 4.0, 5.0]))
    assert picked.seq_len == 3 and len(picked) == 3


def test_auto_backend_chooses_torch_and_says_why_numpy_refuses():
    agent, env = make_agent(["memory=lstm", *SMALL])
    env.close()
    assert agent.backend.acting == "torch" and set(agent.backend.updates.values()) == {"torch"}
    line = agent.backend.describe()
    assert line == ("backend auto: acting torch, update torch (memory=lstm/gru has no numpy step: "
                    "its recurrent cell runs in torch)")  # one reason for both, said once
    with pytest.raises(ConfigError, match="memory=lstm/gru has no numpy step"):
        make_agent(["memory=gru", "agent.backend=numpy", *SMALL])
    plain, env = make_agent(SMALL)  # memory=none: the numpy backend as before
    env.close()
    assert plain.backend.acting == "numpy" and plain.collector.state is None


@pytest.mark.parametrize("agent_name", ["vanilla_pg", "a2c", "surrogate_pg", "ppo_clip",
                                        "ppo_adaptive"])
def test_every_agent_trains_with_a_memory(agent_name):
    """Each agent's losses run over whole sequences (discrete and Box actions alternate)."""
    env_id = "CartPole-v1" if agent_name in ("vanilla_pg", "surrogate_pg", "ppo_clip") \
        else "Pendulum-v1"
    kind = "gru" if agent_name in ("a2c", "ppo_adaptive") else "lstm"
    cfg = compose_config([f"agent={agent_name}", f"env={env_id}", f"memory={kind}", *TINY,
                          "save_model=false", "checkpoint_freq=0"])
    metrics = train(cfg, None)
    assert np.isfinite(metrics["mean_return"])


def test_gsde_with_a_memory_has_ratio_one():
    agent, env = make_agent(["memory=lstm", "env=Pendulum-v1", "agent.policy.sde.enabled=true",
                             *SMALL])
    try:
        rollout = agent.collector.collect(agent.value_fn())
        batch = agent.batch_of(rollout)
        with torch.no_grad():
            log_probs = agent.policy_model.batch_dist(batch).log_prob(batch.actions)
        torch.testing.assert_close(log_probs, batch.log_probs, rtol=0, atol=1e-5)
    finally:
        env.close()


def test_evaluation_resets_the_state_per_episode():
    """The greedy policy of a run with a memory starts each env's episode from zeros: the
    same seeds evaluated twice (the second after the state was used) give the same returns,
    and ``end_episodes`` zeroes the rows whose episode ended."""
    agent, env = make_agent(["memory=gru", *SMALL])
    env.close()
    from torchrl_cli.envs.factory import build_env

    eval_env = build_env(compose_config(["env.n_envs=3"]).env, 3, evaluation=True)
    try:
        a = agent.evaluate(eval_env, 3, seed=5)
        b = agent.evaluate(eval_env, 3, seed=5)
        assert a.returns == b.returns
        greedy = agent.greedy_policy()
        greedy(np.zeros((3, 4), dtype=np.float32))
        greedy.end_episodes(np.array([True, False, False]))
        inner = agent.collector.actor.greedy  # a fresh one per evaluation
        assert callable(inner)
    finally:
        eval_env.close()


# --- the command line ---

def test_recurrent_runs_evaluate_and_step_in_a_fresh_process(tmp_path, torchrl_bin, cli_env):
    """A short LSTM run on CartPoleNoVel-v1 (no flag: a shipped id), then ``torchrl eval`` in
    a new process, and load_policy with its state: reset per episode, or stepped explicitly."""
    run = tmp_path / "run"
    proc = torchrl(torchrl_bin, ["train", "env=CartPoleNoVel-v1", "memory=lstm", *TINY,
                                 f"hydra.run.dir={run}"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "memory=lstm/gru has no numpy step" in proc.stdout  # the banner's reason
    evaluated = torchrl(torchrl_bin, ["eval", str(run), "episodes=2", "video=true"], tmp_path,
                        cli_env)  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    assert "mean" in evaluated.stdout
    videos = sorted((run / "videos").rglob("*.mp4"))  # the recurrent policy records too
    assert len(videos) == 2 and all(v.stat().st_size > 0 for v in videos)
    policy = load_policy(run)
    assert policy.recurrent
    env = policy.make_env()
    obs, _ = env.reset(seed=0)
    assert obs[1] == 0.0 and obs[3] == 0.0  # the velocities are hidden
    state = policy.initial_state(1)
    carried = []
    policy.reset()
    for _ in range(5):
        action, state = policy.step(obs[None], state)
        carried.append(int(policy(obs[None])[0]))
        assert int(action[0]) == carried[-1]  # the explicit state is the carried one
        obs, *_ = env.step(int(action[0]))
    env.close()
    out = tmp_path / "policy.pt2"
    exported = torchrl(torchrl_bin, ["export", str(run), f"out={out}"], tmp_path, cli_env)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert "state = torch.zeros(batch, 2, 1, 128)" in exported.stdout  # the tuned LSTM 128
    step = torch.export.load(str(out)).module()
    # over whole episodes, the exported step with its state fed back acts as the policy does
    env = policy.make_env()
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        policy.reset()
        state, done, steps = torch.zeros(1, 2, 1, 128), False, 0
        while not done:
            action, state = step(torch.as_tensor(obs[None], dtype=torch.float32), state)
            assert int(action[0]) == int(policy(obs[None])[0])
            obs, _, terminated, truncated, _ = env.step(int(action[0]))
            done, steps = terminated or truncated, steps + 1
        assert steps > 1
    env.close()
    onnx_out = tmp_path / "policy.onnx"
    onnx = torchrl(torchrl_bin, ["export", str(run), "format=onnx", f"out={onnx_out}"], tmp_path,
                   cli_env)  # fmt: skip
    assert onnx.returncode == 0, onnx.stdout + onnx.stderr
    assert "state float32 [batch, 2, 1, 128]" in onnx.stdout
    assert "next_state float32 [batch, 2, 1, 128]" in onnx.stdout
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_out))
    env = policy.make_env()
    obs, _ = env.reset(seed=7)
    policy.reset()
    state, done = np.zeros((1, 2, 1, 128), np.float32), False
    while not done:  # a whole episode: onnxruntime's step, its state fed back, acts as the policy
        action, state = session.run(None, {"obs": obs[None].astype(np.float32), "state": state})
        assert int(action[0]) == int(policy(obs[None])[0])
        obs, _, terminated, truncated, _ = env.step(int(action[0]))
        done = terminated or truncated
    env.close()


def test_gru_runs_on_a_continuous_env_and_resumes_bitwise(tmp_path, torchrl_bin, cli_env):
    """A GRU run on Pendulum, and the same run resumed from its middle checkpoint (what a
    kill -9 after it leaves): the same final weights, bit for bit."""
    args = ["train", "env=PendulumNoVel-v1", "memory=gru", "env.n_envs=2", "agent.n_steps=32",
            "agent.num_mini_batches=2", "agent.num_epochs=2", "max_steps=512",
            "checkpoint_freq=256", "eval_freq=0", "eval_episodes=2", "logger.progress=false"]
    whole = tmp_path / "whole"
    proc = torchrl(torchrl_bin, [*args, f"hydra.run.dir={whole}"], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    for path in (cut / "checkpoints").glob("step_*.pt"):
        if int(path.stem.split("_")[1]) > 256:
            path.unlink()
    for name in ("model.pt", "metrics.json"):
        (cut / name).unlink()
    resumed = torchrl(torchrl_bin, ["train", f"resume={cut}"], tmp_path, cli_env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    want, got = (torch.load(d / "model.pt", weights_only=True) for d in (whole, cut))
    for part in ("policy", "value"):
        for key, tensor in want[part].items():
            assert torch.equal(got[part][key], tensor), f"{part}.{key}"
    assert json.loads((cut / "metrics.json").read_text())["returns"] == \
        json.loads((whole / "metrics.json").read_text())["returns"]


@pytest.mark.parametrize("override, needles", [
    ("memory.hidden_size=0", ["memory.hidden_size=0", "at least 1"]),
    ("memory.num_layers=0", ["memory.num_layers=0", "at least 1"]),
    ("memory.kind=rnn", ["memory.kind=rnn", "lstm"]),
    ("agent.num_mini_batches=4", ["num_mini_batches=4", "env.n_envs=2", "whole env sequences"]),
    ("agent.backend=numpy", ["agent.backend=numpy", "memory=lstm/gru has no numpy step"]),
])
def test_bad_memory_input_is_one_line_and_no_run_folder(override, needles, tmp_path, torchrl_bin,
                                                        cli_env):
    proc = torchrl(torchrl_bin, ["train", "memory=lstm", *TINY, override], tmp_path, cli_env)
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "runs").exists()


def test_a_shared_memory_without_a_memory_or_beside_a_value_net_is_one_line(tmp_path,
                                                                            torchrl_bin, cli_env):
    for overrides, needles in (
        (["memory.shared=true"], ["memory.shared=true", "memory=none", "memory=lstm"]),
        (["memory=gru", "memory.shared=true", "agent.value.net.hidden=[32]"],
         ["agent.value.net", "memory.shared=true", "drop one"]),
        (["memory=lstm", "memory.shared=true", "agent=vanilla_pg", "agent.value=null"],
         ["memory.shared=true", "agent.value=null"]),
    ):
        proc = torchrl(torchrl_bin, ["train", *TINY, *overrides], tmp_path, cli_env)
        assert_one_line_error(proc, *needles)
    assert not (tmp_path / "runs").exists()


def test_resuming_with_another_memory_is_one_line(tmp_path, torchrl_bin, cli_env):
    run = tmp_path / "run"
    proc = torchrl(torchrl_bin, ["train", "memory=gru", *TINY, f"hydra.run.dir={run}"],
                   tmp_path, cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for change in ("memory=lstm", "memory.hidden_size=32", "memory.shared=true"):
        resumed = torchrl(torchrl_bin, ["train", f"resume={run}", change], tmp_path, cli_env)
        assert_no_traceback(resumed)
        assert_one_line_error(resumed, "memory")


@pytest.mark.parametrize("overrides, banner", [
    # a CNN (the Nature CNN on 40x40 frames, its body shared) under an LSTM
    (["env=torchrl_test_envs:LitSide", "env.pixels.resize=null", "env.pixels.frame_stack=1",
      "memory=lstm"], "+ lstm"),
    # a Dict observation (an image entry and a vector) under a GRU
    (["env=torchrl_test_envs:XorDictEnv", "memory=gru"], "+ gru"),
    # action masks under an LSTM
    (["env=torchrl_test_envs:MaskedChoice", "memory=lstm"], "+ lstm"),
    # one LSTM for policy and value, on a continuous env
    (["env=PendulumNoVel-v1", "memory=lstm", "memory.shared=true"],
     "+ lstm 128, one for policy and value"),
], ids=["cnn-lstm", "dict-gru", "masks-lstm", "shared-lstm"])  # fmt: skip
def test_a_memory_composes_with_cnns_dicts_and_masks(overrides, banner, tmp_path, torchrl_bin,
                                                     cli_env):  # fmt: skip
    """Each trains, names its memory in the banner, and evaluates in a fresh process."""
    env = {**cli_env, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ENVMODS), cli_env.get("PYTHONPATH")) if p)}  # fmt: skip
    run = tmp_path / "run"
    proc = torchrl(torchrl_bin, ["train", *overrides, "max_steps=256", "agent.n_steps=32",
                                 "eval_episodes=2", "torch_threads=1",
                                 f"hydra.run.dir={run}"], tmp_path, env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert banner in proc.stdout.splitlines()[0]
    evaluated = torchrl(torchrl_bin, ["eval", str(run), "episodes=2"], tmp_path, env)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    assert_no_traceback(evaluated)
