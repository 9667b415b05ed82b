"""Recurrent cells behind one interface, registered under the names params.yaml uses.

Every cell maps (x_t, state) -> state, where a state is a tuple of tensors whose first element
is the output h_t (batch x hidden). `initial_state(h0)` builds a state from a hidden vector, so
the generator can set it from z. `forward_sequence` runs a whole known input sequence; the
discriminator uses it (and a fused kernel can replace it later without touching the callers).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

State = tuple[torch.Tensor, ...]


class Cell(nn.Module):
    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size

    def initial_state(self, h0: torch.Tensor) -> State:
        return (h0,)

    def forward(self, x: torch.Tensor, state: State) -> State:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_sequence(self, xs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """xs: T x B x input -> outputs T x B x hidden and the last state."""
        outputs = []
        for x in xs:
            state = self(x, state)
            outputs.append(state[0])
        return torch.stack(outputs), state


class RNNCell(Cell):
    """Elman: h_t = tanh(W x_t + U h_{t-1} + b)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.cell = nn.RNNCell(input_size, hidden_size, nonlinearity="tanh")

    def forward(self, x, state):
        return (self.cell(x, state[0]),)


class LSTMCell(Cell):
    """Hochreiter & Schmidhuber; state (h, c). The generator's z sets h; c starts at zero."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.cell = nn.LSTMCell(input_size, hidden_size)

    def initial_state(self, h0):
        return (h0, torch.zeros_like(h0))

    def forward(self, x, state):
        return self.cell(x, state)


class GRUCell(Cell):
    """Cho et al. 2014."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.cell = nn.GRUCell(input_size, hidden_size)

    def forward(self, x, state):
        return (self.cell(x, state[0]),)


class SRUCell(Cell):
    """Simple Recurrent Unit, Lei et al. 2018 ("Simple Recurrent Units for Highly Parallelizable
    Recurrence", EMNLP), eqs. 3-6:

        f_t = sigmoid(W_f x_t + v_f * c_{t-1} + b_f)
        c_t = f_t * c_{t-1} + (1 - f_t) * (W x_t)
        r_t = sigmoid(W_r x_t + v_r * c_{t-1} + b_r)
        h_t = r_t * c_t + (1 - r_t) * x'_t

    The recurrence is elementwise (v_f, v_r are vectors), so all matrix products depend on the
    input alone and can be computed for a whole sequence at once. x'_t is x_t when the sizes
    match, else a learned projection W' x_t (as the reference implementation does). State is
    (h, c); only c recurs.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.highway_projection = input_size != hidden_size
        k = 4 if self.highway_projection else 3
        self.weight = nn.Parameter(torch.empty(k * hidden_size, input_size))
        self.v = nn.Parameter(torch.empty(2, hidden_size))       # v_f, v_r
        self.bias = nn.Parameter(torch.zeros(2, hidden_size))    # b_f, b_r
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.input_size)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.v, -bound, bound)
        nn.init.zeros_(self.bias)

    def initial_state(self, h0):
        # z sets the memory c directly: it is what recurs; h follows from c at the first step.
        return (h0, h0)

    def _project(self, x):
        u = F.linear(x, self.weight).unflatten(-1, (-1, self.hidden_size))
        wx, wf, wr = u[..., 0, :], u[..., 1, :], u[..., 2, :]
        highway = u[..., 3, :] if self.highway_projection else x
        return wx, wf, wr, highway

    def _step(self, wx, wf, wr, highway, c_prev):
        f = torch.sigmoid(wf + self.v[0] * c_prev + self.bias[0])
        r = torch.sigmoid(wr + self.v[1] * c_prev + self.bias[1])
        c = f * c_prev + (1 - f) * wx
        h = r * c + (1 - r) * highway
        return h, c

    def forward(self, x, state):
        return self._step(*self._project(x), state[1])

    def forward_sequence(self, xs, state):
        # note: the matrix products for all steps at once; only the cheap elementwise part loops
        wx, wf, wr, highway = self._project(xs)
        c = state[1]
        outputs = []
        for t in range(xs.shape[0]):
            h, c = self._step(wx[t], wf[t], wr[t], highway[t], c)
            outputs.append(h)
        return torch.stack(outputs), (h, c)


CELLS: dict[str, type[Cell]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell, "sru": SRUCell}


def make_cell(name: str, input_size: int, hidden_size: int) -> Cell:
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; allowed: {', '.join(CELLS)}")
    return CELLS[name](input_size, hidden_size)
