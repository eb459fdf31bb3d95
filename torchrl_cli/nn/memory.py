"""``memory=lstm|gru``: a recurrent layer between a model's network and its output layer.

A model with a memory reads the net's features of each observation, steps the recurrent cell
and gives the cell's output to its output layer. Its state travels as one tensor per model,
``[N, parts, num_layers, hidden_size]`` with the env row first (``parts``: 2 for an LSTM's
``h`` and ``c``, 1 for a GRU's ``h``), so that it indexes, stores and checkpoints like any
other per-env tensor. A row whose observation begins an episode (``first``) starts from zeros.
"""

import torch
from torch import nn

KINDS = ("none", "lstm", "gru")
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class Memory(nn.Module):
    """A recurrent layer (``torch.nn.LSTM`` or ``torch.nn.GRU``) stepped one vector step at a
    time, with resets at episode starts (Hochreiter & Schmidhuber 1997; Cho et al. 2014).

    Parameters:
        kind: ``lstm`` or ``gru``.
        input_size: features per observation (the net's flattened output).
        hidden_size: units per layer (the output's size).
        num_layers: stacked recurrent layers.
        key: the name of the state it reads and writes (its model's: ``policy`` or ``value``).
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
        state = torch.where(first.view(-1, 1, 1, 1), 0.0, state)
        rnn, layers = self.rnn, []
        for k in range(rnn.num_layers):
            weights = (
                getattr(rnn, f"weight_ih_l{k}"),
                getattr(rnn, f"weight_hh_l{k}"),
                getattr(rnn, f"bias_ih_l{k}"),
                getattr(rnn, f"bias_hh_l{k}"),
            )
            if self.parts == 2:
                h, c = torch.lstm_cell(x, (state[:, 0, k], state[:, 1, k]), *weights)
                layers.append(torch.stack((h, c), 1))
            else:
                h = torch.gru_cell(x, state[:, 0, k], *weights)
                layers.append(h.unsqueeze(1))
            x = h
        return x, torch.stack(layers, 2)

    def unroll(
        self, x: torch.Tensor, state: torch.Tensor, first: torch.Tensor, keep: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Each row's sequence ``x [n, T, F]`` from ``state [n, ...]`` (before step 0), stepped
        as acting stepped it (``step``, resets where ``first [n, T]``): the outputs
        ``[n, T, H]``, the states before each step (``keep``; else None) and the state after
        the last."""
        outs, before = [], []
        for t in range(x.shape[1]):
            if keep:
                before.append(state)
            out, state = self.step(x[:, t], state, first[:, t])
            outs.append(out)
        return torch.stack(outs, 1), torch.stack(before, 1) if keep else None, state
