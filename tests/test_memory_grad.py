"""The recurrent update's unrolls (an LSTM's stretches between episode starts through torch's
kernel, a GRU's hand-written backward through time, ``nn.memory.GRULayer``): the same outputs
as stepping the cells, the same gradients as autograd through them."""

import pytest
import torch

from torchrl_cli.nn.memory import Memory


def autograd_unroll(memory: Memory, x, state, first):
    """The reference: ``Memory.cells`` step by step under autograd, resets by ``torch.where``."""
    parts, outs = memory.split(state), []
    for t in range(x.shape[1]):
        parts = [torch.where(first[:, t].unsqueeze(1), 0.0, p) for p in parts]
        out, parts = memory.cells(x[:, t], parts)
        outs.append(out)
    return torch.stack(outs, 1), memory.join(parts)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_the_update_unroll_matches_autograd_through_the_cells(kind, layers):
    """Outputs and gradients of the input, the starting state and every weight to float64
    rounding, with episode starts inside the sequences (no gradient crosses them) and steps
    where no row starts over. The update reads the outputs only: no last state is computed.
    Bit for bit in float32: the next test."""
    torch.manual_seed(0)
    memory = Memory(kind, 5, 7, layers, "policy").double()
    x = torch.randn(4, 9, 5, dtype=torch.double, requires_grad=True)
    state = torch.randn(4, memory.parts, layers, 7, dtype=torch.double, requires_grad=True)
    first = torch.rand(4, 9) < 0.25
    first[0, 0] = first[1, 4] = True
    first[:, 6:8] = False  # two steps in a row where no row starts over
    out, before, end = memory.unroll(x, state, first)
    assert before is None and end is None
    want_out, _ = autograd_unroll(memory, x, state, first)
    torch.testing.assert_close(out, want_out, rtol=1e-12, atol=1e-14)
    w_out = torch.randn_like(out)
    inputs = [x, state, *memory.parameters()]
    got = torch.autograd.grad((out * w_out).sum(), inputs)
    want = torch.autograd.grad((want_out * w_out).sum(), inputs)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    assert torch.equal(got[1][0], torch.zeros_like(got[1][0]))  # row 0 starts over at step 0


@pytest.mark.parametrize("rows", [8, 16])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_the_update_unroll_is_acting_bit_for_bit_in_float32(kind, layers, rows):
    """Acting steps one vector step at a time without gradients; the update unrolls whole
    sequences (of fewer rows: a minibatch's envs) with gradients. In float32, as training runs,
    their outputs agree bit for bit, so PPO's first ratio is 1 exactly. (Under 4 rows torch's
    matrix products may round differently than over more rows, a GRU's as an LSTM's.)"""
    torch.manual_seed(1)
    memory = Memory(kind, 6, 16, layers, "policy")
    x, first = torch.randn(rows, 12, 6), torch.rand(rows, 12) < 0.2
    first[:, 5:9] = False  # a stretch where no row starts over
    state = torch.randn(rows, memory.parts, layers, 16)
    with torch.no_grad():
        acted, _ = autograd_unroll(memory, x, state, first)
    half = slice(0, rows // 2)
    out, _, end = memory.unroll(x[half], state[half], first[half])
    assert out.requires_grad
    assert torch.equal(out.detach(), acted[half])


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_without_gradients_the_update_path_is_not_taken(kind):
    """Collection (inference, ``keep``) steps the cells as acting does; both paths agree."""
    memory = Memory(kind, 3, 4, 1, "value")
    x, first = torch.randn(2, 5, 3), torch.zeros(2, 5, dtype=torch.bool)
    first[1, 2] = True
    state = memory.initial_state(2)
    with torch.no_grad():
        slow = memory.unroll(x, state, first, keep=True)
        plain = memory.unroll(x, state, first)
    fast = memory.unroll(x, state, first)
    assert torch.equal(slow[0], fast[0]) and torch.equal(slow[0], plain[0])
    assert torch.equal(slow[2], plain[2]) and fast[2] is None
    assert slow[1].shape == (2, 5, *state.shape[1:])


def test_agent_act_carries_the_state_of_a_memory():
    """PGAgent.act with a memory: the greedy actions of RecurrentGreedy, whose state it carries
    from call to call; end_episodes and reset_memory start rows over."""
    import numpy as np
    from conftest import make_agent

    from torchrl_cli.rollout.actor import RecurrentGreedy

    agent, env = make_agent(["memory=gru", "env=CartPoleNoVel-v1", "env.n_envs=2"])
    try:
        reference = RecurrentGreedy(
            agent.policy_model, lambda raw: agent.normalizer.normalize(torch.as_tensor(raw)))
        obs = env.reset(seed=0)
        for t in range(6):
            got = agent.act(obs)
            with torch.no_grad():
                want = agent.collector.to_env_action(reference(obs))
            assert np.array_equal(got, want)
            step = env.step(got)
            done = np.array([t == 2, False])
            agent.end_episodes(done)
            reference.end_episodes(done)
            obs = step.obs
        state = agent._recurrent_greedy.state
        agent.reset_memory()
        agent.act(obs)
        assert not torch.equal(agent._recurrent_greedy.state, state)
        assert agent.act(obs[:1]).shape == (1,)  # fewer rows: every row starts over
    finally:
        env.close()
