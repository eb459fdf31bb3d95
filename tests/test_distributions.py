"""Action distributions: log-probs, entropies and modes against independent computations."""

import math

import torch
from torch.distributions import Bernoulli, Categorical
from torch.testing import assert_close

from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind
from torchrl_cli.models.distributions import greedy_action, make_dist

DISCRETE = SpaceInfo(SpaceKind.DISCRETE, (), n=3)


def box(*shape):
    return SpaceInfo(SpaceKind.CONTINUOUS, shape)


def test_discrete_log_prob_matches_log_softmax_by_hand():
    """Discrete: log pi(a) = logit_a - log sum_j exp(logit_j), with explicit numbers."""
    logits = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    dist = make_dist(logits, DISCRETE, None)
    log_probs = dist.log_prob(torch.tensor([1, 2]))
    lse = math.log(math.e + math.e**2 + math.e**3)
    assert_close(log_probs, torch.tensor([-math.log(3.0), 3.0 - lse]))


def test_discrete_log_prob_and_entropy_match_torch_categorical():
    """Discrete: log-probs and entropy equal torch's Categorical over softmax probabilities."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=gen) * 3
    info = SpaceInfo(SpaceKind.DISCRETE, (), n=4)
    dist = make_dist(logits, info, None)
    ref = torch.distributions.Categorical(probs=torch.softmax(logits, -1))
    actions = torch.tensor([0, 3, 1, 2, 3])
    assert_close(dist.log_prob(actions), ref.log_prob(actions))
    assert_close(dist.entropy(), ref.entropy())
    probs = torch.softmax(logits, -1)
    assert_close(dist.entropy(), -(probs * probs.log()).sum(-1))


def test_discrete_uniform_entropy_is_log_n():
    """Equal logits: the entropy is log(n), the maximum."""
    dist = make_dist(torch.full((2, 3), 0.7), DISCRETE, None)
    assert_close(dist.entropy(), torch.full((2,), math.log(3.0)))


def test_discrete_mode_is_argmax():
    """Discrete: the mode is the action with the largest logit."""
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 2.9, 0.0], [-5.0, -4.0, -3.5]])
    assert torch.equal(greedy_action(logits, DISCRETE), torch.tensor([1, 0, 2]))


def _gaussian_log_prob(actions, mean, log_std):
    """Sum over dims of log N(a; mu, sigma), written out."""
    std = log_std.exp()
    per_dim = -0.5 * ((actions - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    return per_dim.sum(-1)


def test_box_log_prob_by_hand():
    """Box: log-prob at the mean is -sum(log sigma) - d/2 log(2 pi); 1 sigma away, -1/2 per dim."""
    log_std = torch.tensor([0.0, math.log(2.0)])
    mean = torch.tensor([[1.0, -1.0]])
    dist = make_dist(mean, box(2), log_std)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    at_mean = -math.log(2.0) - 2 * half_log_2pi
    assert_close(dist.log_prob(mean), torch.tensor([at_mean]))
    one_sigma = torch.tensor([[2.0, 1.0]])  # +1 sigma in dim 0 (sigma 1), +1 sigma in dim 1 (2)
    assert_close(dist.log_prob(one_sigma), torch.tensor([at_mean - 1.0]))


def test_box_log_prob_and_entropy_match_torch_normal():
    """Box(3): log-prob and entropy are sums of torch Normal's per-dimension values."""
    gen = torch.Generator().manual_seed(1)
    mean = torch.randn(4, 3, generator=gen)
    log_std = torch.nn.Parameter(torch.tensor([-0.5, 0.0, 0.7]))
    actions = torch.randn(4, 3, generator=gen)
    dist = make_dist(mean, box(3), log_std)
    ref = torch.distributions.Normal(mean, log_std.detach().exp())
    assert dist.log_prob(actions).shape == (4,)
    assert_close(dist.log_prob(actions), ref.log_prob(actions).sum(-1))
    assert_close(dist.log_prob(actions), _gaussian_log_prob(actions, mean, log_std.detach()))
    entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std.detach()).sum()
    assert_close(dist.entropy(), entropy.expand(4))
    assert_close(dist.entropy(), ref.entropy().sum(-1))


def test_box_entropy_is_state_independent_and_grows_with_log_std():
    """Box: the entropy depends only on log-std (same for every state), d H / d log_std_i = 1."""
    log_std = torch.nn.Parameter(torch.tensor([0.2, -0.3]))
    mean = torch.tensor([[0.0, 0.0], [10.0, -10.0]])
    entropy = make_dist(mean, box(2), log_std).entropy()
    assert_close(entropy[0], entropy[1])
    entropy.sum().backward()
    assert_close(log_std.grad, torch.tensor([2.0, 2.0]))  # two states, each contributes 1


def test_box_multi_dim_shape_sums_over_all_action_dims():
    """Box(2, 2): flat outputs reshape to the action shape; log-prob sums all 4 dims."""
    gen = torch.Generator().manual_seed(2)
    params = torch.randn(3, 4, generator=gen)
    log_std = torch.tensor([[0.1, -0.2], [0.3, 0.0]])
    actions = torch.randn(3, 2, 2, generator=gen)
    dist = make_dist(params, box(2, 2), log_std)
    mean = params.reshape(3, 2, 2)
    ref = torch.distributions.Normal(mean, log_std.exp())
    assert dist.log_prob(actions).shape == (3,)
    assert_close(dist.log_prob(actions), ref.log_prob(actions).sum((-2, -1)))
    assert_close(dist.entropy(), ref.entropy().sum((-2, -1)))
    assert_close(greedy_action(params, box(2, 2)), mean)


