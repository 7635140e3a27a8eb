"""Every validation error: the same exception type as torch, and a message that names the problem."""

from __future__ import annotations

import pytest
import torch

import lstmkit


def _raises_like_torch(make, call, match, theirs_too=True):
    """``make(cls)`` builds a module from a class; ``call(module)`` uses it. Both must raise the same type."""
    if theirs_too:
        with pytest.raises(Exception) as theirs:
            call(make(torch.nn.LSTM if make.__name__ != "cell" else torch.nn.LSTMCell))
        kind = theirs.type
    else:
        kind = Exception
    with pytest.raises(kind, match=match):
        call(make(lstmkit.LSTM if make.__name__ != "cell" else lstmkit.LSTMCell))


CONSTRUCTOR_ERRORS = [
    (dict(input_size=3, hidden_size=4, dropout=1.5), ValueError, r"dropout should be a number in range \[0, 1\]"),
    (dict(input_size=3, hidden_size=4, dropout=True), ValueError, r"dropout should be a number"),
    (dict(input_size=3, hidden_size=4, dropout="0.1"), ValueError, r"dropout should be a number"),
    (dict(input_size=3, hidden_size=0), ValueError, r"hidden_size must be greater than zero"),
    (dict(input_size=0, hidden_size=4), ValueError, r"input_size must be greater than zero"),
    (dict(input_size=3, hidden_size=4.0), TypeError, r"hidden_size should be of type int, got: float"),
    (dict(input_size=3.0, hidden_size=4), TypeError, r"input_size should be of type int, got: float"),
    (dict(input_size=3, hidden_size=4, num_layers=0), ValueError, r"num_layers must be greater than zero"),
    (dict(input_size=3, hidden_size=4, proj_size=-1), ValueError, r"proj_size should be a positive integer or zero"),
    (dict(input_size=3, hidden_size=4, proj_size=4), ValueError, r"proj_size has to be smaller than hidden_size"),
    (dict(input_size=3, hidden_size=4, bias=1), TypeError, r"bias should be of type bool, got: int"),
    (dict(input_size=3, hidden_size=4, batch_first="yes"), TypeError, r"batch_first should be of type bool, got: str"),
]


@pytest.mark.parametrize("kwargs,kind,match", CONSTRUCTOR_ERRORS)
def test_constructor_errors_match_torch(kwargs, kind, match):
    with pytest.raises(kind):
        torch.nn.LSTM(**kwargs)
    with pytest.raises(kind, match=match):
        lstmkit.LSTM(**kwargs)


def test_unknown_impl_is_rejected():
    with pytest.raises(ValueError, match=r"impl must be one of 'auto', 'native', 'fused', 'reference', got 'fast'"):
        lstmkit.LSTM(3, 4, impl="fast")
    with pytest.raises(ValueError, match=r"impl must be one of"):
        lstmkit.LSTMCell(3, 4, impl="cuda")


def test_dropout_with_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match=r"non-zero dropout expects num_layers greater than 1"):
        lstmkit.LSTM(3, 4, dropout=0.5)


def _pair(**kwargs):
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(3, 4, **kwargs)
    ours = lstmkit.LSTM(3, 4, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


FORWARD_ERRORS = [
    # (constructor kwargs, input, hx, message pattern)
    ({}, torch.randn(2, 3, 4, 3), None, r"LSTM: Expected input to be 2D or 3D, got 4D instead"),
    ({}, torch.randn(3), None, r"LSTM: Expected input to be 2D or 3D, got 1D instead"),
    ({}, torch.randn(5, 2, 7), None, r"input.size\(-1\) must be equal to input_size. Expected 3, got 7"),
    ({}, torch.randn(5, 2, 3).double(), None, r"RNN input dtype \(torch.float64\) does not match weight dtype \(torch.float32\)"),
    ({}, torch.randn(5, 2, 3), (torch.zeros(1, 3, 4), torch.zeros(1, 2, 4)), r"Expected hidden\[0\] size \(1, 2, 4\), got \[1, 3, 4\]"),
    ({}, torch.randn(5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(2, 2, 4)), r"Expected hidden\[1\] size \(1, 2, 4\), got \[2, 2, 4\]"),
    ({"proj_size": 2}, torch.randn(5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)), r"Expected hidden\[0\] size \(1, 2, 2\), got \[1, 2, 4\]"),
    ({"num_layers": 2, "bidirectional": True}, torch.randn(5, 2, 3), (torch.zeros(2, 2, 4), torch.zeros(4, 2, 4)), r"Expected hidden\[0\] size \(4, 2, 4\)"),
    ({}, torch.randn(5, 2, 3), (torch.zeros(2, 4), torch.zeros(2, 4)), r"For batched 3-D input, hx and cx should also be 3-D but got \(2-D, 2-D\) tensors"),
    ({}, torch.randn(5, 3), (torch.zeros(1, 1, 4), torch.zeros(1, 1, 4)), r"For unbatched 2-D input, hx and cx should also be 2-D but got \(3-D, 3-D\) tensors"),
    ({"batch_first": True}, torch.randn(2, 5, 3), (torch.zeros(1, 5, 4), torch.zeros(1, 5, 4)), r"Expected hidden\[0\] size \(1, 2, 4\), got \[1, 5, 4\]"),
]


