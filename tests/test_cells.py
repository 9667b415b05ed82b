"""The recurrent cells: one interface, real gradients, and SRU as Lei et al. (2018) define it."""
import pytest
import torch

from rnngan.models.cells import CELLS, SRUCell, make_cell

B, IN, HID, T = 5, 7, 6, 4


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("input_size", [IN, HID])
def test_cell_step_and_sequence_shapes(name, input_size):
    cell = make_cell(name, input_size, HID)
    state = cell.initial_state(torch.randn(B, HID))
    state = cell(torch.randn(B, input_size), state)
    assert state[0].shape == (B, HID)
    outs, last = cell.forward_sequence(torch.randn(T, B, input_size), state)
    assert outs.shape == (T, B, HID)
    assert torch.equal(outs[-1], last[0])


@pytest.mark.parametrize("name", list(CELLS))
def test_sequence_matches_step_by_step(name):
    torch.manual_seed(0)
    cell = make_cell(name, IN, HID)
    xs, h0 = torch.randn(T, B, IN), torch.randn(B, HID)
    outs, _ = cell.forward_sequence(xs, cell.initial_state(h0))
    state = cell.initial_state(h0)
    for t in range(T):
        state = cell(xs[t], state)
        torch.testing.assert_close(outs[t], state[0])


@pytest.mark.parametrize("name", list(CELLS))
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    cell = make_cell(name, IN, HID)
    h0 = torch.randn(B, HID, requires_grad=True)
    outs, _ = cell.forward_sequence(torch.randn(T, B, IN), cell.initial_state(h0))
    outs.pow(2).sum().backward()
    for pname, p in cell.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname} got no gradient"
    assert h0.grad.abs().sum() > 0, "the initial state (z) must influence the output"


def naive_sru(xs, c0, W, Wf, Wr, vf, vr, bf, br, Wh=None):
    """Lei et al. 2018, eqs. 3-6, one time step at a time, written out term by term."""
    c, hs = c0, []
    for x in xs:
        f = torch.sigmoid(x @ Wf.T + vf * c + bf)
        r = torch.sigmoid(x @ Wr.T + vr * c + br)
        c = f * c + (1 - f) * (x @ W.T)
        highway = x if Wh is None else x @ Wh.T
        hs.append(r * c + (1 - r) * highway)
    return torch.stack(hs), c


@pytest.mark.parametrize("input_size", [HID, IN])
def test_sru_matches_the_papers_equations(input_size):
    torch.manual_seed(1)
    cell = SRUCell(input_size, HID)
    with torch.no_grad():
        cell.bias.normal_()  # non-zero biases so that they are checked too
    xs, c0 = torch.randn(T, B, input_size), torch.randn(B, HID)
    W, Wf, Wr, *rest = cell.weight.view(-1, HID, input_size).unbind(0)
    expected_h, expected_c = naive_sru(xs, c0, W, Wf, Wr, cell.v[0], cell.v[1], cell.bias[0],
                                       cell.bias[1], rest[0] if rest else None)
    outs, (h, c) = cell.forward_sequence(xs, (torch.zeros(B, HID), c0))
    torch.testing.assert_close(outs, expected_h)
    torch.testing.assert_close(c, expected_c)
    # and the per-step path agrees with the same equations
    state = (torch.zeros(B, HID), c0)
    for t in range(T):
        state = cell(xs[t], state)
    torch.testing.assert_close(state[0], expected_h[-1])


def test_sru_recurrence_is_elementwise():
    cell = SRUCell(HID, HID)
    assert cell.v.shape == (2, HID), "SRU's recurrent weights are vectors (diagonal recurrence)"
    assert cell.weight.shape == (3 * HID, HID), "same sizes: no highway projection"
    assert SRUCell(IN, HID).weight.shape == (4 * HID, IN), "different sizes: projected highway"


def test_unknown_cell_is_a_clear_error():
    with pytest.raises(ValueError, match="allowed: rnn, lstm, gru, sru"):
        make_cell("transformer", IN, HID)
