"""torch.nn.LSTM's and torch.nn.LSTMCell's contract, checked against torch itself on every impl.

Each case runs the same call on a torch module and on an lstmkit module with the same weights, through
:func:`helpers.assert_same_as_torch`: the same exception type and message, or the same result (structure, shapes,
dtypes, values). Shapes are tiny; float64 where gradients of gradients are compared.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmkit
from helpers import assert_same_as_torch

IMPLS = ("auto", "native", "fused", "reference")


def _pair(cls: str, impl: str, args: tuple, kwargs: dict, dtype=torch.float32):
    torch.manual_seed(0)
    theirs = getattr(nn, cls)(*args, **kwargs).to(dtype)
    ours = getattr(lstmkit, cls)(*args, impl=impl, **kwargs).to(dtype)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def like_torch(call, impl: str, cls: str = "LSTM", args=(3, 4), dtype=torch.float32, rtol=1e-5, **kwargs):
    """``call(module)`` on torch's module and on ours (same weights): same exception or same result."""
    theirs, ours = _pair(cls, impl, args, kwargs, dtype)
    return assert_same_as_torch(lambda: call(theirs), lambda: call(ours), rtol=rtol)


def _randn(*shape, dtype=torch.float64, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _data(out):
    return out.data if isinstance(out, PackedSequence) else out


def _module_input(m, x, lengths):
    return x if lengths is None else pack_padded_sequence(x, lengths, enforce_sorted=False)


# ---------------------------------------------------------------------------------------------- double backward


def double_backward(m, x, lengths=None):
    """Gradients with create_graph=True, then the gradients of a function of those: every tensor of both."""
    x = x.clone().requires_grad_()
    out, (h, c) = m(_module_input(m, x, lengths))
    loss = (_data(out) * _randn(*_data(out).shape, seed=2)).sum() + (h * h).sum() + c.sin().sum()
    params = list(m.parameters())
    first = torch.autograd.grad(loss, [x, *params], create_graph=True)
    second = torch.autograd.grad(sum((g * g).sum() for g in first), [x, *params], allow_unused=True)
    return first, tuple(s if s is not None else torch.zeros_like(p) for s, p in zip(second, [x, *params]))


def batched_grads(m, x, lengths=None):
    """torch.autograd.grad(..., is_grads_batched=True): three vector-Jacobian products in one call."""
    x = x.clone().requires_grad_()
    out, (h, c) = m(_module_input(m, x, lengths))
    outputs = (_data(out), h, c)
    vectors = tuple(_randn(3, *t.shape, seed=k + 3) for k, t in enumerate(outputs))
    return torch.autograd.grad(outputs, [x, *m.parameters()], vectors, is_grads_batched=True)


LAYER_CONFIGS = [
    dict(),
    dict(proj_size=2),
    dict(num_layers=2, bidirectional=True),
    dict(bias=False, batch_first=True),
]
PACKED_LENGTHS = torch.tensor([4, 2, 3])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kwargs", LAYER_CONFIGS, ids=str)
def test_double_backward(impl, kwargs):
    like_torch(lambda m: double_backward(m, _randn(4, 3, 3)), impl, dtype=torch.float64, **kwargs)


@pytest.mark.parametrize("impl", IMPLS)
def test_double_backward_packed(impl):
    like_torch(lambda m: double_backward(m, _randn(4, 3, 3), PACKED_LENGTHS), impl, dtype=torch.float64, proj_size=2)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kwargs", LAYER_CONFIGS, ids=str)
def test_batched_grads(impl, kwargs):
    like_torch(lambda m: batched_grads(m, _randn(4, 3, 3)), impl, dtype=torch.float64, **kwargs)


@pytest.mark.parametrize("impl", IMPLS)
def test_batched_grads_packed(impl):
    like_torch(lambda m: batched_grads(m, _randn(4, 3, 3), PACKED_LENGTHS), impl, dtype=torch.float64)


def func_transforms(m, x, lengths=None):
    """torch.func: grad over the parameters (functional_call), vjp in the input, and grad of a grad in the input.
    Packed input is packed outside the transforms (torch's packing cannot run inside them) and differentiated in
    its data."""
    packed = _module_input(m, x, lengths)
    data = _data(packed)
    as_input = (lambda d: d) if lengths is None else (lambda d: PackedSequence(d, *packed[1:]))
    params = {name: p.detach() for name, p in m.named_parameters()}

    def loss(params, data):
        out, (h, c) = torch.func.functional_call(m, params, (as_input(data),))
        return (_data(out) * _randn(*_data(out).shape, seed=2)).sum() + (h * h).sum() + c.sin().sum()

    by_params = torch.func.grad(loss)(params, data)
    out, vjp = torch.func.vjp(lambda d: _data(m(as_input(d))[0]), data)
    (by_input,) = vjp(_randn(*out.shape, seed=3))
    second = torch.func.grad(lambda d: torch.func.grad(loss, argnums=1)(params, d).pow(2).sum())(data)
    return [by_params[name] for name in params], by_input, second


def cell_double_backward(m, x):
    x = x.clone().requires_grad_()
    hx = (_randn(x.shape[0], m.hidden_size, seed=5), _randn(x.shape[0], m.hidden_size, seed=6))
    h, c = m(x, hx)
    params = list(m.parameters())
    first = torch.autograd.grad((h * h).sum() + c.sin().sum(), [x, *params], create_graph=True)
    return first, torch.autograd.grad(sum((g * g).sum() for g in first), [x, *params])


def cell_batched_grads(m, x):
    x = x.clone().requires_grad_()
    h, c = m(x)
    vectors = (_randn(3, *h.shape, seed=7), _randn(3, *c.shape, seed=8))
    return torch.autograd.grad((h, c), [x, *m.parameters()], vectors, is_grads_batched=True)


@pytest.mark.parametrize("impl", IMPLS)
def test_cell_double_backward_and_batched_grads(impl):
    like_torch(lambda m: cell_double_backward(m, _randn(2, 3)), impl, "LSTMCell", dtype=torch.float64)
    like_torch(lambda m: cell_batched_grads(m, _randn(2, 3)), impl, "LSTMCell", dtype=torch.float64)


VARIANTS = dict(layer_norm=True, peephole=True, cell_clip=0.5, zoneout=(0.3, 0.2), recurrent_dropout=0.25)


@pytest.mark.parametrize("call", [double_backward, batched_grads])
@pytest.mark.parametrize("packed", [False, True])
def test_variants_double_backward_and_batched_grads_fused_equals_reference(call, packed):
    """Torch has no variants, so the reference equations are the oracle; in training, so the masks count too
    (both draw them in the same place from the same seed)."""
    def make(impl):
        torch.manual_seed(0)
        return lstmkit.LSTM(3, 4, bidirectional=True, impl=impl, **VARIANTS).double()

    def run(m):
        torch.manual_seed(1)
        return call(m, _randn(4, 3, 3), PACKED_LENGTHS if packed else None)

    assert_same_as_torch(lambda: run(make("reference")), lambda: run(make("fused")))


@pytest.mark.parametrize("impl", IMPLS)
def test_torch_func_grad_and_vjp(impl):
    """torch.func.grad / vjp over every impl as over torch.nn.LSTM. The operator behind the fused path needs an
    autograd.Function of its own under torch.func (lstmkit.ops.layer_op._LayerFunction)."""
    like_torch(lambda m: func_transforms(m, _randn(4, 3, 3)), impl, dtype=torch.float64, proj_size=2, num_layers=2,
               bidirectional=True)


@pytest.mark.parametrize("impl", ["auto", "fused"])
def test_torch_func_packed_and_variants_equal_reference(impl):
    """Packed input, where torch.nn.LSTM itself fails under torch.func ("Cannot access data pointer of Tensor that
    doesn't have storage"), and the variants in training: the reference equations are the oracle."""
    def run(impl):
        torch.manual_seed(0)
        m = lstmkit.LSTM(3, 4, bidirectional=True, proj_size=2, impl=impl, **VARIANTS).double()
        return func_transforms(m, _randn(4, 3, 3), PACKED_LENGTHS)

    assert_same_as_torch(lambda: run("reference"), lambda: run(impl))


def test_fused_double_backward_is_not_zero():
    """The second-order terms exist (a zero Hessian-vector product would pass a comparison of zeros)."""
    torch.manual_seed(0)
    m = lstmkit.LSTM(3, 4, impl="fused").double()
    _, second = double_backward(m, _randn(4, 3, 3))
    assert all(s.abs().sum() > 0 for s in second)


# ---------------------------------------------------------------------------------------------- empty shapes


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kwargs", LAYER_CONFIGS + [dict(proj_size=2, num_layers=2, bidirectional=True)], ids=str)
def test_empty_batch_gives_torch_shapes(impl, kwargs):
    x = torch.zeros(5, 0, 3)
    like_torch(lambda m: m(x), impl, **kwargs)
    like_torch(lambda m: m(x.double()), impl, dtype=torch.float64, **kwargs)


def _step_backward(m, x):
    x = x.clone().requires_grad_()
    out = m(x)
    h, c = out if isinstance(m, (nn.LSTMCell, lstmkit.LSTMCell)) else out[1]
    (h.sum() + c.sum()).backward()
    return out, x.grad, [p.grad for p in m.parameters()]


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_batch_backward(impl):
    like_torch(lambda m: _step_backward(m, torch.zeros(5, 0, 3)), impl)
    like_torch(lambda m: _step_backward(m, torch.zeros(0, 3)), impl, "LSTMCell")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "shape,kwargs",
    [((0, 2, 3), {}), ((0, 0, 3), {}), ((0, 3), {}), ((2, 0, 3), dict(batch_first=True)), ((0, 2, 3), dict(proj_size=2))],
    ids=str,
)
def test_no_time_steps_raise_torch_error(impl, shape, kwargs):
    like_torch(lambda m: m(torch.zeros(shape)), impl, **kwargs)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("args,x", [((10, 20), torch.randn(0, 10)), ((10, 0), torch.randn(3, 10)), ((10, 0), torch.randn(10))], ids=str)
