"""Tests for lstmkit.data.batching: batchify layout and AWD-LSTM's variable-length BPTT windows."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmkit.data.batching import BpttWindow, batchify, bptt_windows, sample_seq_len
from lstmkit.data.errors import DataError


def stream(rows: int, batch_size: int) -> torch.Tensor:
    """Batchified 0 .. rows * batch_size - 1, so a value's successor in its column is value + 1."""
    return batchify(torch.arange(rows * batch_size), batch_size)


# ---------------------------------------------------------------------------------------------------- batchify


def test_batchify_lays_contiguous_slices_in_columns_and_trims_the_rest() -> None:
    data = batchify(torch.arange(11), 3)
    assert data.shape == (3, 3)
    assert data.t().tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert data.is_contiguous() and data.dtype == torch.long


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.integers(min_value=1, max_value=20))
def test_batchify_shape_and_columns(length: int, batch_size: int) -> None:
    ids = torch.randperm(length)
    if length < batch_size:
        with pytest.raises(DataError, match="fewer tokens than columns"):
            batchify(ids, batch_size)
        return
    data = batchify(ids, batch_size)
    rows = length // batch_size
    assert data.shape == (rows, batch_size)
    for column in range(batch_size):
        assert torch.equal(data[:, column], ids[column * rows : (column + 1) * rows])


def test_batchify_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="1-D"):
        batchify(torch.zeros(2, 3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        batchify(torch.arange(5), 0)


# ---------------------------------------------------------------------------------------------------- windows


def test_fixed_windows_cover_the_stream_once_with_targets_shifted_by_one() -> None:
    data = stream(rows=23, batch_size=3)
    windows = list(bptt_windows(data, bptt=5, variable=False))
    assert [window.seq_len for window in windows] == [5, 5, 5, 5, 2]
    assert [window.start for window in windows] == [0, 5, 10, 15, 20]
    assert torch.equal(torch.cat([window.inputs for window in windows]), data[:-1])
    assert torch.equal(torch.cat([window.targets for window in windows]), data[1:])
    assert windows[0].lr_scale == 1.0 and windows[-1].lr_scale == pytest.approx(2 / 5)


def test_variable_windows_are_contiguous_shifted_and_at_least_min_length() -> None:
    data = stream(rows=2000, batch_size=2)
    windows = list(bptt_windows(data, bptt=20, generator=torch.Generator().manual_seed(1)))
    for window, following in zip(windows, windows[1:]):
        assert following.start == window.next_start
        assert window.seq_len >= 5
    for window in windows:
        assert window.inputs.shape == window.targets.shape == (window.seq_len, 2)
        assert torch.equal(window.targets, window.inputs + 1)
        assert window.lr_scale == window.seq_len / 20
    assert windows[-1].next_start == data.size(0) - 1
    assert len({window.seq_len for window in windows}) > 5  # lengths really vary


def test_variable_windows_reproduce_with_the_same_seed() -> None:
    data = stream(rows=1500, batch_size=1)

    def lengths(seed: int) -> list[int]:
        return [window.seq_len for window in bptt_windows(data, 35, generator=torch.Generator().manual_seed(seed))]

    assert lengths(7) == lengths(7)
    assert lengths(7) != lengths(8)


def test_global_generator_is_used_when_none_is_given() -> None:
    data = stream(rows=500, batch_size=1)
    torch.manual_seed(3)
    first = [window.seq_len for window in bptt_windows(data, 30)]
    torch.manual_seed(3)
    assert first == [window.seq_len for window in bptt_windows(data, 30)]


def test_about_five_percent_of_windows_are_half_length() -> None:
    generator = torch.Generator().manual_seed(0)
    bptt, draws = 70, 4000
    lengths = [sample_seq_len(bptt, generator) for _ in range(draws)]
    short = sum(length < 0.75 * bptt for length in lengths)
    assert 0.035 < short / draws < 0.065  # expected 5 %, standard error 0.34 %
    long_lengths = [length for length in lengths if length >= 0.75 * bptt]
    assert abs(sum(long_lengths) / len(long_lengths) - bptt) < 0.5
    assert min(lengths) >= 5


def test_min_seq_len_holds_for_tiny_bptt() -> None:
    generator = torch.Generator().manual_seed(0)
    assert min(sample_seq_len(3, generator) for _ in range(200)) == 5


def test_resuming_from_a_saved_position_and_generator_state_gives_the_same_windows() -> None:
    data = stream(rows=3000, batch_size=4)
    generator = torch.Generator().manual_seed(123)
    iterator = bptt_windows(data, 35, generator=generator)
    for _ in range(10):
        last_seen = next(iterator)
    saved_start, saved_state = last_seen.next_start, generator.get_state()
    remaining = list(iterator)

    resumed_generator = torch.Generator()
    resumed_generator.set_state(saved_state)
    resumed = list(bptt_windows(data, 35, generator=resumed_generator, start=saved_start))
    assert [(w.start, w.seq_len) for w in resumed] == [(w.start, w.seq_len) for w in remaining]
    assert all(torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets) for a, b in zip(resumed, remaining))


def test_window_unpacks_into_five_named_fields() -> None:
    inputs, targets, seq_len, lr_scale, start = next(bptt_windows(stream(10, 2), 4, variable=False))
    assert isinstance(BpttWindow(inputs, targets, seq_len, lr_scale, start), tuple)
    assert (seq_len, lr_scale, start) == (4, 1.0, 0)


def test_start_at_the_last_row_yields_nothing_and_past_it_is_an_error() -> None:
    data = stream(rows=10, batch_size=2)
    assert list(bptt_windows(data, 4, start=9)) == []
    with pytest.raises(ValueError, match=r"start must be in \[0, 9\] for data with 10 rows, got 10"):
        list(bptt_windows(data, 4, start=10))


def test_bptt_windows_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="shape \\(rows, batch\\)"):
        list(bptt_windows(torch.arange(10), 4))
    with pytest.raises(ValueError, match="bptt must be positive"):
        list(bptt_windows(stream(10, 2), 0))
    with pytest.raises(ValueError, match="min_seq_len must be positive"):
        list(bptt_windows(stream(10, 2), 4, min_seq_len=0))
