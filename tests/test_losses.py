"""Policy and value losses on tiny fixed batches, against hand computations."""

import functools
import math

import pytest
import torch
from torch.testing import assert_close

from torchrl_cli.envs.spaces import SpaceInfo, SpaceKind
from torchrl_cli.models import (
    A2CModel,
    PPOAdaptiveModel,
    PPOClipModel,
    SurrogatePGModel,
    ValueModel,
    VanillaPGModel,
)
from torchrl_cli.models.batch import Batch
from torchrl_cli.models.ppo_adaptive import update_kl_penalty
from torchrl_cli.nn import nn_from_config

NET = {
    "body": [{"_target_": "torch.nn.Linear", "out_features": 8}, {"_target_": "torch.nn.Tanh"}],
    "head": [],
}
STATE = SpaceInfo(SpaceKind.CONTINUOUS, (4,))
DISCRETE = SpaceInfo(SpaceKind.DISCRETE, (), n=3)
BOX = SpaceInfo(SpaceKind.CONTINUOUS, (2,))

# Hand-picked probability ratios and advantages; eps = 0.2.
RATIOS = [0.5, 0.9, 1.1, 1.5, 1.5, 0.5]
ADVANTAGES = [1.0, -1.0, 2.0, -2.0, 1.0, -1.0]
# min(r A, clip(r, 0.8, 1.2) A) per sample:
#   0.5 * 1 = 0.5 (vs 0.8)      -0.9 (inside)    2.2 (inside)
#   -3.0 (vs -2.4)              1.2 (clipped: 1.5 -> 1.2)    -0.8 (clipped: 0.5 -> 0.8)
# mean = (0.5 - 0.9 + 2.2 - 3.0 + 1.2 - 0.8) / 6 = -0.8 / 6, so L^CLIP loss = 2 / 15
PPO_LOSS = 2.0 / 15.0
# L^CPI: mean(r A) = (0.5 - 0.9 + 2.2 - 3.0 + 1.5 - 0.5) / 6 = -0.2 / 6, so the loss = 1 / 30
SURROGATE_LOSS = 1.0 / 30.0
# samples where the min picks the clipped (constant) term: no gradient
CLIPPED = {4, 5}


def common_kwargs(action_info, **overrides):
    kwargs = {
        "action_info": action_info,
        "num_epochs": 1,
        "num_mini_batches": 1,
        "optimizer": functools.partial(torch.optim.Adam, lr=1e-3),
        "clip_grad_norm": math.inf,
        "lr_schedule": "constant",
        "loss_coef": 1.0,
    }
    return {**kwargs, **overrides}


def make_policy(cls=PPOClipModel, action_info=DISCRETE, seed=0, **overrides):
    torch.manual_seed(seed)
    net = nn_from_config(NET, STATE, action_info)
    kwargs = common_kwargs(action_info, entropy_coef=0.0, log_std_init=0.0)
    if cls is PPOClipModel:
        kwargs.update(ppo_clip_range=0.2, clip_schedule="constant")
    return cls(net, **{**kwargs, **overrides})


def make_value(clip_range, **overrides):
    torch.manual_seed(0)
    net = nn_from_config(NET, STATE, DISCRETE)
    return ValueModel(net, clip_range=clip_range, **common_kwargs(DISCRETE, **overrides))