def test_cell_empty_shapes(impl, args, x):
    like_torch(lambda m: m(x), impl, "LSTMCell", args=args)
    like_torch(lambda m: _step_backward(m, x), impl, "LSTMCell", args=args)


# ---------------------------------------------------------------------------------------------- LSTMCell errors


def _h(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype)


CELL_CALLS = [
    # input, hx: one line per way to get a cell call wrong
    (torch.randn(3, 10), (_h(3, 21), _h(3, 20))),  # hidden size of h
    (torch.randn(3, 10), (_h(3, 20), _h(3, 21))),  # hidden size of c
    (torch.randn(3, 10), (_h(2, 20), _h(3, 20))),  # batch of h
    (torch.randn(3, 10), (_h(3, 20), _h(2, 20))),  # batch of c
    (torch.randn(3, 10), (_h(3, 21, dtype=torch.float64), _h(3, 20))),  # size is checked before dtype
    (torch.randn(3, 10), (_h(3, 20, dtype=torch.float64), _h(3, 20))),  # dtype of h
    (torch.randn(3, 10, dtype=torch.float64), None),  # dtype of the input
    (torch.ones(3, 10, dtype=torch.long), None),  # integer input
    (torch.randn(3, 11), None),  # input size
    (torch.randn(3, 11), (_h(3, 21), _h(3, 20))),  # input size before hidden size
    (torch.randn(3, 10), _h(3, 20)),  # hx not a tuple: TypeError
    (torch.randn(3, 10), (_h(3, 20), _h(3, 20), _h(3, 20))),  # three states
    (torch.randn(3, 10), (_h(3, 20),)),  # one state
    (torch.randn(10), (_h(3, 20), _h(3, 20))),  # unbatched input, batched states
    (torch.randn(3, 10), (_h(20), _h(20))),  # batched input, unbatched states
    (torch.randn(3, 10), (_h(20), _h(3, 20))),  # mixed
    (torch.randn(2, 3, 10), None),  # 3-D input
    (torch.randn(3, 10), (_h(1, 3, 20), _h(3, 20))),  # 3-D h
    (torch.randn(3, 10), (None, _h(3, 20))),  # a state that is None
    (pack_padded_sequence(torch.randn(2, 1, 10), torch.tensor([2])), None),  # packed input
    (torch.randn(3, 10), pack_padded_sequence(torch.randn(2, 1, 20), torch.tensor([2]))),  # packed state
    (torch.randn(3, 10), [_h(3, 20), _h(3, 20)]),  # a list works, as in torch
    (torch.randn(3, 10), (_h(3, 20), _h(3, 20, dtype=torch.float64))),  # a float64 c promotes, as in torch
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("x,hx", CELL_CALLS)
def test_cell_errors_and_results_match_torch(impl, x, hx):
    like_torch(lambda m: m(x, hx), impl, "LSTMCell", args=(10, 20))


@pytest.mark.parametrize("impl", IMPLS)
def test_cell_runs_without_a_training_attribute(impl):
    """torch's cell never reads self.training; neither does ours unless zoneout needs it."""
    x = torch.randn(3, 10)

    def call(m):
        del m.training
        return m(x)

    like_torch(call, impl, "LSTMCell", args=(10, 20))
    cell = lstmkit.LSTMCell(10, 20, impl=impl if impl != "native" else "auto", layer_norm=True, peephole=True, cell_clip=1.0)
    del cell.training
    assert cell(torch.randn(3, 10))[0].shape == (3, 20)


# ---------------------------------------------------------------------------------------------- repr


@pytest.mark.parametrize(
    "args,kwargs",
    [
        ((3, 4), {}),
        ((3, 4, 2), dict(proj_size=2, bias=False, batch_first=True, dropout=0.5, bidirectional=True)),
        ((3, 4), dict(proj_size=3, dropout=0.0)),
    ],
    ids=str,
)
def test_lstm_repr_is_torch_then_variants(args, kwargs):
    like_torch(repr, "auto", args=args, **kwargs)
    torch_part = repr(nn.LSTM(*args, **kwargs))[:-1]
    ours = lstmkit.LSTM(*args, **kwargs, impl="fused", layer_norm=True, zoneout=0.1)
    assert repr(ours) == torch_part + ", impl='fused', zoneout=(0.1, 0.1), layer_norm=True)"


@pytest.mark.parametrize("bias", [True, False, 0, "no"])
def test_cell_repr_is_torch_then_variants(bias):
    assert repr(lstmkit.LSTMCell(3, 4, bias=bias)) == repr(nn.LSTMCell(3, 4, bias=bias))
    assert repr(lstmkit.LSTMCell(3, 4, bias=bias, peephole=True)) == repr(nn.LSTMCell(3, 4, bias=bias))[:-1] + ", peephole=True)"


# ---------------------------------------------------------------------------------------------- RNNBase API


def _api_calls(m, x, batch_sizes=None):
    """Every RNNBase / nn.LSTM method that user code calls, with their results."""
    hx = (torch.zeros(m.get_expected_hidden_size(x, batch_sizes)), torch.zeros(m.get_expected_cell_size(x, batch_sizes)))
    m.check_forward_args(x, hx, batch_sizes)
    m.check_input(x, batch_sizes)
    m.check_hidden_size(hx[0], m.get_expected_hidden_size(x, batch_sizes))
    permutation = torch.tensor([1, 0])
    return (
        m.flatten_parameters(),
        m.get_expected_hidden_size(x, batch_sizes),
        m.get_expected_cell_size(x, batch_sizes),
        m.permute_hidden(hx, None) is hx,
        m.permute_hidden((_randn(1, 2, m.get_expected_hidden_size(x, None)[2]), _randn(1, 2, 4)), permutation),
        list(m._flat_weights),
        list(m._flat_weights_names),
        m.all_weights,
        m.mode,
        isinstance(m, nn.RNNBase),
    )


@pytest.mark.parametrize("kwargs", [dict(), dict(proj_size=2, batch_first=True), dict(num_layers=2, bidirectional=True)], ids=str)
def test_rnnbase_api(kwargs):
    x = torch.randn(5, 2, 3)
    like_torch(lambda m: _api_calls(m, x), "auto", **kwargs)
    like_torch(lambda m: _api_calls(m, torch.randn(7, 3), torch.tensor([2, 2, 2, 1])), "auto", **kwargs)


API_ERRORS = [
    lambda m: m.check_input(torch.randn(5, 2, 7), None),
    lambda m: m.check_input(torch.randn(5, 3), None),
    lambda m: m.check_input(torch.randn(5, 2, 3).double(), None),
    lambda m: m.check_hidden_size(torch.zeros(1, 3, 4), (1, 2, 4)),
    lambda m: m.check_forward_args(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 3, 4)), None),
    lambda m: m.check_forward_args(torch.randn(5, 2, 3), (torch.zeros(2, 2, 4), torch.zeros(1, 2, 4)), None),
]


