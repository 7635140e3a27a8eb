"""Tests for lstmkit.explain.plots: saturation numbers on a constructed trace, and PNGs that hold a picture."""

import matplotlib.image
import pytest
import torch

import lstmkit
from lstmkit.explain import GateTrace, plot_gate_heatmaps, plot_saturation, saturation, trace

TOKENS = "the cat sat on the mat .".split()


def constructed_trace() -> GateTrace:
    """T = 4 steps, B = 1, H = 3 units with known gate values."""
    i = torch.tensor([
        [0.05, 0.05, 0.10],
        [0.05, 0.95, 0.90],
        [0.05, 0.50, 0.50],
        [0.05, 0.95, 0.50],
    ]).unsqueeze(1)  # (T, B, H)
    f = 1 - i  # unit 0 always open, unit 1 closed twice and open once
    o = torch.full_like(i, 0.5)
    zeros = torch.zeros_like(i)
    return GateTrace(i, f, zeros, o, zeros, zeros)


def test_saturation_counts_the_fraction_of_steps_beyond_the_thresholds():
    fractions = saturation(constructed_trace())
    assert set(fractions) == {"i", "f", "o"}
    torch.testing.assert_close(fractions["i"].left, torch.tensor([1.0, 0.25, 0.0], dtype=torch.float64))
    torch.testing.assert_close(fractions["i"].right, torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64))  # 0.9: not >
    torch.testing.assert_close(fractions["f"].left, torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(fractions["f"].right, torch.tensor([1.0, 0.25, 0.0], dtype=torch.float64))
    assert torch.all(fractions["o"].left == 0) and torch.all(fractions["o"].right == 0)


def test_saturation_thresholds_and_mask():
    tr = constructed_trace()
    wide = saturation(tr, low=0.2, high=0.8)
    torch.testing.assert_close(wide["i"].left, torch.tensor([1.0, 0.25, 0.25], dtype=torch.float64))
    torch.testing.assert_close(wide["i"].right, torch.tensor([0.0, 0.5, 0.25], dtype=torch.float64))
    first_two = torch.tensor([True, True, False, False]).unsqueeze(1)  # (T, B)
    masked = saturation(tr, mask=first_two)
    torch.testing.assert_close(masked["i"].left, torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(masked["i"].right, torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64))


def test_saturation_pools_time_and_batch_and_takes_unbatched_traces():
    tr = constructed_trace()
    doubled = GateTrace(*(torch.cat([v, v], dim=1) for v in tr))  # (T, 2, H)
    unbatched = GateTrace(*(v[:, 0] for v in tr))  # (T, H)
    for other in (doubled, unbatched):
        for gate, expected in saturation(tr).items():
            torch.testing.assert_close(saturation(other)[gate].left, expected.left)


def test_saturation_errors():
    tr = constructed_trace()
    with pytest.raises(ValueError, match="need 0 <= low < high <= 1, got low=0.9, high=0.1"):
        saturation(tr, low=0.9, high=0.1)
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of shape \(4, 1\)"):
        saturation(tr, mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask selects no steps"):
        saturation(tr, mask=torch.zeros(4, 1, dtype=torch.bool))
    with pytest.raises(TypeError, match="one GateTrace"):
        saturation([[tr]])


@pytest.fixture(scope="module")
def model_trace():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(5, 8, num_layers=2, bidirectional=True)
    return trace(lstm, 2 * torch.randn(len(TOKENS), 2, 5))  # (T, B=2, I)


def read_png(path):
    image = matplotlib.image.imread(path)  # (height, width, RGBA) floats
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # not one flat colour
    return image


def test_heatmaps_png(tmp_path, model_trace):
    path = plot_gate_heatmaps(model_trace, TOKENS, tmp_path / "gates.png", layer=1, direction=1)
    assert path == tmp_path / "gates.png" and path.stat().st_size > 10_000
    image = read_png(path)
    # many more tokens give a wider picture
    long_tokens = TOKENS * 6
    torch.manual_seed(1)
    long_trace = trace(lstmkit.LSTM(5, 8), torch.randn(len(long_tokens), 5))  # unbatched (T, I)
    wide = read_png(plot_gate_heatmaps(long_trace, long_tokens, tmp_path / "long.png", units=[0, 3, 7]))
    assert wide.shape[1] > image.shape[1]


def test_heatmaps_with_projection(tmp_path):
    torch.manual_seed(0)
    traces = trace(lstmkit.LSTM(5, 8, proj_size=3), torch.randn(len(TOKENS), 1, 5))
    read_png(plot_gate_heatmaps(traces[0][0], TOKENS, tmp_path / "proj.png", units=range(4)))


def test_heatmap_errors(tmp_path, model_trace):
    out = tmp_path / "x.png"
    with pytest.raises(ValueError, match="got 3 tokens for a trace of 7 time steps"):
        plot_gate_heatmaps(model_trace, TOKENS[:3], out)
    with pytest.raises(ValueError, match="layer 2 is out of range: the trace has 2 layer"):
        plot_gate_heatmaps(model_trace, TOKENS, out, layer=2)
    with pytest.raises(ValueError, match="direction 2 is out of range"):
        plot_gate_heatmaps(model_trace, TOKENS, out, direction=2)
    with pytest.raises(ValueError, match="units must be a non-empty list of indices below 8"):
        plot_gate_heatmaps(model_trace, TOKENS, out, units=[8])
    with pytest.raises(ValueError, match="sequence 2 is out of range: the trace has a batch of 2"):
        plot_gate_heatmaps(model_trace, TOKENS, out, sequence=2)
    with pytest.raises(TypeError, match="expected a GateTrace or the list of lists"):
        plot_gate_heatmaps("gates", TOKENS, out)
    assert not out.exists()


def test_saturation_png(tmp_path, model_trace):
    path = plot_saturation(model_trace, tmp_path / "saturation.png")
    assert path.stat().st_size > 10_000
    read_png(path)
    read_png(plot_saturation(model_trace[0][0], tmp_path / "one.png", low=0.3, high=0.7))
