"""lstmkit.LSTM / LSTMCell against torch.nn.LSTM / LSTMCell with copied weights: outputs, states, every gradient."""

from __future__ import annotations

import contextlib
import itertools
import zlib

import pytest
import torch

import lstmkit
from lstmkit.ops import use_fused_backend
from helpers import compare_modules, make_input

IMPLS = ["native", "fused", "fused-python", "reference", "auto"]  # fused-python: impl="fused" on the Python kernel
KINDS = ["batched", "unbatched", "packed", "unsorted"]


def build_pair(impl, input_size=5, hidden_size=6, **options):
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(input_size, hidden_size, **options)
    ours = lstmkit.LSTM(input_size, hidden_size, impl=impl.removesuffix("-python"), **options)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


CASES = [
    dict(num_layers=layers, bidirectional=bi, proj_size=proj, bias=bias, batch_first=bf, kind=kind, hx=hx)
    for layers, bi, proj, kind, (bias, bf, hx) in itertools.product(
        [1, 2, 3], [False, True], [0, 3], KINDS, [(True, False, True), (False, True, False), (True, True, False), (False, False, True)]
    )
]


def _case_id(case):
    return "-".join(
        [
            f"L{case['num_layers']}",
            "bi" if case["bidirectional"] else "uni",
            f"p{case['proj_size']}",
            "bias" if case["bias"] else "nobias",
            "bf" if case["batch_first"] else "tm",
            case["kind"],
            "hx" if case["hx"] else "nohx",
        ]
    )


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_parity_with_torch(impl, case):
    case = dict(case)
    kind, give_hx = case.pop("kind"), case.pop("hx")
    theirs, ours = build_pair(impl, **case)
    T, B = 6, 4
    x, lengths = make_input(kind, T, B, 5, case["batch_first"], seed=zlib.crc32(_case_id({**case, "kind": kind, "hx": give_hx}).encode()) % 1000)
    hx = None
    if give_hx:
        layers = case["num_layers"] * (2 if case["bidirectional"] else 1)
        batch = () if kind == "unbatched" else (B,)
        g = torch.Generator().manual_seed(1)
        hx = (
            torch.randn(layers, *batch, case["proj_size"] or 6, generator=g),
            torch.randn(layers, *batch, 6, generator=g),
        )
    kernel = use_fused_backend("python") if impl == "fused-python" else contextlib.nullcontext()
    with kernel:
        compare_modules(theirs, ours, x, lengths, hx, batch_first=case["batch_first"], packed_sorted=kind == "packed")


@pytest.mark.parametrize("impl", ["native", "fused", "reference", "auto"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_parity_with_torch(impl, bias, batched):
    torch.manual_seed(0)
    theirs = torch.nn.LSTMCell(5, 7, bias=bias)
    ours = lstmkit.LSTMCell(5, 7, bias=bias, impl=impl)
    ours.load_state_dict(theirs.state_dict())
    shape = (3, 5) if batched else (5,)
    x = torch.randn(shape)
    for hx in (None, (torch.randn(*shape[:-1], 7), torch.randn(*shape[:-1], 7))):
        results = []
        for module in (theirs, ours):
            module.zero_grad()
            xx = x.clone().requires_grad_()
            state = None if hx is None else tuple(t.clone().requires_grad_() for t in hx)
            h, c = module(xx, state)
            (h.sin().sum() + (c * c).sum()).backward()
            grads = [p.grad.clone() for p in module.parameters()]
            extra = [] if state is None else [state[0].grad, state[1].grad]
            results.append([h, c, xx.grad, *extra, *grads])
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_same_seed_gives_same_initial_weights():
    for options in (dict(num_layers=3, bidirectional=True, proj_size=2), dict(bias=False)):
        torch.manual_seed(123)
        theirs = torch.nn.LSTM(4, 5, **options)
        torch.manual_seed(123)
        ours = lstmkit.LSTM(4, 5, **options)
        assert list(theirs.state_dict()) == list(ours.state_dict())
        for (name, a), b in zip(theirs.state_dict().items(), ours.state_dict().values()):
            assert torch.equal(a, b), name
    torch.manual_seed(5)
    a = torch.nn.LSTMCell(4, 5)
    torch.manual_seed(5)
    b = lstmkit.LSTMCell(4, 5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_state_dicts_load_both_ways():
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2)
    ours = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2)
    ours.load_state_dict(theirs.state_dict())  # strict by default: same names and shapes
    back = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2)
    back.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(back(x)[0], theirs(x)[0])
    cell_theirs, cell_ours = torch.nn.LSTMCell(3, 4), lstmkit.LSTMCell(3, 4)
    cell_ours.load_state_dict(cell_theirs.state_dict())
    cell_theirs.load_state_dict(cell_ours.state_dict())


def test_all_weights_matches_torch_layout():
    theirs = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    ours = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True)
    assert [[p.shape for p in group] for group in theirs.all_weights] == [[p.shape for p in group] for group in ours.all_weights]
    assert ours._flat_weights_names == theirs._flat_weights_names


@pytest.mark.parametrize("impl", ["fused", "reference", "native"])
@pytest.mark.parametrize("bidirectional", [False])
def test_two_chunks_equal_whole_sequence(impl, bidirectional):
    """Carrying (h, c) from the first half into the second gives the whole sequence's result."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(4, 6, num_layers=2, proj_size=3, impl=impl)
    x = torch.randn(10, 3, 4)
    whole, (h, c) = lstm(x)
    first, state = lstm(x[:4])
    second, (h2, c2) = lstm(x[4:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h2, h, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c2, c, rtol=1e-5, atol=1e-6)
    # and the gradient flows through the carried state exactly as through the whole
    for p in lstm.parameters():
        p.grad = None
    whole.sum().backward()
    grads_whole = [p.grad.clone() for p in lstm.parameters()]
    for p in lstm.parameters():
        p.grad = None
    first, state = lstm(x[:4])
    second, _ = lstm(x[4:], state)
    (first.sum() + second.sum()).backward()
    for a, b in zip(grads_whole, (p.grad for p in lstm.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_float64_matches_torch(impl):
    theirs, ours = build_pair(impl, num_layers=2, bidirectional=True)
    theirs.double()
    ours.double()
    x, lengths = make_input("unsorted", 6, 4, 5, False, dtype=torch.float64)
    compare_modules(theirs, ours, x, lengths, packed_sorted=False, rtol=1e-10)
