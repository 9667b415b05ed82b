"""Recurrent cells behind one interface, registered under the names params.yaml uses.

Every cell maps (x_t, state) -> state, where a state is a tuple of tensors whose first element
is the output h_t (batch x hidden). `initial_state(h0)` builds a state from a hidden vector, so
the generator can set it from z. `forward_sequence` runs a whole known input sequence: step by
step in Python, or fused into one kernel call (cuDNN's RNN for RNN/LSTM/GRU, a compiled
recurrence for SRU), by default fused on CUDA only.
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

    def forward_sequence(self, xs: torch.Tensor, state: State,
                         fused: bool | None = None) -> tuple[torch.Tensor, State]:
        """xs: T x B x input -> outputs T x B x hidden and the last state.

        fused: run the whole sequence in one fused call; None means on CUDA only.
        note: the Python loop stays the CPU default because it reproduces the committed CPU
        results bit for bit; the fused kernels agree with it to float rounding (tests check 1e-5).
        """
        if fused is None:
            fused = xs.is_cuda
        if fused:
            return self._fused_sequence(xs, state)
        outputs = []
        for x in xs:
            state = self(x, state)
            outputs.append(state[0])
        return torch.stack(outputs), state

    def _fused_sequence(self, xs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        raise NotImplementedError  # pragma: no cover - every registered cell has one


def _sequence_op(op, cell: nn.RNNCellBase, xs: torch.Tensor, hx: State) -> tuple[torch.Tensor, State]:
    """Run one of PyTorch's sequence ops (the functions nn.RNN/nn.LSTM/nn.GRU call) on the
    weights of an nn.*Cell, which have the layout those ops expect for one layer.

    The op runs in float32 with autocast off, so bf16 autocast elsewhere never reaches cuDNN's
    RNN; outputs and state come back in the input's dtype.
    """
    with torch.autocast(device_type=xs.device.type, enabled=False):
        weights = [p.float() for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]
        # note: cuDNN reads one flat buffer (w_ih, w_hh, b_ih, b_hh for one layer); handing it
        # views of one spares it re-packing the weights, and warning so, at every call. The cell
        # modules keep owning the parameters (the optimizer, the EMA and checkpoints see those).
        flat = torch.cat([w.reshape(-1) for w in weights])
        weights = [v.view_as(w) for v, w in zip(flat.split([w.numel() for w in weights]), weights)]
        h0 = [h.float().unsqueeze(0).contiguous() for h in hx]          # 1 layer x B x hidden
        result = op(xs.float().contiguous(), h0 if len(h0) > 1 else h0[0], weights,
                    True,                      # has_biases
                    1, 0.0,                    # num_layers, dropout
                    torch.is_grad_enabled(),   # train: cuDNN keeps what backward needs only then
                    False, False)              # bidirectional, batch_first
    outputs, last = result[0], result[1:]
    return outputs.to(xs.dtype), tuple(s.squeeze(0).to(xs.dtype) for s in last)


class RNNCell(Cell):
    """Elman: h_t = tanh(W x_t + U h_{t-1} + b)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.cell = nn.RNNCell(input_size, hidden_size, nonlinearity="tanh")

    def forward(self, x, state):
        return (self.cell(x, state[0]),)

    def _fused_sequence(self, xs, state):
        return _sequence_op(torch.rnn_tanh, self.cell, xs, state)


class LSTMCell(Cell):
    """Hochreiter & Schmidhuber; state (h, c). The generator's z sets h; c starts at zero."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.cell = nn.LSTMCell(input_size, hidden_size)

    def initial_state(self, h0):
        return (h0, torch.zeros_like(h0))

    def forward(self, x, state):
        return self.cell(x, state)

    def _fused_sequence(self, xs, state):
        return _sequence_op(torch.lstm, self.cell, xs, state)


class GRUCell(Cell):
    """Cho et al. 2014."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.cell = nn.GRUCell(input_size, hidden_size)

    def forward(self, x, state):
        return (self.cell(x, state[0]),)

    def _fused_sequence(self, xs, state):
        return _sequence_op(torch.gru, self.cell, xs, state)


def _sru_step(wx, wf, wr, highway, v, bias, c_prev):
    """One step of SRU's elementwise recurrence (Lei et al. 2018, eqs. 3-6)."""
    f = torch.sigmoid(wf + v[0] * c_prev + bias[0])
    r = torch.sigmoid(wr + v[1] * c_prev + bias[1])
    c = f * c_prev + (1 - f) * wx
    h = r * c + (1 - r) * highway
    return h, c


def sru_recurrence(wx, wf, wr, highway, v, bias, c0):
    """SRU's elementwise recurrence over all T steps, in plain PyTorch (the reference).

    wx, wf, wr, highway: T x B x hidden, the input projections; v, bias: 2 x hidden (the f and
    r gates'); c0: B x hidden. Returns the outputs h (T x B x hidden) and the last memory c.
    """
    c, hs = c0, []
    for t in range(wx.shape[0]):
        h, c = _sru_step(wx[t], wf[t], wr[t], highway[t], v, bias, c)
        hs.append(h)
    return torch.stack(hs), c


_compiled_sru_recurrence = None


def compiled_sru_recurrence():
    """`sru_recurrence` compiled with torch.compile: compiled at the first call, then cached.

    note: the T steps unroll into a few fused elementwise kernels, where eager PyTorch launches
    about ten small kernels per step.
    """
    global _compiled_sru_recurrence
    if _compiled_sru_recurrence is None:
        _compiled_sru_recurrence = torch.compile(sru_recurrence, dynamic=False)
    return _compiled_sru_recurrence


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

    def forward(self, x, state):
        return _sru_step(*self._project(x), self.v, self.bias, state[1])

    def forward_sequence(self, xs, state, fused=None):
        if fused is None:
            fused = xs.is_cuda
        # note: the matrix products for all steps at once; only the cheap elementwise part loops
        recurrence = compiled_sru_recurrence() if fused else sru_recurrence
        hs, c = recurrence(*self._project(xs), self.v, self.bias, state[1])
        return hs, (hs[-1], c)


CELLS: dict[str, type[Cell]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell, "sru": SRUCell}


def make_cell(name: str, input_size: int, hidden_size: int) -> Cell:
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; allowed: {', '.join(CELLS)}")
    return CELLS[name](input_size, hidden_size)
