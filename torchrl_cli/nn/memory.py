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
        start from zeros) -> the output ``[N, H]`` and the state after it (``cells``: an LSTM
        through torch's kernel for a sequence of one step, a GRU's cell function on the
        layer's own weights layer by layer, at a third of the kernel's call overhead)."""
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
        through here (the LSTM: through ``lstm``), so that they do the same arithmetic."""
        rnn, after = self.rnn, []
        if self.parts == 2:
            h, c = torch.stack(parts[0::2]), torch.stack(parts[1::2])
            out, h, c = self.lstm(x.unsqueeze(1), h, c)
            return out[:, 0], [p for k in range(rnn.num_layers) for p in (h[k], c[k])]
        for k in range(rnn.num_layers):
            x = torch.gru_cell(x, parts[k], *self.weights(k))
            after.append(x)
        return x, after

    def lstm(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """torch's LSTM kernel (every layer) over ``x [n, L, F]`` from ``h, c [layers, n, H]``:
        the outputs ``[n, L, H]`` and the last ``h, c``. Always its training kernel, under
        autograd (outputs detached where the caller has gradients off): on a CPU torch runs
        oneDNN's LSTM, whose inference kernel rounds differently from its training kernel,
        so acting (a step at a time, no gradients) and the update (whole sequences) would
        otherwise not agree bit for bit. A sequence of L steps is one call, and the backward
        through time is the kernel's own."""
        wanted = torch.is_grad_enabled()
        with torch.enable_grad():
            out, h, c = torch.lstm(
                x, (h, c), [w for layer in self.rnn.all_weights for w in layer], True,
                self.rnn.num_layers, 0.0, True, False, True,
            )
        if not wanted:
            out, h, c = out.detach(), h.detach(), c.detach()
        return out, h, c

    def unroll(
        self, x: torch.Tensor, state: torch.Tensor, first: torch.Tensor, keep: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Each row's sequence ``x [n, T, F]`` from ``state [n, ...]`` (before step 0), stepped
        as acting stepped it (``cells``, resets where ``first [n, T]``): the outputs
        ``[n, T, H]``, the states before each step (``keep``; else None) and the state after
        the last. The states stay one tensor per layer and part between steps, and a reset
        touches only the steps where some row starts over (one read of ``first`` per call).

        With gradients on (the update; not ``keep``) only the outputs are computed (the
        states: None), faster than step by step: an LSTM's episode pieces through torch's
        kernel, padded into a few calls (``unroll_lstm``), a GRU's layers as one autograd
        node each with a hand-written backward through time (``GRULayer``). Either way the
        outputs are acting's bit for bit (in float32 on a CPU, acting over 4 envs or more)."""
        if not keep and torch.is_grad_enabled():  # the update's path
            if self.parts == 2:
                return self.unroll_lstm(x, state, first)
            return self.unroll_gru(x, state, first, first.any(0).tolist())
        starts = first.any(0).tolist()  # the step loop's: which steps start an episode
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

    def unroll_lstm(
        self, x: torch.Tensor, state: torch.Tensor, first: torch.Tensor
    ) -> tuple[torch.Tensor, None, None]:
        """``unroll`` for an LSTM with gradients: every episode piece (a row's steps from a
        start to the next) as its own sequence, from zeros or, for a row's first piece, from
        the row's state, through torch's kernel: pieces of like lengths in one ``lstm`` call,
        padded at their ends to the longest of the call (``piece_groups``; the padding's
        outputs are dropped). Each piece steps as acting stepped it, so the outputs are
        acting's. The states after the last step are not computed (None)."""
        n, steps = first.shape
        begins = first.clone()
        begins[:, 0] = True
        row, begin = begins.nonzero(as_tuple=True)  # the pieces, row by row, in order
        last = torch.ones_like(row, dtype=torch.bool)  # a row's last piece ends at ``steps``
        last[:-1] = row[1:] != row[:-1]
        length = torch.where(last, steps, begin.roll(-1)) - begin
        carried = ((begin == 0) & ~first[row, begin]).view(1, -1, 1)  # from the row's state
        h0 = torch.where(carried, state[row, 0].transpose(0, 1), 0.0)  # [layers, pieces, H]
        c0 = torch.where(carried, state[row, 1].transpose(0, 1), 0.0)
        flat, home = x.flatten(0, 1), row * steps + begin  # a piece's first (row, step)
        outs, found, done = [], torch.empty_like(first.view(-1), dtype=torch.long), 0
        for pieces, longest in piece_groups(length.tolist()):
            # at least 4 rows per call (repeats of the first): torch's products round alike
            # over 4 rows or more, as acting's over the envs
            pieces = torch.as_tensor((pieces * 4)[: max(4, len(pieces))], device=x.device)
            span = torch.arange(longest, device=x.device)
            size = length[pieces].unsqueeze(1)
            at = home[pieces].unsqueeze(1) + span.clamp(max=size - 1)  # padding: the last step
            out, _, _ = self.lstm(flat[at], h0[:, pieces], c0[:, pieces])
            outs.append(out.flatten(0, 1))
            valid = span < size
            found[at[valid]] = done + torch.arange(at.numel(), device=x.device)[valid.view(-1)]
            done += at.numel()
        return torch.cat(outs)[found].view(n, steps, -1), None, None

    def unroll_gru(
        self, x: torch.Tensor, state: torch.Tensor, first: torch.Tensor, starts: list[bool]
    ) -> tuple[torch.Tensor, None, None]:
        """``unroll`` for a GRU with gradients, layer after layer, each one autograd node
        (``GRULayer``; a layer's step t needs only the layer below's step t and its own step
        t-1: the same numbers as step by step). The states after the last step are not
        computed (None)."""
        parts = self.split(state)
        for k in range(self.rnn.num_layers):
            x = GRULayer.apply(x, first, starts, parts[k], *self.weights(k)).transpose(0, 1)
        return x, None, None


CALL_COST = 64  # an ``lstm`` call costs about as much as this many more padded piece-steps


def piece_groups(lengths: list[int]) -> list[tuple[list[int], int]]:
    """Pieces of these ``lengths`` in groups, each one padded call: ``(pieces, longest)``.
    Pieces go by length into power-of-two classes, and runs of neighbouring classes share
    a call where the padding costs less than another call (``CALL_COST``): the fewest
    padded steps plus calls, chosen over the classes."""
    classes: dict[int, list[int]] = {}
    for piece, length in enumerate(lengths):
        classes.setdefault(length.bit_length(), []).append(piece)
    order = sorted(classes, reverse=True)  # the longest class first
    longest = [max(lengths[p] for p in classes[k]) for k in order]
    count = [len(classes[k]) for k in order]
    # best[i]: the cheapest cost of classes i.. ; a call over classes i..j-1 pads to longest[i]
    best, cut = [0.0] * (len(order) + 1), [0] * len(order)
    for i in reversed(range(len(order))):
        best[i], cut[i] = min(
            (CALL_COST + sum(count[i:j]) * longest[i] + best[j], j)
            for j in range(i + 1, len(order) + 1)
        )
    groups, i = [], 0
    while i < len(order):
        j = cut[i]
        groups.append(([p for k in order[i:j] for p in classes[k]], longest[i]))
        i = j
    return groups


def _entering(h0: torch.Tensor, outs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The state each step starts from, ``[T, n, H]``: the one before it (``h0``, then the
    outputs ``[T, n, H]``), zero where the row starts over (``keep [T, n, 1]`` is 0 there)."""
    return torch.cat((h0.unsqueeze(0), outs[:-1])) * keep


class GRULayer(torch.autograd.Function):
    """One GRU layer over ``x [n, T, F]`` from ``h0`` with resets where ``first [n, T]``
    (``starts[t]``: whether any row resets at t; Cho et al. 2014, torch's gate order r, z, n
    and its ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``): forward ``torch.gru_cell`` step
    by step as acting calls it; backward through time by hand, the products with the input
    and the weights batched over every step (torch's GRU kernel has no faster path on a CPU
    than this). Returns the outputs ``[T, n, H]``."""

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
        return outs

    @staticmethod
    def backward(ctx, d_outs):
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
        d_outs = d_outs.unbind(0)
        dh = d_outs[-1]
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
