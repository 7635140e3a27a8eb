"""Batching: a token stream laid out for truncated backpropagation through time (BPTT), as AWD-LSTM does, and
batch plans that group sequences of similar length (:func:`batch_plan`: the tagger and the classifier).

Shapes: N tokens in the stream, B batch size (columns), R = N // B rows, T the length of one window.

::

    ids (N,) --batchify--> data (R, B) --bptt_windows--> inputs (T, B), targets (T, B), ...

Column b of ``data`` is the contiguous slice ``ids[b * R : (b + 1) * R]``, so walking down the rows continues each of
the B streams; the hidden state of one window is carried into the next.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch

from lstmkit.data.errors import DataError

__all__ = ["batchify", "BpttWindow", "sample_seq_len", "bptt_windows", "batch_plan"]

SHORT_WINDOW_PROBABILITY = 0.05
"""AWD-LSTM's chance that a window's mean length is bptt / 2 instead of bptt."""

SEQ_LEN_STD = 5.0
"""Standard deviation of the normal distribution a window length is drawn from."""

MIN_SEQ_LEN = 5
"""Shortest drawn window length (only the last window of the stream may be shorter)."""


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Lay a 1-D stream of ids out as ``batch_size`` columns, dropping the ``N % B`` tokens at the end.

    Args:
        ids: token ids, shape ``(N,)``.
        batch_size: number of columns B.

    Returns:
        ``(N // B, B)`` tensor on the device and with the dtype of ``ids``, where column ``b`` holds
        ``ids[b * R : (b + 1) * R]`` (R = N // B).

    Raises:
        DataError: fewer tokens than columns.
        ValueError: ``ids`` is not 1-D or ``batch_size`` is not positive.

    Example::

        >>> batchify(torch.arange(7), 2)
        tensor([[0, 3],
                [1, 4],
                [2, 5]])
    """
    if ids.dim() != 1:
        raise ValueError(f"batchify expects a 1-D tensor of ids, got shape {tuple(ids.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    rows = ids.numel() // batch_size
    if rows == 0:
        raise DataError(f"cannot lay out {ids.numel()} tokens in {batch_size} columns: fewer tokens than columns")
    return ids[: rows * batch_size].view(batch_size, rows).t().contiguous()  # (R, B)


class BpttWindow(NamedTuple):
    """One window of a batchified stream.

    Attributes:
        inputs: rows ``start .. start + seq_len - 1`` of the data, shape ``(T, B)``.
        targets: the next tokens, rows ``start + 1 .. start + seq_len``, shape ``(T, B)``.
        seq_len: T, the number of rows in this window.
        lr_scale: ``seq_len / bptt``; AWD-LSTM multiplies the learning rate by it for this window so that short and
            long windows weigh the same per token.
        start: the row where the window starts; :attr:`next_start` is where the following one starts.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    seq_len: int
    lr_scale: float
    start: int

    @property
    def next_start(self) -> int:
        """The row where the next window starts: pass it as ``start=`` to resume after this window."""
        return self.start + self.seq_len


def sample_seq_len(
    bptt: int,
    generator: torch.Generator | None = None,
    *,
    short_window_probability: float = SHORT_WINDOW_PROBABILITY,
    seq_len_std: float = SEQ_LEN_STD,
    min_seq_len: int = MIN_SEQ_LEN,
) -> int:
    """Draw one window length the way AWD-LSTM does.

    The mean is ``bptt`` with probability ``1 - short_window_probability`` and ``bptt / 2`` otherwise; the length is a
    draw from ``Normal(mean, seq_len_std)`` rounded to the nearest integer, and at least ``min_seq_len``. Two numbers
    are drawn from ``generator`` (torch's global generator when ``None``) per call.
    """
    mean = bptt if torch.rand((), generator=generator).item() >= short_window_probability else bptt / 2
    draw = mean + seq_len_std * torch.randn((), generator=generator).item()
    return max(min_seq_len, round(draw))


def bptt_windows(
    data: torch.Tensor,
    bptt: int,
    variable: bool = True,
    generator: torch.Generator | None = None,
    start: int = 0,
    *,
    short_window_probability: float = SHORT_WINDOW_PROBABILITY,
    seq_len_std: float = SEQ_LEN_STD,
    min_seq_len: int = MIN_SEQ_LEN,
) -> Iterator[BpttWindow]:
    """Walk down the rows of batchified data in windows of inputs and next-token targets.

    With ``variable=True`` (training) each window length comes from :func:`sample_seq_len`; with ``variable=False``
    (evaluation) every window is ``bptt`` rows. Either way a window never runs past the end: the last one is cut to the
    rows that remain (it may then be shorter than ``min_seq_len``). ``lr_scale`` uses the length actually yielded.

    Resuming: window lengths are drawn lazily, one window at a time, so right after a window is yielded ``generator``
    holds exactly the state that draws the next one. Save ``window.next_start`` and ``generator.get_state()`` there;
    later ``generator.set_state(saved)`` and ``bptt_windows(data, bptt, generator=generator, start=next_start)``
    yields the same remaining windows. The generator must not be drawn from by anything else in between.

    Args:
        data: batchified ids, shape ``(R, B)`` (see :func:`batchify`).
        bptt: the target window length.
        variable: draw lengths (training) or use ``bptt`` throughout (evaluation).
        generator: the source of randomness for the lengths; torch's global generator when ``None``.
        start: the row to start from (0 for a new epoch).
        short_window_probability, seq_len_std, min_seq_len: see :func:`sample_seq_len`.

    Yields:
        :class:`BpttWindow` ``(inputs, targets, seq_len, lr_scale, start)``; inputs and targets are views of ``data``.

    Example::

        >>> data = batchify(torch.arange(1000), 4)                          # (250, 4)
        >>> generator = torch.Generator().manual_seed(0)
        >>> for inputs, targets, seq_len, lr_scale, start in bptt_windows(data, 35, generator=generator):
        ...     pass                                                        # inputs, targets: (seq_len, 4)
    """
    if data.dim() != 2:
        raise ValueError(f"bptt_windows expects batchified data of shape (rows, batch), got {tuple(data.shape)}")
    if bptt < 1:
        raise ValueError(f"bptt must be positive, got {bptt}")
    if min_seq_len < 1:
        raise ValueError(f"min_seq_len must be positive, got {min_seq_len}")
    rows = data.size(0)
    last_start = max(rows - 1, 0)
    if not 0 <= start <= last_start:
        raise ValueError(f"start must be in [0, {last_start}] for data with {rows} rows, got {start}")
    position = start
    while position < rows - 1:
        if variable:
            wanted = sample_seq_len(
                bptt,
                generator,
                short_window_probability=short_window_probability,
                seq_len_std=seq_len_std,
                min_seq_len=min_seq_len,
            )
        else:
            wanted = bptt
        seq_len = min(wanted, rows - 1 - position)
        inputs = data[position : position + seq_len]  # (T, B)
        targets = data[position + 1 : position + 1 + seq_len]  # (T, B)
        yield BpttWindow(inputs, targets, seq_len, seq_len / bptt, position)
        position += seq_len


def batch_plan(
    lengths: Sequence[int],
    batch_size: int,
    generator: torch.Generator | None = None,
    pool_batches: int = 50,
) -> list[list[int]]:
    """Group sentence indices into batches of similar length, so little of each batch is padding.

    Without ``generator`` (evaluation, tagging): sentences sorted by length, longest first, cut into batches.
    With it (training): a random permutation is cut into pools of ``pool_batches * batch_size`` sentences, each pool
    sorted by length and cut into batches, and the batches are shuffled; the same generator state gives the same plan.

    Args:
        lengths: words per sentence.
        batch_size: sentences per batch (the last batch of a pool may be smaller).
        generator: the source of randomness, or ``None`` for the sorted order.
        pool_batches: batches per sorting pool in training.

    Returns:
        Lists of indices into ``lengths``; every index appears exactly once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if generator is None:
        order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    permutation = torch.randperm(len(lengths), generator=generator).tolist()
    pool_size = batch_size * max(1, pool_batches)
    batches = []
    for start in range(0, len(permutation), pool_size):
        pool = sorted(permutation[start : start + pool_size], key=lambda index: -lengths[index])
        batches.extend(pool[first : first + batch_size] for first in range(0, len(pool), batch_size))
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[index] for index in shuffle]