def obs_and_actions(n=6, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def new_log_probs(model, obs, actions):
    """log pi(a|s) of the current policy, computed with torch's Categorical directly."""
    with torch.no_grad():
        return torch.distributions.Categorical(logits=model(obs)).log_prob(actions)


def batch_with_ratios(model, ratios, advantages):
    """A batch whose old log-probs make pi / pi_old equal ``ratios`` for the current policy."""
    obs, actions = obs_and_actions(len(ratios))
    old = new_log_probs(model, obs, actions) - torch.tensor(ratios).log()
    zeros = torch.zeros(len(ratios))
    return Batch(obs=obs, actions=actions, log_probs=old, values=zeros,
                 advantages=torch.tensor(advantages), returns=zeros)


def take(batch, i):
    """The one-sample batch of sample ``i``."""
    return batch.index(torch.tensor([i]))


def grad_norm(model, loss):
    model.optimizer.zero_grad(set_to_none=False)
    loss.backward()
    return sum(p.grad.abs().sum() for p in model.parameters() if p.grad is not None)


# ---------------------------------------------------------------- policy losses


def test_ppo_clip_loss_by_hand():
    """L^CLIP on hand-picked ratios and advantages equals 2/15 (see the table above)."""
    model = make_policy()
    out = model.register_losses(batch_with_ratios(model, RATIOS, ADVANTAGES))
    assert out["policy_loss"].item() == pytest.approx(PPO_LOSS, rel=1e-5)
    assert out["loss_policy"].item() == pytest.approx(PPO_LOSS, rel=1e-5)
    assert out["clip_fraction"].item() == pytest.approx(4 / 6)  # |r - 1| > 0.2: 0.5, 1.5 x2, 0.5
    assert out["clip_epsilon"].item() == pytest.approx(0.2)
    kl = sum((r - 1) - math.log(r) for r in RATIOS) / len(RATIOS)
    assert out["approx_kl"].item() == pytest.approx(kl, rel=1e-4)


def test_ppo_clip_loss_matches_torch_formula_on_random_batch():
    """L^CLIP on random log-probs equals the torch-op formula; loss_policy carries loss_coef."""
    model = make_policy(loss_coef=0.7, ppo_clip_range=0.1)
    obs, actions = obs_and_actions(16, seed=5)
    gen = torch.Generator().manual_seed(6)
    new = new_log_probs(model, obs, actions)
    old = new + 0.3 * torch.randn(16, generator=gen)
    adv = torch.randn(16, generator=gen)
    batch = Batch(obs, actions, old, torch.zeros(16), adv, torch.zeros(16))
    out = model.register_losses(batch)
    ratio = torch.exp(new - old)
    expected = -torch.min(ratio * adv, torch.clamp(ratio, 0.9, 1.1) * adv).mean()
    assert_close(out["policy_loss"], expected)
    assert_close(out["loss_policy"], 0.7 * expected)
    assert_close(out["clip_fraction"], ((ratio - 1).abs() > 0.1).float().mean())


def test_surrogate_loss_by_hand():
    """L^CPI on the same ratios and advantages is -mean(r A) = 1/30: no clipping at all."""
    model = make_policy(SurrogatePGModel)
    out = model.register_losses(batch_with_ratios(model, RATIOS, ADVANTAGES))
    assert out["policy_loss"].item() == pytest.approx(SURROGATE_LOSS, rel=1e-4)
    assert "clip_fraction" not in out


def test_surrogate_gradient_at_ratio_one_is_vanilla_policy_gradient():
    """At r = 1, grad of -mean(r A) equals grad of -mean(A log pi) (the REINFORCE gradient)."""
    model = make_policy(SurrogatePGModel)
    adv = [0.5, -1.0, 2.0, -0.25, 1.0, 0.0]
    batch = batch_with_ratios(model, [1.0] * 6, adv)
    model.optimizer.zero_grad()
    model.register_losses(batch)["loss_policy"].backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.optimizer.zero_grad()
    log_pi = torch.distributions.Categorical(logits=model(batch.obs)).log_prob(batch.actions)
    (-(torch.tensor(adv) * log_pi).mean()).backward()
    for got, want in zip(grads, [p.grad for p in model.parameters()], strict=True):
        assert_close(got, want)


def test_ppo_equals_surrogate_when_no_ratio_is_clipped():
    """All ratios inside [1 - eps, 1 + eps]: L^CLIP and its gradient equal L^CPI's."""
    ratios, adv = [0.85, 0.95, 1.0, 1.05, 1.15, 1.1], [1.0, -2.0, 0.5, 3.0, -1.0, 2.0]
    ppo, surrogate = make_policy(PPOClipModel), make_policy(SurrogatePGModel)
    batch = batch_with_ratios(ppo, ratios, adv)
    loss_ppo = ppo.register_losses(batch)["loss_policy"]
    loss_sur = surrogate.register_losses(batch)["loss_policy"]
    assert_close(loss_ppo, loss_sur)
    loss_ppo.backward()
    loss_sur.backward()
    for a, b in zip(ppo.parameters(), surrogate.parameters(), strict=True):
        assert_close(a.grad, b.grad)


@pytest.mark.parametrize("i", range(len(RATIOS)))
def test_ppo_clip_zeroes_gradient_only_on_the_clipped_side(i):
    """No gradient exactly where the min picks the clipped term (r>1+eps, A>0 / r<1-eps, A<0)."""
    model = make_policy()
    sample = take(batch_with_ratios(model, RATIOS, ADVANTAGES), i)
    norm = grad_norm(model, model.register_losses(sample)["loss_policy"])
    if i in CLIPPED:
        assert norm.item() == 0.0
    else:
        assert norm.item() > 1e-4


def test_ppo_unclipped_sample_gradient_equals_surrogate_gradient():
    """Outside the range on the unclipped side (r = 1.5, A = -2), the gradient is L^CPI's."""
    ppo, surrogate = make_policy(PPOClipModel), make_policy(SurrogatePGModel)
    sample = take(batch_with_ratios(ppo, RATIOS, ADVANTAGES), 3)
    ppo.register_losses(sample)["loss_policy"].backward()
    surrogate.register_losses(sample)["loss_policy"].backward()
    for a, b in zip(ppo.parameters(), surrogate.parameters(), strict=True):
        assert_close(a.grad, b.grad)


def test_entropy_term_value_and_sign():
    """loss_entropy = -coef * mean H (H by hand); a descent step on it raises the entropy."""
    model = make_policy(entropy_coef=0.01, optimizer=functools.partial(torch.optim.SGD, lr=0.5))
    batch = batch_with_ratios(model, RATIOS, ADVANTAGES)
    out = model.register_losses(batch)
    probs = torch.softmax(model(batch.obs), -1).detach()
    entropy = -(probs * probs.log()).sum(-1).mean()
    assert_close(out["entropy"], entropy)
    assert_close(out["loss_entropy"], -0.01 * entropy)
    model.optimizer.zero_grad()
    out["loss_entropy"].backward()
    model.optimizer.step()
    assert model.register_losses(batch)["entropy"].item() > entropy.item()


def test_entropy_gradient_on_gaussian_log_std_is_minus_coef():
    """Box policy: d loss_entropy / d log_std_i = -entropy_coef (dH / d log_std_i = 1)."""
    model = make_policy(action_info=BOX, entropy_coef=0.05)
    obs = torch.randn(5, 4)
    batch = Batch(obs, torch.zeros(5, 2), torch.zeros(5), torch.zeros(5), torch.zeros(5),
                  torch.zeros(5))
    out = model.register_losses(batch)
    out["loss_entropy"].backward()
    assert_close(model.log_std.grad, torch.tensor([-0.05, -0.05]))
    assert_close(out["entropy"], torch.tensor(2 * (0.5 + 0.5 * math.log(2 * math.pi))))


# ---------------------------------------------------------------- value loss

# V(s) = 1 for every state (zero output weights, bias 1); clip_range = 0.5.
OLD_VALUES = [0.0, 1.2, 3.0, 0.8]
RETURNS = [2.0, 0.0, 3.0, 1.0]
# sample  v - v_old  clipped v  (v - R)^2  (clipped - R)^2  max
#   0        1.0       0.5         1.0          2.25        2.25  (clipped: no gradient)
#   1       -0.2       1.0         1.0          1.0         1.0
#   2       -2.0       2.5         4.0          0.25        4.0
#   3        0.2       1.0         0.0          0.0         0.0
# clipped loss 0.5 * (2.25 + 1 + 4 + 0) / 4 = 0.90625; unclipped 0.5 * (1 + 1 + 4 + 0) / 4 = 0.75
# d/d bias: clipped 0.5 / 4 * (0 + 2 - 4 + 0) = -0.25; unclipped 0.5 / 4 * (-2 + 2 - 4) = -0.5


def constant_value_model(clip_range, loss_coef=1.0):
    model = make_value(clip_range, loss_coef=loss_coef)
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.fill_(1.0)
    return model


def value_batch():
    obs, actions = obs_and_actions(4)
    zeros = torch.zeros(4)
    return Batch(obs, actions, zeros, torch.tensor(OLD_VALUES), zeros, torch.tensor(RETURNS))


@pytest.mark.parametrize(("clip_range", "loss", "bias_grad"),
                         [(0.5, 0.90625, -0.25), (None, 0.75, -0.5)])
def test_value_loss_with_and_without_clipping_by_hand(clip_range, loss, bias_grad):
    """Value loss and bias gradient match the table, clipped (max of errors) and unclipped."""
    model = constant_value_model(clip_range, loss_coef=0.5)
    out = model.register_losses(value_batch())
    assert out["value_loss"].item() == pytest.approx(loss)
    assert out["loss_value"].item() == pytest.approx(0.5 * loss)
    model.optimizer.zero_grad()
    (out["loss_value"] / 0.5).backward()
    assert model.out.bias.grad.item() == pytest.approx(bias_grad)


def test_value_clipping_inactive_when_prediction_stays_within_range():
    """If every new prediction is within clip_range of the old one, clipping changes nothing."""
    clipped, plain = constant_value_model(0.5), constant_value_model(None)
    obs, actions = obs_and_actions(4)
    zeros = torch.zeros(4)
    batch = Batch(obs, actions, zeros, torch.tensor([0.6, 1.4, 1.0, 0.9]), zeros,
                  torch.tensor([3.0, -1.0, 0.5, 2.0]))
    assert_close(clipped.register_losses(batch)["value_loss"],
                 plain.register_losses(batch)["value_loss"])
    # 0.5 * mean((1 - R)^2) = 0.5 * (4 + 4 + 0.25 + 1) / 4
    assert clipped.register_losses(batch)["value_loss"].item() == pytest.approx(1.15625)


# ---------------------------------------------------------------- schedules


def test_linear_clip_and_lr_schedules():
    """Linear schedules: start * (1 - p), not compounded; the loss uses the scheduled eps."""
    model = make_policy(ppo_clip_range=0.2, clip_schedule="linear", lr_schedule="linear")
    model.set_progress(0.25)
    model.set_progress(0.25)
    assert model.ppo_clip_range == pytest.approx(0.15)
    assert model.lr == pytest.approx(0.75e-3)
    out = model.register_losses(batch_with_ratios(model, [1.1, 1.18, 0.9, 1.0], [1.0] * 4))
    assert out["clip_epsilon"].item() == pytest.approx(0.15)
    assert out["clip_fraction"].item() == pytest.approx(0.25)  # only 1.18 is beyond 0.15
    model.set_progress(1.0)
    assert model.ppo_clip_range == 0.0
    assert model.lr == 0.0
    model.set_progress(0.0)
    assert model.ppo_clip_range == pytest.approx(0.2)
    assert model.lr == pytest.approx(1e-3)


def test_constant_schedules_do_not_move():
    """clip_schedule / lr_schedule = constant: the values stay at their start whatever p is."""
    model = make_policy(ppo_clip_range=0.3, clip_schedule="constant", lr_schedule="constant")
    model.set_progress(0.9)
    assert model.ppo_clip_range == pytest.approx(0.3)
    assert model.lr == pytest.approx(1e-3)


def test_lr_schedule_reaches_every_param_group():
    """Box policy: the log-std's own param group is annealed with the network's."""
    model = make_policy(action_info=BOX, lr_schedule="linear")
    assert len(model.optimizer.param_groups) == 2
    model.set_progress(0.5)
    assert [g["lr"] for g in model.optimizer.param_groups] == pytest.approx([5e-4, 5e-4])


# ---------------------------------------------------------------- vanilla PG, A2C, PPO-adaptive

PG_NET = {"body": [{"_target_": "torch.nn.Linear", "out_features": 8},
                {"_target_": "torch.nn.Tanh"}], "head": []}
PG_STATE = SpaceInfo(SpaceKind.CONTINUOUS, (3,))
PG_DISCRETE = SpaceInfo(SpaceKind.DISCRETE, (), n=2)
PG_COMMON = dict(log_std_init=0.0, num_epochs=1, num_mini_batches=1, clip_grad_norm=0.5,
              lr_schedule="constant", loss_coef=1.0,
              optimizer=functools.partial(torch.optim.Adam, lr=1e-3))


def _batch(n=5):
    torch.manual_seed(0)
    return Batch(obs=torch.randn(n, 3), actions=torch.tensor([0, 1, 1, 0, 1][:n]),
                 log_probs=torch.log(torch.full((n,), 0.5)), values=torch.zeros(n),
                 advantages=torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0][:n]), returns=torch.zeros(n))


