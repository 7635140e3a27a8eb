"""Tests for lstmkit.convert.

Every foreign convention gets a small reference implementation below, written from that convention's own
formulas and storage layout (not from torch's). Fed the converted weights, each must reproduce torch.nn.LSTM over a
whole sequence, for every layer and direction of a stacked bidirectional LSTM.

Shapes: T time steps, B batch, I input size, H hidden size.
"""

import doctest

import numpy as np
import pytest
import torch

import lstmkit.convert
import lstmkit.explain
from lstmkit.convert import layouts
from lstmkit.convert import (
    cell_to_layer,
    from_course_cell,
    from_haste,
    from_keras,
    layer_to_cell,
    to_course_cell,
    to_haste,
    to_keras,
)

T, B, I, H = 6, 3, 4, 5
NUM_LAYERS = 2
LAYERS_AND_DIRECTIONS = [(layer, reverse) for layer in range(NUM_LAYERS) for reverse in (False, True)]


def make_lstm(dtype=torch.float64, seed=0, **kwargs) -> torch.nn.LSTM:
    torch.manual_seed(seed)
    options = dict(num_layers=NUM_LAYERS, bidirectional=True) | kwargs
    return torch.nn.LSTM(I, H, dtype=dtype, **options)


def make_input(dtype=torch.float64) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(T, B, I, dtype=dtype)  # (T, B, I)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# ---------------------------------------------------------------------------------------------------------------
# Reference implementations of the foreign conventions. Each runs one direction of one layer:
# x (T, B, I) numpy -> outputs (T, B, H), final h (B, H), final c (B, H), from zero states.
# ---------------------------------------------------------------------------------------------------------------


