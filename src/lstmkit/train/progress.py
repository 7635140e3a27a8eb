"""A tqdm progress bar for training and evaluation loops, showing loss, perplexity and tokens per second.

The bar is disabled (prints nothing, costs almost nothing) when ``disable=True`` or when its stream is not a
terminal, so logs of batch jobs stay clean.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def _is_terminal(stream: IO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


def progress_bar(
    iterable: Iterable[T] | None = None,
    total: int | None = None,
    desc: str | None = None,
    disable: bool | None = None,
    file: IO | None = None,
    leave: bool = False,
) -> tqdm:
    """A plain tqdm bar (e.g. over evaluation batches), shown only on a terminal unless ``disable`` says otherwise.

    Args:
        iterable: what to iterate over, or ``None`` for a manually updated bar.
        total: number of items, when ``len(iterable)`` does not say.
        desc: label at the left of the bar.
        disable: ``True`` to disable, ``False`` to force on, ``None`` (default) to show only on a terminal.
        file: stream to draw on. Default: ``sys.stderr``
        leave: keep the finished bar on screen. Default: ``False``
    """
    file = sys.stderr if file is None else file
    disabled = (not _is_terminal(file)) if disable is None else disable
    return tqdm(iterable, total=total, desc=desc, disable=disabled, file=file, leave=leave, dynamic_ncols=True)


def perplexity(loss: float) -> float:
    """``exp(loss)``, or ``inf`` where that overflows."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


class TrainingProgress:
    """A progress bar over batches with a ``loss / ppl / tok/s`` postfix.

    The postfix shows the token-weighted mean loss since the bar started, its perplexity (when
    ``show_perplexity``), and the throughput in tokens per second.

    Args:
        total: number of batches, if known.
        desc: label at the left of the bar, e.g. ``"epoch 3"``.
        disable: ``True`` to disable, ``False`` to force on, ``None`` (default) to show only on a terminal.
        show_perplexity: add ``ppl=exp(loss)``; turn off for losses that are not per-token cross-entropy.
        file: stream to draw on. Default: ``sys.stderr``
        leave: keep the finished bar on screen. Default: ``False``

    Example::

        >>> with TrainingProgress(total=len(batches), desc="epoch 1") as progress:  # doctest: +SKIP
        ...     for x, y in batches:
        ...         loss = train_step(x, y)
        ...         progress.update(loss=loss.item(), num_tokens=y.numel())
    """

    def __init__(
        self,
        total: int | None = None,
        desc: str | None = None,
        disable: bool | None = None,
        show_perplexity: bool = True,
        file: IO | None = None,
        leave: bool = False,
    ) -> None:
        file = sys.stderr if file is None else file
        self.disabled = (not _is_terminal(file)) if disable is None else disable
        self.show_perplexity = show_perplexity
        self.bar = tqdm(total=total, desc=desc, disable=self.disabled, file=file, leave=leave, unit="batch",
                        dynamic_ncols=True)
        self.loss_sum = 0.0  # token-weighted
        self.num_tokens = 0
        self.start = time.perf_counter()

    @property
    def mean_loss(self) -> float:
        """Token-weighted mean of the losses given to :meth:`update` (``nan`` before any)."""
        return self.loss_sum / self.num_tokens if self.num_tokens else math.nan

    def tokens_per_second(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.num_tokens / elapsed if elapsed > 0 else 0.0

    def update(self, loss: float, num_tokens: int, batches: int = 1) -> None:
        """Account for ``batches`` batches of ``num_tokens`` tokens with mean per-token ``loss``."""
        self.loss_sum += float(loss) * num_tokens
        self.num_tokens += num_tokens
        if self.disabled:
            return
        self.bar.set_postfix_str(self.postfix(), refresh=False)
        self.bar.update(batches)

    def postfix(self) -> str:
        """The text after the bar, e.g. ``"loss=4.605 ppl=100.0 tok/s=12.3k"``."""
        loss = self.mean_loss
        parts = [f"loss={loss:.3f}"]
        if self.show_perplexity:
            parts.append(f"ppl={perplexity(loss):.1f}")
        parts.append(f"tok/s={_si(self.tokens_per_second())}")
        return " ".join(parts)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> "TrainingProgress":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _si(value: float) -> str:
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= threshold:
            return f"{value / threshold:.1f}{suffix}"
    return f"{value:.0f}"
