"""``memory=lstm|gru``: a recurrent layer between a model's network and its output layer.

A model with a memory reads the net's features of each observation, steps the recurrent cell
and gives the cell's output to its output layer. Its state travels as one tensor per model,
``[N, parts, num_layers, hidden_size]`` with the env row first (``parts``: 2 for an LSTM's
``h`` and ``c``, 1 for a GRU's ``h``), so that it indexes, stores and checkpoints like any
other per-env tensor. A row whose observation begins an episode (``first``) starts from zeros.
"""

import torch
import torch.nn.functional as F
from torch import nn

from torchrl_cli.nn.shared import OncePerInput

KINDS = ("none", "lstm", "gru")
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class Memory(OncePerInput, nn.Module):
    """A recurrent layer (``torch.nn.LSTM`` or ``torch.nn.GRU``) stepped one vector step at a
    time, with resets at episode starts (Hochreiter & Schmidhuber 1997; Cho et al. 2014).

    Parameters:
        kind: ``lstm`` or ``gru``.
        input_size: features per observation (the net's flattened output).
        hidden_size: units per layer (the output's size).
        num_layers: stacked recurrent layers.
        key: the name of the state it reads and writes (its model's: ``policy`` or ``value``;
            a memory the two share, ``memory.shared``, is the policy's).

    Inside ``nn.shared.one_forward`` a model's pass over a batch runs once per batch
    (``once``): a value that shares the policy's memory reads the policy's outputs.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_layers: int, key: str):
        super().__init__()
        self.kind, self.key = kind, key
        # the weights (and their state-dict names) of torch's layer; stepped by ``step``
        self.rnn = CELLS[kind](input_size, hidden_size, num_layers)
        self.parts = 2 if kind == "lstm" else 1
        self.out_shape = (hidden_size,)

    def initial_state(self, n: int) -> torch.Tensor:
        """Zeros for ``n`` rows: ``[n, parts, num_layers, hidden_size]``."""
        weight = self.rnn.weight_hh_l0
        return weight.new_zeros(n, self.parts, self.rnn.num_layers, self.rnn.hidden_size)

    def step(
        self, x: torch.Tensor, state: torch.Tensor, first: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: features ``x [N, F]``, the state before it (rows where ``first`` is true
        start from zeros) -> the output ``[N, H]`` and the state after it. The cell functions
        on the layer's own weights, layer by layer: the same arithmetic as ``self.rnn`` on a
        sequence of one step, at a third of its call overhead on small batches."""
        parts = self.split(torch.where(first.view(-1, 1, 1, 1), 0.0, state))
        out, parts = self.cells(x, parts)
        return out, self.join(parts)

    def split(self, state: torch.Tensor) -> list[torch.Tensor]:
        """``[N, parts, num_layers, H]`` -> one ``[N, H]`` tensor per (layer, part), layer by
        layer (an LSTM's ``h`` then ``c``)."""
        return [state[:, p, k] for k in range(self.rnn.num_layers) for p in range(self.parts)]

    def join(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """``split``'s inverse."""
        layers = [
            torch.stack(parts[k * self.parts : (k + 1) * self.parts], 1)
            for k in range(self.rnn.num_layers)
        ]
        return torch.stack(layers, 2)

    def weights(self, k: int) -> tuple[torch.Tensor, ...]:
        """Layer ``k``'s ``w_ih, w_hh, b_ih, b_hh`` (torch's layer's own parameters)."""
        return tuple(getattr(self.rnn, f"{name}_l{k}") for name in
                     ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def cells(
        self, x: torch.Tensor, parts: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The cell of every layer once, on ``split`` states: acting and the update both step
        through here, so that they do the same arithmetic."""
        rnn, after = self.rnn, []
        for k in range(rnn.num_layers):
            weights = self.weights(k)
            if self.parts == 2:
                h, c = torch.lstm_cell(x, (parts[2 * k], parts[2 * k + 1]), *weights)
                after += (h, c)
            else:
                h = torch.gru_cell(x, parts[k], *weights)
                after.append(h)
            x = h
        return x, after

    def unroll(
        self, x: torch.Tensor, state: torch.Tensor, first: torch.Tensor, keep: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Each row's sequence ``x [n, T, F]`` from ``state [n, ...]`` (before step 0), stepped
        as acting stepped it (``cells``, resets where ``first [n, T]``): the outputs
        ``[n, T, H]``, the states before each step (``keep``; else None) and the state after
        the last. The states stay one tensor per layer and part between steps, and a reset
        touches only the steps where some row starts over (one read of ``first`` per call).

        With gradients on (the update), each layer runs as one autograd node (``LSTMLayer``,
        ``GRULayer``): the same cell calls forward, so the outputs are acting's bit for bit,
        and a hand-written backward through time whose matrix products over all steps are
        batched, instead of autograd's graph of a dozen nodes per step."""
        starts = first.any(0).tolist()
        if not keep and torch.is_grad_enabled():
            return self.unroll_layers(x, state, first, starts)
        parts, outs, before = self.split(state), [], []
        for t in range(x.shape[1]):
            if keep:  # as carried, before any reset: a cut episode bootstraps from it
                before.append(self.join(parts))
            if starts[t]:
                fresh = first[:, t].unsqueeze(1)
                parts = [torch.where(fresh, 0.0, part) for part in parts]
            out, parts = self.cells(x[:, t], parts)
            outs.append(out)
        return torch.stack(outs, 1), torch.stack(before, 1) if keep else None, self.join(parts)

    def unroll_layers(
        self, x: torch.Tensor, state: torch.Tensor, first: torch.Tensor, starts: list[bool]
    ) -> tuple[torch.Tensor, None, torch.Tensor]:
        """``unroll`` layer after layer, each one autograd node (a layer's step t needs only
        the layer below's step t and its own step t-1: the same numbers as step by step)."""
        rnn, parts, after = self.rnn, self.split(state), []
        layer = LSTMLayer if self.parts == 2 else GRULayer
        for k in range(rnn.num_layers):
            weights = self.weights(k)
            own = parts[k * self.parts : (k + 1) * self.parts]
            out, *last = layer.apply(x, first, starts, *own, *weights)
            after += last
            x = out.transpose(0, 1)  # [n, T, H], as ``unroll``'s x
        return x, None, self.join(after)


def _entering(h0: torch.Tensor, outs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The state each step starts from, ``[T, n, H]``: the one before it (``h0``, then the
    outputs ``[T, n, H]``), zero where the row starts over (``keep [T, n, 1]`` is 0 there)."""
    return torch.cat((h0.unsqueeze(0), outs[:-1])) * keep


class LSTMLayer(torch.autograd.Function):
    """One LSTM layer over ``x [n, T, F]`` from ``(h0, c0)`` with resets where ``first
    [n, T]`` (``starts[t]``: whether any row resets at t): forward ``torch.lstm_cell`` step by
    step as acting calls it; backward through time by hand (Hochreiter & Schmidhuber 1997's
    gates, gradients as in Graves 2012), the products with the input and the weights batched
    over every step. Returns the outputs ``[T, n, H]`` and the last ``(h, c)``."""

    @staticmethod
    def forward(ctx, x, first, starts, h0, c0, w_ih, w_hh, b_ih, b_hh):
        h, c, hs, cs = h0, c0, [], []
        for t, x_t in enumerate(x.unbind(1)):
            if starts[t]:
                fresh = first[:, t].unsqueeze(1)
                h, c = torch.where(fresh, 0.0, h), torch.where(fresh, 0.0, c)
            h, c = torch.lstm_cell(x_t, (h, c), w_ih, w_hh, b_ih, b_hh)
            hs.append(h)
            cs.append(c)
        outs, cells = torch.stack(hs), torch.stack(cs)
        ctx.save_for_backward(x, first, h0, c0, outs, cells, w_ih, w_hh, b_ih, b_hh)
        ctx.starts = starts
        return outs, h, c

    @staticmethod
    def backward(ctx, d_outs, d_h, d_c):
        x, first, h0, c0, outs, cells, w_ih, w_hh, b_ih, b_hh = ctx.saved_tensors
        keep = (~first).T.unsqueeze(-1).to(outs.dtype)  # [T, n, 1]
        xs = x.transpose(0, 1)  # [T, n, F]
        h_in, c_in = _entering(h0, outs, keep), _entering(c0, cells, keep)
        gates = F.linear(xs, w_ih, b_ih) + F.linear(h_in, w_hh, b_hh)
        i, f, g, o = gates.chunk(4, -1)
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        tanh_c = cells.tanh()
        # d(pre-activation) per unit of dc (i, f, g: one [T, n, 3, H] block) or of dh (o);
        # dc gets dh * via_h
        n, size = outs.shape[1], outs.shape[-1]
        d_ifg = torch.stack((g * i * (1 - i), c_in * f * (1 - f), i * (1 - g * g)), 2)
        d_o, via_h = tanh_c * o * (1 - o), o * (1 - tanh_c * tanh_c)
        d_gates = torch.empty_like(gates)
        blocks = d_gates.view(*d_gates.shape[:2], 4, size).unbind(0)
        carry_c = (f * keep).unbind(0)  # dc into the step before (none across a reset)
        d_outs = [torch.zeros_like(h0)] * len(blocks) if d_outs is None else d_outs.unbind(0)
        dh = d_outs[-1] if d_h is None else d_outs[-1] + d_h  # into the last step's output
        dc = torch.zeros_like(c0) if d_c is None else d_c
        via_h, d_ifg, d_o, keep = (a.unbind(0) for a in (via_h, d_ifg, d_o, keep))
        for t in reversed(range(len(blocks))):
            dc = torch.addcmul(dc, dh, via_h[t])
            torch.mul(dc.unsqueeze(1), d_ifg[t], out=blocks[t][:, :3])
            torch.mul(dh, d_o[t], out=blocks[t][:, 3])
            dh = _into_step_before(blocks[t].view(n, 4 * size), w_hh, d_outs, keep, t, ctx)
            dc = dc * carry_c[t]
        return (
            _input_grad(ctx, d_gates, w_ih),
            None,
            None,
            dh,
            dc,
            *_weight_grads(ctx, d_gates, d_gates, xs, h_in, offset=5),
        )


class GRULayer(torch.autograd.Function):
    """``LSTMLayer`` for a GRU layer (Cho et al. 2014; torch's gate order r, z, n and its
    ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``): forward ``torch.gru_cell`` step by step,
    backward through time by hand. Returns the outputs ``[T, n, H]`` and the last ``h``."""

    @staticmethod
    def forward(ctx, x, first, starts, h0, w_ih, w_hh, b_ih, b_hh):
        h, hs = h0, []
        for t, x_t in enumerate(x.unbind(1)):
            if starts[t]:
                h = torch.where(first[:, t].unsqueeze(1), 0.0, h)
            h = torch.gru_cell(x_t, h, w_ih, w_hh, b_ih, b_hh)
            hs.append(h)
        outs = torch.stack(hs)
        ctx.save_for_backward(x, first, h0, outs, w_ih, w_hh, b_ih, b_hh)
        ctx.starts = starts
        return outs, h

    @staticmethod
    def backward(ctx, d_outs, d_h):
        x, first, h0, outs, w_ih, w_hh, b_ih, b_hh = ctx.saved_tensors
        keep = (~first).T.unsqueeze(-1).to(outs.dtype)  # [T, n, 1]
        xs = x.transpose(0, 1)
        h_in = _entering(h0, outs, keep)
        gi, gh = F.linear(xs, w_ih, b_ih), F.linear(h_in, w_hh, b_hh)
        ir, iz, i_n = gi.chunk(3, -1)
        hr, hz, hn = gh.chunk(3, -1)
        r, z = (ir + hr).sigmoid(), (iz + hz).sigmoid()
        n = (i_n + r * hn).tanh()
        # d(pre-activation) per unit of dh: n's, z's; r's per unit of n's
        d_n, d_z, d_r = (1 - z) * (1 - n * n), (h_in - n) * z * (1 - z), hn * r * (1 - r)
        d_gi, d_gh = torch.empty_like(gi), torch.empty_like(gh)
        size = outs.shape[-1]
        carry_h = (z * keep).unbind(0)  # dh straight into the step before (none across a reset)
        d_outs = [torch.zeros_like(h0)] * len(carry_h) if d_outs is None else d_outs.unbind(0)
        dh = d_outs[-1] if d_h is None else d_outs[-1] + d_h
        rows_i, rows_h = d_gi.unbind(0), d_gh.unbind(0)
        d_n, d_z, d_r, r, keep = (a.unbind(0) for a in (d_n, d_z, d_r, r, keep))
        for t in reversed(range(len(carry_h))):
            row_h = rows_h[t]
            dn = torch.mul(dh, d_n[t], out=rows_i[t][:, 2 * size :])
            torch.mul(dn, d_r[t], out=row_h[:, :size])
            torch.mul(dh, d_z[t], out=row_h[:, size : 2 * size])
            torch.mul(dn, r[t], out=row_h[:, 2 * size :])
            dh = _into_step_before(row_h, w_hh, d_outs, keep, t, ctx).addcmul_(dh, carry_h[t])
        d_gi[..., : 2 * size] = d_gh[..., : 2 * size]  # r's and z's: the same for both
        return (
            _input_grad(ctx, d_gi, w_ih),
            None,
            None,
            dh,
            *_weight_grads(ctx, d_gi, d_gh, xs, h_in, offset=4),
        )


def _into_step_before(
    d_gates: torch.Tensor, w_hh: torch.Tensor, d_outs, keep, t: int, ctx
) -> torch.Tensor:
    """The gradient reaching the output of step ``t - 1`` (of ``h0`` at ``t = 0``) through the
    hidden-to-hidden product of step ``t``'s gates ``d_gates [n, G]``, plus that output's own
    gradient ``d_outs[t - 1]``: one ``addmm`` where no row starts over at ``t``; rows that
    do pass nothing back (``keep[t]`` is 0 there)."""
    if ctx.starts[t]:
        d_h = (d_gates @ w_hh).mul_(keep[t])
        return d_h.add_(d_outs[t - 1]) if t else d_h
    return torch.addmm(d_outs[t - 1], d_gates, w_hh) if t else d_gates @ w_hh


def _input_grad(ctx, d_in: torch.Tensor, w_ih: torch.Tensor) -> torch.Tensor | None:
    """The gradient of a layer's input ``x [n, T, F]`` from the gates' ``d_in [T, n, G]``."""
    return (d_in @ w_ih).transpose(0, 1) if ctx.needs_input_grad[0] else None


def _weight_grads(ctx, d_in, d_hidden, xs, h_in, offset: int) -> tuple:
    """The gradients of ``w_ih, w_hh, b_ih, b_hh`` (inputs ``offset`` on), summed over every
    step and row in one product each."""
    d_in, d_hidden = d_in.flatten(0, 1), d_hidden.flatten(0, 1)
    need = ctx.needs_input_grad[offset:]
    return (
        d_in.T @ xs.flatten(0, 1) if need[0] else None,
        d_hidden.T @ h_in.flatten(0, 1) if need[1] else None,
        d_in.sum(0) if need[2] else None,
        d_hidden.sum(0) if need[3] else None,
    )