@pytest.mark.parametrize("impl", ["auto", "fused", "reference"])
@pytest.mark.parametrize("kwargs,x,hx,match", FORWARD_ERRORS)
def test_forward_errors_match_torch(impl, kwargs, x, hx, match):
    theirs, ours = _pair(**kwargs)
    ours.impl = impl
    with pytest.raises(Exception) as raised_by_torch:
        theirs(x, hx)
    with pytest.raises(raised_by_torch.type, match=match):
        ours(x, hx)


def test_packed_input_with_wrong_features_or_dtype():
    from torch.nn.utils.rnn import pack_sequence

    _, ours = _pair()
    with pytest.raises(RuntimeError, match=r"input.size\(-1\) must be equal to input_size. Expected 3, got 5"):
        ours(pack_sequence([torch.randn(4, 5), torch.randn(2, 5)]))
    with pytest.raises(RuntimeError, match=r"RNN input dtype \(torch.float64\)"):
        ours(pack_sequence([torch.randn(4, 3).double()]))


def test_state_dtype_and_device_mismatch_named():
    """torch's kernel raises RuntimeErrors about matrices or devices here; ours are RuntimeErrors naming the state."""
    _, ours = _pair()
    x = torch.randn(5, 2, 3)
    with pytest.raises(RuntimeError, match=r"hidden\[0\] has dtype torch.float64 but the input has dtype torch.float32"):
        ours(x, (torch.zeros(1, 2, 4, dtype=torch.float64), torch.zeros(1, 2, 4)))
    with pytest.raises(RuntimeError, match=r"found input tensor at cpu and hidden tensor at meta"):
        ours(x, (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4, device="meta")))
    with pytest.raises(RuntimeError, match=r"found input tensor at meta and parameter tensor at cpu"):
        ours(torch.zeros(5, 2, 3, device="meta"))


OP_ERRORS = [
    (dict(x=torch.randn(5, 3)), r"x must be 3-D \(T, B, I\) without batch_sizes, got 2-D"),
    (dict(x=torch.randn(5, 2, 4)), r"x has 4 features but w_ih expects 3"),
    (dict(x=torch.randn(0, 2, 3)), r"x must have at least one time step, got shape \(0, 2, 3\)"),
    (dict(x=torch.randn(7, 3), batch_sizes=[2, 3, 2]), r"batch_sizes must be positive and non-increasing, got \[2, 3, 2\]"),
    (dict(x=torch.randn(6, 3), batch_sizes=[2, 2, 1]), r"batch_sizes sum to 5 but x has 6 rows"),
    (dict(x=torch.randint(0, 3, (5, 2, 3))), r"x must be a floating point tensor"),
    (dict(hx=(torch.zeros(3, 4), torch.zeros(2, 4))), r"h0 must have shape \(2, 4\), got \(3, 4\)"),
    (dict(w_hh=torch.randn(16, 5)), r"w_hh must have shape \(16, 4\), got \(16, 5\)"),
    (dict(b_ih=torch.randn(16, dtype=torch.float64)), r"b_ih has dtype torch.float64 but the input has dtype torch.float32"),
    (dict(impl="gpu"), r"impl must be one of"),
]


@pytest.mark.parametrize("overrides,match", OP_ERRORS)
def test_op_errors(overrides, match):
    args = dict(x=torch.randn(5, 2, 3), hx=None, w_ih=torch.randn(16, 3), w_hh=torch.randn(16, 4), b_ih=torch.randn(16), b_hh=None)
    args.update(overrides)
    x, hx = args.pop("x"), args.pop("hx")
    with pytest.raises(ValueError, match=match):
        lstmkit.ops.lstm_layer(x, hx, **args)