def test_box_mode_is_mean():
    """Box: the mode is the mean (the network output); the std does not enter."""
    mean = torch.tensor([[0.3, -1.2, 4.0]])
    assert torch.equal(greedy_action(mean, box(3)), mean)


def test_box_log_prob_gradient_reaches_mean_and_log_std():
    """Box: d log pi / d mu = (a - mu) / sigma^2 and d log pi / d log sigma = z^2 - 1."""
    mean = torch.tensor([[0.5, -0.5]], requires_grad=True)
    log_std = torch.nn.Parameter(torch.tensor([0.0, math.log(0.5)]))
    actions = torch.tensor([[1.5, 0.5]])  # z = (1, 2)
    make_dist(mean, box(2), log_std).log_prob(actions).sum().backward()
    assert_close(mean.grad, torch.tensor([[1.0, 4.0]]))  # (a - mu) / sigma^2 = 1/1, 1/0.25
    assert_close(log_std.grad, torch.tensor([0.0, 3.0]))  # z^2 - 1 = 0, 3


def test_multi_discrete_distribution_matches_torch():
    """MultiDiscrete([3, 2]): log-prob and entropy are sums of per-dimension categoricals."""
    info = SpaceInfo(SpaceKind.MULTI_DISCRETE, (2,), nvec=[3, 2])
    params = torch.randn(4, 5)
    dist = make_dist(params, info, None)
    actions = torch.tensor([[0, 1], [2, 0], [1, 1], [2, 1]])
    first, second = Categorical(logits=params[:, :3]), Categorical(logits=params[:, 3:])
    torch.testing.assert_close(dist.log_prob(actions),
                               first.log_prob(actions[:, 0]) + second.log_prob(actions[:, 1]))
    torch.testing.assert_close(dist.entropy(), first.entropy() + second.entropy())
    torch.testing.assert_close(greedy_action(params, info), torch.stack([params[:, :3].argmax(-1),
                                                        params[:, 3:].argmax(-1)], -1))
    assert dist.sample().shape == (4, 2)


def test_multi_binary_distribution_matches_torch():
    """MultiBinary(3): independent Bernoullis over logits; the mode is logits > 0."""
    info = SpaceInfo(SpaceKind.MULTI_BINARY, (3,), n=3)
    params = torch.randn(4, 3)
    dist = make_dist(params, info, None)
    actions = torch.tensor([[0, 1, 1], [1, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(dist.log_prob(actions),
                               Bernoulli(logits=params).log_prob(actions).sum(-1))
    torch.testing.assert_close(dist.entropy(), Bernoulli(logits=params).entropy().sum(-1))
    torch.testing.assert_close(greedy_action(params, info), (params > 0).float())


MASKED = SpaceInfo(SpaceKind.DISCRETE, (), n=4, mask="obs")


def test_masked_log_prob_and_entropy_by_hand():
    """Masked Discrete: the distribution is the softmax over the legal logits alone:
    log pi(a) = logit_a - log sum_{legal j} exp(logit_j), H = -sum_{legal} p log p."""
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    mask = torch.tensor([[True, False, True, False]])
    dist = make_dist(logits, MASKED, None, mask)
    lse = math.log(math.e + math.e**3)
    p0, p2 = math.e / (math.e + math.e**3), math.e**3 / (math.e + math.e**3)
    assert_close(dist.log_prob(torch.tensor([0])), torch.tensor([1.0 - lse]))
    assert_close(dist.log_prob(torch.tensor([2])), torch.tensor([3.0 - lse]))
    entropy = -(p0 * math.log(p0) + p2 * math.log(p2))
    assert_close(dist.entropy(), torch.tensor([entropy]))
    assert dist.log_prob(torch.tensor([3])).item() < -1e7  # an illegal action: probability 0


def test_masked_actions_are_never_sampled():
    """20,000 draws where the illegal actions hold nearly all the unmasked mass: none drawn,
    and the legal ones in their renormalized proportions (uniform here)."""
    torch.manual_seed(0)
    logits = torch.tensor([0.0, 8.0, 0.0, 8.0]).expand(20_000, 4)
    mask = torch.tensor([True, False, True, False]).expand(20_000, 4)
    actions = make_dist(logits, MASKED, None, mask).sample()
    counts = torch.bincount(actions, minlength=4)
    assert counts[1] == 0 and counts[3] == 0
    assert abs(counts[0].item() / 20_000 - 0.5) < 0.02


def test_masked_greedy_action_is_the_best_legal_one():
    logits = torch.tensor([[0.0, 5.0, 1.0, 2.0], [3.0, 0.0, -1.0, 9.0]])
    mask = torch.tensor([[True, False, True, False], [False, True, True, False]])
    assert greedy_action(logits, MASKED).tolist() == [1, 3]  # unmasked: the illegal ones
    assert greedy_action(logits, MASKED, mask).tolist() == [2, 1]


def test_masked_entropy_gradient_is_finite_and_leaves_illegal_logits_alone():
    """The entropy's 0 * log 0 terms of the illegal actions neither poison the gradient (NaN)
    nor move the illegal logits."""
    logits = torch.tensor([[0.5, 2.0, -1.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[True, False, True, True]])
    dist = make_dist(logits, MASKED, None, mask)
    (dist.entropy().sum() + dist.log_prob(torch.tensor([0])).sum()).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 1] == 0 and logits.grad[0, 0] != 0


def test_an_all_legal_mask_changes_nothing():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    actions = torch.tensor([0, 1, 2, 3, 0])
    plain = make_dist(logits, MASKED, None)
    masked = make_dist(logits, MASKED, None, torch.ones(5, 4, dtype=torch.bool))
    assert torch.equal(plain.log_prob(actions), masked.log_prob(actions))
    assert torch.equal(plain.entropy(), masked.entropy())
