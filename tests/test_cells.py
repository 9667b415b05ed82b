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


# -- fused sequence kernels -------------------------------------------------------------------

@pytest.fixture(scope="session")
def inductor():
    """SRU's fused recurrence is compiled with torch.compile (inductor; on CPU it needs a C++
    compiler). Tried once, on a tiny function: the tests that need it skip only if it fails."""
    try:
        torch.compile(lambda x: x.sin() + 1, dynamic=False)(torch.randn(3))
    except Exception as exc:  # noqa: BLE001 - any failure means no working inductor here
        pytest.skip(f"torch.compile (inductor) is unavailable here: {type(exc).__name__}: {exc}")


def run_sequence(cell, xs, h0, fused):
    """Outputs, last state and gradients wrt the inputs and every weight, for one loss."""
    outs, last = cell.forward_sequence(xs, cell.initial_state(h0), fused=fused)
    loss = outs.pow(2).sum() + sum(s.sin().sum() for s in last)
    grads = torch.autograd.grad(loss, [xs, h0, *cell.parameters()])
    return outs, last, grads


# SRU's fused path compiles once per shape (5-25 s each on a fresh machine): one shape here, and
# the compiled recurrence's own test below covers the function itself.
FUSED_CASES = [(n, b, t) for n in CELLS if n != "sru" for b in (1, 5) for t in (1, 8)] + [("sru", 5, 8)]


@pytest.mark.parametrize(("name", "batch", "steps"), FUSED_CASES)
def test_fused_sequence_matches_the_step_loop(name, batch, steps, request):
    if name == "sru":
        request.getfixturevalue("inductor")
    torch.manual_seed(0)
    cell = make_cell(name, IN, HID)
    xs = torch.randn(steps, batch, IN, requires_grad=True)
    h0 = torch.randn(batch, HID, requires_grad=True)
    loop_outs, loop_last, loop_grads = run_sequence(cell, xs, h0, fused=False)
    outs, last, grads = run_sequence(cell, xs, h0, fused=True)
    tol = dict(atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs, loop_outs, **tol)
    assert len(last) == len(loop_last)
    for s, loop_s in zip(last, loop_last):
        torch.testing.assert_close(s, loop_s, **tol)
    names = ["xs", "h0", *(n for n, _ in cell.named_parameters())]
    for pname, g, loop_g in zip(names, grads, loop_grads):
        torch.testing.assert_close(g, loop_g, **tol, msg=lambda m: f"gradient wrt {pname}: {m}")


@pytest.mark.parametrize("name", list(CELLS))
def test_sequence_is_the_plain_loop_on_cpu_by_default(name):
    """fused=None means fused on CUDA only: on CPU the loop runs, bit for bit."""
    torch.manual_seed(0)
    cell = make_cell(name, IN, HID)
    xs, h0 = torch.randn(T, B, IN), torch.randn(B, HID)
    default, _ = cell.forward_sequence(xs, cell.initial_state(h0))
    loop, _ = cell.forward_sequence(xs, cell.initial_state(h0), fused=False)
    assert torch.equal(default, loop)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_fused_sequence_runs_in_float32_under_autocast(name):
    """The sequence op must never see bf16 (cuDNN's RNN under autocast); the result comes back
    in the input's dtype."""
    torch.manual_seed(0)
    cell = make_cell(name, IN, HID)
    xs, h0 = torch.randn(T, B, IN), torch.randn(B, HID)
    plain, plain_last = cell.forward_sequence(xs, cell.initial_state(h0), fused=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto, auto_last = cell.forward_sequence(xs, cell.initial_state(h0), fused=True)
        low, low_last = cell.forward_sequence(xs.bfloat16(), cell.initial_state(h0.bfloat16()), fused=True)
    assert torch.equal(auto, plain) and all(torch.equal(a, p) for a, p in zip(auto_last, plain_last))
    assert low.dtype == torch.bfloat16 and all(s.dtype == torch.bfloat16 for s in low_last)
    torch.testing.assert_close(low.float(), plain, atol=0.05, rtol=0.05)


def test_sru_compiled_recurrence_matches_the_pure_one(inductor):
    from rnngan.models.cells import compiled_sru_recurrence, sru_recurrence

    torch.manual_seed(2)
    steps, batch, hid = 4, 3, 5
    args = [torch.randn(steps, batch, hid, requires_grad=True) for _ in range(4)]   # wx, wf, wr, highway
    args += [torch.randn(2, hid, requires_grad=True), torch.randn(2, hid, requires_grad=True),
             torch.randn(batch, hid, requires_grad=True)]                             # v, bias, c0
    results = []
    for fn in (sru_recurrence, compiled_sru_recurrence()):
        hs, c = fn(*args)
        grads = torch.autograd.grad((hs * torch.arange(1.0, hid + 1)).sum() + c.pow(2).sum(), args)
        results.append((hs, c, grads))
    (hs, c, grads), (hs_c, c_c, grads_c) = results
    tol = dict(atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(hs_c, hs, **tol)
    torch.testing.assert_close(c_c, c, **tol)
    for name, g, g_c in zip(["wx", "wf", "wr", "highway", "v", "bias", "c0"], grads, grads_c):
        torch.testing.assert_close(g_c, g, **tol, msg=lambda m: f"gradient wrt {name}: {m}")