@pytest.mark.parametrize("cls", [VanillaPGModel, A2CModel])
def test_pg_loss_is_minus_mean_logprob_times_advantage(cls):
    """L^PG = -mean(log pi(a|s) * A); the entropy term is -entropy_coef * mean H."""
    torch.manual_seed(0)
    model = cls(nn_from_config(PG_NET, PG_STATE, PG_DISCRETE), action_info=PG_DISCRETE,
                entropy_coef=0.1, **PG_COMMON)
    batch = _batch()
    terms = model.register_losses(batch)
    logits = model(batch.obs)
    log_probs = torch.log_softmax(logits, -1).gather(1, batch.actions[:, None]).squeeze(1)
    torch.testing.assert_close(terms["loss_policy"], -(log_probs * batch.advantages).mean())
    entropy = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1).mean()
    torch.testing.assert_close(terms["loss_entropy"], -0.1 * entropy)


def _adaptive(beta=1.0, early=None):
    torch.manual_seed(0)
    return PPOAdaptiveModel(nn_from_config(PG_NET, PG_STATE, PG_DISCRETE), action_info=PG_DISCRETE,
                            entropy_coef=0.0, kl_target=0.01, kl_penalty=beta,
                            kl_early_stop=early, **PG_COMMON)


def test_adaptive_loss_is_surrogate_plus_beta_kl():
    """L = -mean(r A) + beta * mean((r - 1) - log r), with r from the stored log-probs."""
    model = _adaptive(beta=2.0)
    batch = _batch()
    terms = model.register_losses(batch)
    new = torch.log_softmax(model(batch.obs), -1).gather(1, batch.actions[:, None]).squeeze(1)
    ratio = (new - batch.log_probs).exp()
    torch.testing.assert_close(terms["loss_policy"], -(ratio * batch.advantages).mean())
    kl = ((ratio - 1) - (new - batch.log_probs)).mean()
    torch.testing.assert_close(terms["loss_kl_penalty"], 2.0 * kl)
    assert float(terms["kl_beta"]) == 2.0


@pytest.mark.parametrize(("kl", "expected"), [(0.001, 0.5), (0.0066, 0.5), (0.0067, 1.0),
                                              (0.01, 1.0), (0.015, 1.0), (0.0151, 2.0)])
def test_beta_update_rule(kl, expected):
    """beta halves when d < d_targ/1.5, doubles when d > 1.5 d_targ, else stays."""
    assert update_kl_penalty(1.0, kl, 0.01) == expected