def time_steps(reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


def keras_reference(x, kernel, recurrent_kernel, bias, reverse):
    """keras.layers.LSTMCell: z = x W + h U + b, blocks i, f, c, o, kernels stored (in, 4H)."""
    batch, hidden = x.shape[1], recurrent_kernel.shape[0]
    h, c = np.zeros((batch, hidden)), np.zeros((batch, hidden))
    outputs = np.zeros((x.shape[0], batch, hidden))
    for t in time_steps(reverse):
        z = x[t] @ kernel + h @ recurrent_kernel + bias  # (B, 4H)
        z_i, z_f, z_c, z_o = np.split(z, 4, axis=1)  # (B, H) each
        c = sigmoid(z_f) * c + sigmoid(z_i) * np.tanh(z_c)
        h = sigmoid(z_o) * np.tanh(c)
        outputs[t] = h
    return outputs, h, c


def haste_reference(x, kernel, recurrent_kernel, bias, reverse):
    """haste LSTM: v = h R + x K + b, blocks i, g, f, o, kernels stored (in, 4H)."""
    batch, hidden = x.shape[1], recurrent_kernel.shape[0]
    h, c = np.zeros((batch, hidden)), np.zeros((batch, hidden))
    outputs = np.zeros((x.shape[0], batch, hidden))
    for t in time_steps(reverse):
        v = h @ recurrent_kernel + x[t] @ kernel + bias  # (B, 4H)
        v_i, v_g, v_f, v_o = np.split(v, 4, axis=1)  # (B, H) each
        c = sigmoid(v_f) * c + sigmoid(v_i) * np.tanh(v_g)
        h = sigmoid(v_o) * np.tanh(c)
        outputs[t] = h
    return outputs, h, c


def course_reference(x, course_state_dict, reverse):
    """fast.ai course LSTMCell: ih(x) + hh(h) with nn.Linear (out, in) weights, blocks in, forget, out, cell."""
    weights = {name: value.numpy() for name, value in course_state_dict.items()}
    batch, hidden = x.shape[1], weights["hh.weight"].shape[1]
    h, c = np.zeros((batch, hidden)), np.zeros((batch, hidden))
    outputs = np.zeros((x.shape[0], batch, hidden))
    for t in time_steps(reverse):
        ih = x[t] @ weights["ih.weight"].T + weights["ih.bias"]  # (B, 4H)
        hh = h @ weights["hh.weight"].T + weights["hh.bias"]  # (B, 4H)
        gates = np.split(ih + hh, 4, axis=1)  # (B, H) each
        ingate, forgetgate, outgate = (sigmoid(gate) for gate in gates[:3])
        cellgate = np.tanh(gates[3])
        c = forgetgate * c + ingate * cellgate
        h = outgate * np.tanh(c)
        outputs[t] = h
    return outputs, h, c


def run_keras_direction(state_dict, x, layer, reverse):
    weights = [w.numpy() for w in to_keras(state_dict, layer=layer, reverse=reverse)]
    return keras_reference(x, *weights, reverse)


def run_haste_direction(state_dict, x, layer, reverse):
    weights = [w.numpy() for w in to_haste(state_dict, layer=layer, reverse=reverse)]
    return haste_reference(x, *weights, reverse)


def run_course_direction(state_dict, x, layer, reverse):
    return course_reference(x, to_course_cell(state_dict, layer=layer, reverse=reverse), reverse)


def run_stacked(run_direction, state_dict, x):
    """A stacked bidirectional LSTM built from one-direction references; returns torch.nn.LSTM's outputs."""
    layer_input, h_n, c_n = x, [], []
    for layer in range(NUM_LAYERS):
        directions = [run_direction(state_dict, layer_input, layer, reverse) for reverse in (False, True)]
        layer_input = np.concatenate([output for output, _, _ in directions], axis=-1)  # (T, B, 2H)
        h_n += [h for _, h, _ in directions]
        c_n += [c for _, _, c in directions]
    return layer_input, np.stack(h_n), np.stack(c_n)  # (T, B, 2H), (2 * NUM_LAYERS, B, H) twice


@pytest.mark.parametrize(
    "run_direction",
    [run_keras_direction, run_haste_direction, run_course_direction],
    ids=["keras", "haste", "course"],
)
def test_reference_with_converted_weights_matches_torch_lstm(run_direction):
    lstm, x = make_lstm(), make_input()
    with torch.no_grad():
        expected_output, (expected_h_n, expected_c_n) = lstm(x)

    output, h_n, c_n = run_stacked(run_direction, lstm.state_dict(), x.numpy())

    np.testing.assert_allclose(output, expected_output.numpy(), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(h_n, expected_h_n.numpy(), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(c_n, expected_c_n.numpy(), rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------------------------------------------------------
# Gate order, checked directly: fill torch's four row blocks with their block index and see where each lands.
# ---------------------------------------------------------------------------------------------------------------


def labelled_state_dict() -> dict:
    block_index = torch.arange(4.0).repeat_interleave(H)  # (4H,): 0 for i, 1 for f, 2 for g, 3 for o
    return {
        "weight_ih_l0": block_index[:, None].expand(4 * H, I).clone(),  # (4H, I)
        "weight_hh_l0": block_index[:, None].expand(4 * H, H).clone(),  # (4H, H)
        "bias_ih_l0": block_index.clone(),
        "bias_hh_l0": torch.zeros(4 * H),
    }


def blocks_along(tensor: torch.Tensor, dim: int) -> list:
    return [int(block.unique().item()) for block in tensor.chunk(4, dim)]


@pytest.mark.parametrize(
    "to_foreign, expected_blocks",
    [(to_keras, [0, 1, 2, 3]), (to_haste, [0, 2, 1, 3])],
    ids=["keras i,f,c,o", "haste i,g,f,o"],
)
def test_transposed_conventions_put_gate_blocks_in_their_order(to_foreign, expected_blocks):
    kernel, recurrent_kernel, bias = to_foreign(labelled_state_dict())
    assert kernel.shape == (I, 4 * H) and recurrent_kernel.shape == (H, 4 * H) and bias.shape == (4 * H,)
    assert blocks_along(kernel, dim=1) == expected_blocks
    assert blocks_along(recurrent_kernel, dim=1) == expected_blocks
    assert blocks_along(bias, dim=0) == expected_blocks


def test_course_cell_puts_gate_blocks_in_order_i_f_o_g():
    course = to_course_cell(labelled_state_dict())
    assert course["ih.weight"].shape == (4 * H, I) and course["hh.weight"].shape == (4 * H, H)
    for name in ("ih.weight", "hh.weight", "ih.bias"):
        assert blocks_along(course[name], dim=0) == [0, 1, 3, 2]


# ---------------------------------------------------------------------------------------------------------------
# Round trips.
# ---------------------------------------------------------------------------------------------------------------


def assert_same_bits(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        assert actual[name].dtype == expected[name].dtype, name
        assert torch.equal(actual[name], expected[name]), name


def test_course_cell_round_trip_is_exact_for_every_layer_and_direction():
    original = make_lstm().state_dict()
    rebuilt = {}
    for layer, reverse in LAYERS_AND_DIRECTIONS:
        rebuilt |= from_course_cell(to_course_cell(original, layer, reverse), layer, reverse)
    assert_same_bits(rebuilt, dict(original))

    fresh = make_lstm(seed=10)
    fresh.load_state_dict(rebuilt)
    assert_same_bits(dict(fresh.state_dict()), dict(original))


SINGLE_BIAS_CONVENTIONS = pytest.mark.parametrize(
    "to_foreign, from_foreign", [(to_keras, from_keras), (to_haste, from_haste)], ids=["keras", "haste"]
)


@SINGLE_BIAS_CONVENTIONS
def test_torch_to_single_bias_convention_and_back_keeps_weights_and_bias_sum_exactly(to_foreign, from_foreign):
    lstm = make_lstm()
    original = lstm.state_dict()
    rebuilt = {}
    for layer, reverse in LAYERS_AND_DIRECTIONS:
        rebuilt |= from_foreign(*to_foreign(original, layer, reverse), layer=layer, reverse=reverse)
    assert rebuilt.keys() == original.keys()
    for name in original:
        if name.startswith("weight"):
            assert torch.equal(rebuilt[name], original[name]), name
        elif name.startswith("bias_ih"):
            bias_hh = name.replace("bias_ih", "bias_hh")
            assert torch.equal(rebuilt[name], original[name] + original[bias_hh]), name
            assert torch.equal(rebuilt[bias_hh], torch.zeros_like(original[bias_hh])), bias_hh

    reloaded = make_lstm(seed=10)
    reloaded.load_state_dict(rebuilt)
    x = make_input()
    with torch.no_grad():
        expected_output, (expected_h_n, expected_c_n) = lstm(x)
        output, (h_n, c_n) = reloaded(x)
    torch.testing.assert_close(output, expected_output, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(h_n, expected_h_n, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(c_n, expected_c_n, rtol=1e-5, atol=1e-8)


@SINGLE_BIAS_CONVENTIONS
@pytest.mark.parametrize("layer, reverse", LAYERS_AND_DIRECTIONS)
def test_single_bias_convention_to_torch_and_back_is_exact(to_foreign, from_foreign, layer, reverse):
    rng = np.random.default_rng(layer + 2 * reverse)
    kernel = rng.standard_normal((I, 4 * H)).astype(np.float32)
    recurrent_kernel = rng.standard_normal((H, 4 * H)).astype(np.float32)
    bias = rng.standard_normal(4 * H).astype(np.float32)

    torch_entries = from_foreign(kernel, recurrent_kernel, bias, layer=layer, reverse=reverse)
    back = to_foreign(torch_entries, layer=layer, reverse=reverse)

    for converted, original in zip(back, (kernel, recurrent_kernel, bias)):
        assert converted.dtype == torch.float32
        assert torch.equal(converted, torch.from_numpy(original))


def test_converted_keras_weights_load_into_torch_lstm_with_matching_shapes():
    lstm = torch.nn.LSTM(I, H)
    entries = from_keras(*to_keras(lstm.state_dict()))
    assert {name: tuple(value.shape) for name, value in entries.items()} == {
        "weight_ih_l0": (4 * H, I),
        "weight_hh_l0": (4 * H, H),
        "bias_ih_l0": (4 * H,),
        "bias_hh_l0": (4 * H,),
    }
    assert str(torch.nn.LSTM(I, H).load_state_dict(entries)) == "<All keys matched successfully>"


def test_bias_free_lstm_converts_with_zero_biases():
    state_dict = make_lstm(bias=False).state_dict()
    _, _, keras_bias = to_keras(state_dict, layer=1, reverse=True)
    _, _, haste_bias = to_haste(state_dict)
    course = to_course_cell(state_dict)
    for bias in (keras_bias, haste_bias, course["ih.bias"], course["hh.bias"]):
        assert bias.shape == (4 * H,) and not bias.any()


# ---------------------------------------------------------------------------------------------------------------
# Inputs and outputs: arrays or tensors in, fresh tensors out.
# ---------------------------------------------------------------------------------------------------------------


def test_read_only_arrays_lists_and_float64_are_accepted_and_dtype_is_kept():
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((I, 4 * H))
    kernel.flags.writeable = False  # what np.asarray gives for a JAX array, e.g. from keras get_weights()
    recurrent_kernel = rng.standard_normal((H, 4 * H)).tolist()
    bias = torch.from_numpy(rng.standard_normal(4 * H))

    entries = from_keras(kernel, recurrent_kernel, bias)

    assert all(isinstance(value, torch.Tensor) and value.dtype == torch.float64 for value in entries.values())
    torch.testing.assert_close(entries["weight_ih_l0"], torch.from_numpy(kernel.T.copy()), rtol=0, atol=0)


def test_results_share_no_memory_with_inputs():
    lstm = make_lstm()
    original = {name: value.clone() for name, value in lstm.state_dict().items()}
    results = [
        *to_keras(lstm.state_dict()),
        *to_haste(lstm.state_dict()),
        *to_course_cell(lstm.state_dict()).values(),
        *layer_to_cell(lstm.state_dict()).values(),
    ]
    for result in results:
        result.fill_(7.0)
    assert_same_bits(dict(lstm.state_dict()), original)

    cell_state_dict = torch.nn.LSTMCell(I, H).state_dict()
    kept = {name: value.clone() for name, value in cell_state_dict.items()}
    for result in cell_to_layer(cell_state_dict).values():
        result.fill_(7.0)
    assert_same_bits(dict(cell_state_dict), kept)


def test_results_do_not_require_grad_when_given_parameters():
    lstm = torch.nn.LSTM(I, H)
    kernel, recurrent_kernel, bias = to_keras(dict(lstm.named_parameters()))
    assert not (kernel.requires_grad or recurrent_kernel.requires_grad or bias.requires_grad)


# ---------------------------------------------------------------------------------------------------------------
# torch.nn.LSTMCell <-> torch.nn.LSTM renaming.
# ---------------------------------------------------------------------------------------------------------------


def test_cell_to_layer_gives_an_lstm_that_steps_like_the_cell():
    torch.manual_seed(2)
    cell = torch.nn.LSTMCell(I, H, dtype=torch.float64)
    lstm = torch.nn.LSTM(I, H, dtype=torch.float64)
    lstm.load_state_dict(cell_to_layer(cell.state_dict()))
    x = torch.randn(B, I, dtype=torch.float64)  # (B, I)
    h0, c0 = torch.randn(2, B, H, dtype=torch.float64)  # (B, H) each

    with torch.no_grad():
        h1, c1 = cell(x, (h0, c0))
        output, (h_n, c_n) = lstm(x[None], (h0[None], c0[None]))

    torch.testing.assert_close(output[0], h1, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(h_n[0], h1, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(c_n[0], c1, rtol=1e-5, atol=1e-8)


def test_layer_to_cell_cells_rebuild_one_step_of_a_stacked_bidirectional_lstm():
    lstm, x = make_lstm(), make_input()[:1]  # (1, B, I): one step, where both directions see the same input
    cells = {}
    for layer, reverse in LAYERS_AND_DIRECTIONS:
        cells[layer, reverse] = torch.nn.LSTMCell(I if layer == 0 else 2 * H, H, dtype=torch.float64)
        cells[layer, reverse].load_state_dict(layer_to_cell(lstm.state_dict(), layer=layer, reverse=reverse))

    with torch.no_grad():
        expected_output, (expected_h_n, expected_c_n) = lstm(x)
        layer_input, h_n, c_n = x[0], [], []
        for layer in range(NUM_LAYERS):
            states = [cells[layer, reverse](layer_input) for reverse in (False, True)]
            layer_input = torch.cat([h for h, _ in states], dim=-1)  # (B, 2H)
            h_n += [h for h, _ in states]
            c_n += [c for _, c in states]

    torch.testing.assert_close(layer_input, expected_output[0], rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(torch.stack(h_n), expected_h_n, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(torch.stack(c_n), expected_c_n, rtol=1e-5, atol=1e-8)


def test_layer_to_cell_and_back_is_exact_for_every_layer_and_direction():
    original = make_lstm().state_dict()
    rebuilt = {}
    for layer, reverse in LAYERS_AND_DIRECTIONS:
        rebuilt |= cell_to_layer(layer_to_cell(original, layer, reverse), layer, reverse)
    assert_same_bits(rebuilt, dict(original))


def test_bias_free_cell_renames_to_a_bias_free_layer():
    cell = torch.nn.LSTMCell(I, H, bias=False)
    entries = cell_to_layer(cell.state_dict(), layer=0, reverse=True)
    assert sorted(entries) == ["weight_hh_l0_reverse", "weight_ih_l0_reverse"]
    lstm = torch.nn.LSTM(I, H, bias=False, bidirectional=True)
    result = lstm.load_state_dict(entries, strict=False)
    assert result.unexpected_keys == [] and sorted(result.missing_keys) == ["weight_hh_l0", "weight_ih_l0"]


# ---------------------------------------------------------------------------------------------------------------
# Errors.
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("to_foreign", [to_keras, to_haste, to_course_cell, layer_to_cell])
def test_missing_layer_raises_key_error_naming_the_entry(to_foreign):
    state_dict = torch.nn.LSTM(I, H).state_dict()
    with pytest.raises(KeyError, match=r"no entry 'weight_ih_l2'"):
        to_foreign(state_dict, layer=2)
    with pytest.raises(KeyError, match=r"no entry 'weight_ih_l0_reverse'; its keys are \['bias_hh_l0'"):
        to_foreign(state_dict, layer=0, reverse=True)


def test_one_missing_bias_raises_key_error_naming_it():
    state_dict = dict(torch.nn.LSTM(I, H).state_dict())
    del state_dict["bias_hh_l0"]
    with pytest.raises(KeyError, match=r"has 'bias_ih_l0' but no 'bias_hh_l0'"):
        to_keras(state_dict)


@pytest.mark.parametrize("to_foreign", [to_keras, to_haste, to_course_cell, layer_to_cell])
def test_projected_layer_is_refused(to_foreign):
    state_dict = torch.nn.LSTM(I, H, proj_size=2).state_dict()
    with pytest.raises(ValueError, match=r"weight_hr_l0 is present: layer 0 projects h to proj_size=2 features"):
        to_foreign(state_dict)


@pytest.mark.parametrize("from_foreign", [from_keras, from_haste])
@pytest.mark.parametrize(
    "shapes, message",
    [
        (
            ((I, 10), (H, 4 * H), (4 * H,)),
            r"kernel must have shape \(input_size, 4 \* hidden_size\), got \(4, 10\); 10 is not divisible by 4",
        ),
        (
            ((4 * H,), (H, 4 * H), (4 * H,)),
            r"kernel must have shape \(input_size, 4 \* hidden_size\), got \(20,\)$",
        ),
        (
            ((I, 4 * H), (4 * H, H), (4 * H,)),
            r"recurrent_kernel must have shape \(hidden_size, 4 \* hidden_size\) = \(5, 20\) "
            r"to match kernel of shape \(4, 20\), got \(20, 5\)",
        ),
        (
            ((I, 4 * H), (H, 4 * H), (4 * H - 1,)),
            r"bias must have shape \(4 \* hidden_size,\) = \(20,\) to match kernel of shape \(4, 20\), got \(19,\)",
        ),
    ],
    ids=["kernel-not-divisible-by-4", "kernel-1d", "recurrent-kernel-transposed", "bias-length"],
)
def test_foreign_shape_mismatch_raises_value_error(from_foreign, shapes, message):
    kernel, recurrent_kernel, bias = (np.zeros(shape, dtype=np.float32) for shape in shapes)
    with pytest.raises(ValueError, match=message):
        from_foreign(kernel, recurrent_kernel, bias)


def test_torch_shape_mismatch_raises_value_error_naming_the_entry():
    state_dict = dict(torch.nn.LSTM(I, H).state_dict())
    state_dict["weight_hh_l0"] = torch.zeros(4 * H, H + 1)
    expected = r"weight_hh_l0 must have shape \(4 \* hidden_size, hidden_size\) = \(20, 5\) .* got \(20, 6\)"
    with pytest.raises(ValueError, match=expected):
        to_keras(state_dict)
    state_dict["weight_ih_l0"] = torch.zeros(4 * H + 2, I)
    with pytest.raises(ValueError, match=r"weight_ih_l0 must have shape .* got \(22, 4\); 22 is not divisible by 4"):
        to_haste(state_dict)


def test_course_dict_errors_name_the_course_entries():
    course = to_course_cell(torch.nn.LSTM(I, H).state_dict())
    without_hh = {name: value for name, value in course.items() if name != "hh.weight"}
    with pytest.raises(KeyError, match=r"course_state_dict has no entry 'hh.weight'"):
        from_course_cell(without_hh)
    with pytest.raises(ValueError, match=r"ih.bias must have shape \(4 \* hidden_size,\) = \(20,\)"):
        from_course_cell(course | {"ih.bias": torch.zeros(3)})


def test_cell_to_layer_refuses_keys_that_are_not_lstm_cell_entries():
    cell_state_dict = torch.nn.LSTMCell(I, H).state_dict() | {"extra": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"but also has \['extra'\]"):
        cell_to_layer(cell_state_dict)


@pytest.mark.parametrize("layer", [-1, 1.0, True])
def test_layer_must_be_a_non_negative_int(layer):
    with pytest.raises(ValueError, match=r"layer must be a non-negative int"):
        to_keras(torch.nn.LSTM(I, H).state_dict(), layer=layer)


def test_non_numeric_input_raises_type_error_naming_the_argument():
    with pytest.raises(TypeError, match=r"recurrent_kernel must be a numeric tensor or array"):
        from_keras(np.zeros((I, 4 * H)), np.array([object()] * 4), np.zeros(4 * H))


# ---------------------------------------------------------------------------------------------------------------
# Packaging and documentation.
# ---------------------------------------------------------------------------------------------------------------


def test_the_package_exports_the_converters_and_explain_no_longer_does():
    for name in lstmkit.convert.__all__:
        assert getattr(lstmkit.convert, name) is getattr(layouts, name)
    assert not hasattr(lstmkit.explain, "convert"), "interop lives in lstmkit.convert, not in explain"


@pytest.mark.parametrize("module", [layouts, lstmkit.convert], ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, extraglobs={"torch": torch})
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------------------------------------------------
# The real Keras, when it happens to be installed with JAX (neither is a dependency of lstmkit).
# ---------------------------------------------------------------------------------------------------------------


def test_real_keras_lstm_with_converted_weights_matches_torch(monkeypatch):
    pytest.importorskip("jax", reason="optional check against real Keras on the JAX backend; jax is not installed")
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras", reason="optional check against real Keras; keras is not installed")
    if keras.backend.backend() != "jax":
        pytest.skip(f"keras was already imported with the {keras.backend.backend()!r} backend, not 'jax'")
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(I, H)
    x = torch.randn(T, B, I)  # (T, B, I)
    keras_lstm = keras.layers.LSTM(H, return_sequences=True, return_state=True)
    keras_lstm.build((B, T, I))
    keras_lstm.set_weights([weight.numpy() for weight in to_keras(lstm.state_dict())])

    output, h_n, c_n = keras_lstm(x.transpose(0, 1).numpy())
    with torch.no_grad():
        expected_output, (expected_h_n, expected_c_n) = lstm(x)

    np.testing.assert_allclose(np.asarray(output), expected_output.transpose(0, 1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(h_n), expected_h_n[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(c_n), expected_c_n[0].numpy(), rtol=1e-5, atol=1e-6)
    torch.nn.LSTM(I, H).load_state_dict(from_keras(*keras_lstm.get_weights()))