@pytest.mark.parametrize("call", API_ERRORS)
def test_rnnbase_api_errors(call):
    like_torch(call, "auto")


def test_flat_weights_follow_the_parameters():
    """_flat_weights stay the module's parameters through assignment, .to() and copies (RNNBase's bookkeeping)."""
    m = lstmkit.LSTM(3, 4, num_layers=2)
    m.weight_hh_l1 = nn.Parameter(torch.ones(16, 4))
    assert m._flat_weights[m._flat_weights_names.index("weight_hh_l1")] is m.weight_hh_l1
    for copied in (m.double(), copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert all(w is getattr(copied, n) for w, n in zip(copied._flat_weights, copied._flat_weights_names))
    assert m._flat_weights[0].dtype == torch.float64


def test_code_written_for_nn_lstm_runs_unchanged():
    """The AWD-LSTM idiom: flatten_parameters() before every call, on a module built by the same seed."""
    torch.manual_seed(0)
    theirs = nn.LSTM(3, 4, 2, dropout=0.0)
    torch.manual_seed(0)
    ours = lstmkit.LSTM(3, 4, 2, dropout=0.0)
    x = torch.randn(5, 2, 3)

    def step(m):
        m.flatten_parameters()
        return m(x)

    assert_same_as_torch(lambda: step(theirs), lambda: step(ours))


def test_state_dicts_load_both_ways_and_variants_register():
    torch.manual_seed(0)
    theirs = nn.LSTM(3, 4, 2, proj_size=2, bidirectional=True)
    ours = lstmkit.LSTM(3, 4, 2, proj_size=2, bidirectional=True)
    ours.load_state_dict(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    variant = lstmkit.LSTM(3, 4, 2, proj_size=2, bidirectional=True, layer_norm=True, peephole=True)
    missing = variant.load_state_dict(theirs.state_dict(), strict=False).missing_keys
    assert sorted(missing) == sorted(n for n, _ in variant.named_parameters() if n.startswith(("ln_", "weight_c")))
    assert len(missing) == 2 * 2 * 9
    assert isinstance(variant, nn.RNNBase) and not isinstance(variant, nn.LSTM)


def test_weight_dropout_needs_no_parameter_surgery():
    torch.manual_seed(0)
    m = lstmkit.LSTM(3, 4, weight_dropout=0.5, impl="fused")
    raw = m.weight_hh_l0.detach().clone()
    x = torch.randn(5, 2, 3)
    first, second = m(x)[0], m(x)[0]
    assert not torch.equal(first, second)  # a fresh mask per call
    second.sum().backward()
    assert torch.equal(m.weight_hh_l0, raw) and m.weight_hh_l0.grad is not None
    assert m._flat_weights[1] is m.weight_hh_l0 and isinstance(m.weight_hh_l0, nn.Parameter)
    m.eval()
    assert torch.equal(m(x)[0], m(x)[0])


def test_same_seed_same_initial_weights_as_torch():
    for cls, args in (("LSTM", (3, 4, 2)), ("LSTMCell", (3, 4))):
        torch.manual_seed(0)
        theirs = getattr(nn, cls)(*args)
        torch.manual_seed(0)
        ours = getattr(lstmkit, cls)(*args, peephole=True)
        for name, p in theirs.named_parameters():
            assert torch.equal(p, getattr(ours, name)), name


# ---------------------------------------------------------------------------------------------- autocast


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("module_dtype", [torch.bfloat16, torch.float32])
def test_autocast_bfloat16_like_torch(impl, module_dtype):
    """Under CPU autocast torch runs a padded LSTM in bfloat16 whatever the module's dtype, and the cell's matmuls
    (its float32 state keeps the result float32); so does every impl, with torch's result dtypes."""
    x = _randn(5, 2, 3, dtype=torch.float32)

    def call(m):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return m(x)

    like_torch(call, impl, dtype=module_dtype, rtol=3e-2)
    like_torch(call, impl, dtype=module_dtype, rtol=3e-2, num_layers=2, bidirectional=True)
    like_torch(call, impl, "LSTMCell", dtype=module_dtype, rtol=3e-2)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("packed", [False, True])
def test_autocast_bfloat16_where_torch_leaves_onednn(impl, packed):
    """With proj_size or ragged packed input torch's per-step fallback returns some results in float32 (c_n; all
    of them for ragged packed input, which it does not cast); every impl here returns all in bfloat16, the
    values within bfloat16's precision of torch's."""
    x = _randn(5, 3, 3, dtype=torch.float32)

    def call(m):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, (h, c) = m(pack_padded_sequence(x, torch.tensor([5, 3, 2])) if packed else x)
        return _data(out), h, c

    theirs, ours = _pair("LSTM", impl, (3, 4), dict(proj_size=0 if packed else 2))
    mine = call(ours)
    assert [t.dtype for t in mine] == [torch.bfloat16] * 3
    assert_same_as_torch(lambda: tuple(t.float() for t in call(theirs)), lambda: tuple(t.float() for t in mine), rtol=6e-2)


def test_autocast_fused_variants_run_in_bfloat16():
    m = lstmkit.LSTM(3, 4, impl="fused", layer_norm=True, peephole=True).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (h, c) = m(torch.randn(5, 2, 3))
    assert out.dtype == h.dtype == c.dtype == torch.bfloat16
    out.float().sum().backward()
    assert m.ln_ih_weight_l0.grad is not None


def test_packed_errors_are_runtime_errors_like_torch():
    """torch leaves packed input to its kernel (RuntimeError); ours says the same type in clearer words."""
    for x in (torch.randn(4, 2, 5), torch.randn(4, 2, 3).double()):
        packed = pack_padded_sequence(x, torch.tensor([4, 2]))
        with pytest.raises(RuntimeError):
            nn.LSTM(3, 4)(packed)
        with pytest.raises(RuntimeError, match=r"input.size\(-1\) must be equal to input_size|RNN input dtype"):
            lstmkit.LSTM(3, 4)(packed)
