"""Reading text files strictly: UTF-8 or a :class:`DataError` that says where the bad byte is.

The project's one line rule: a line ends at ``\\n`` or ``\\r\\n``, and nothing else ends it: not a lone ``\\r``
(Python's text mode would split there), not a form feed or a Unicode separator (``str.splitlines`` would), so that
the line count of corpora such as WikiText and the lines of ``lstmkit tag``'s output match the input's.
"""

from __future__ import annotations

import os
from pathlib import Path

from lstmkit.data.errors import DataError

__all__ = ["read_utf8_text", "split_lines", "strip_bom", "BOM"]

BOM = "\ufeff"
"""The byte-order mark some editors put at the start of a UTF-8 file; every reader here drops it."""


def strip_bom(text: str) -> str:
    """``text`` without a leading byte-order mark (U+FEFF)."""
    return text[1:] if text.startswith(BOM) else text


def read_utf8_text(path: str | os.PathLike[str]) -> str:
    """Return the content of a UTF-8 text file.

    Args:
        path: the file to read.

    Returns:
        The decoded text, line endings unchanged, without a leading byte-order mark (U+FEFF).

    Raises:
        DataError: the file does not exist, is a directory, or holds bytes that are not valid UTF-8; in the last case
            the message names the file, the 1-based line number and the offending byte, e.g.
            ``data/train.txt: line 3: byte 0xff at column 7 is not valid UTF-8``.
    """
    file_path = Path(path)
    if not file_path.exists():
        raise DataError(f"{file_path}: no such file")
    if not file_path.is_file():
        raise DataError(f"{file_path}: not a regular file")
    raw = file_path.read_bytes()
    try:
        return strip_bom(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        bad_offset = error.start
        line_start = raw.rfind(b"\n", 0, bad_offset) + 1
        line_number = raw.count(b"\n", 0, bad_offset) + 1
        column = bad_offset - line_start + 1
        raise DataError(
            f"{file_path}: line {line_number}: byte 0x{raw[bad_offset]:02x} at column {column} is not valid UTF-8"
        ) from None


def split_lines(text: str) -> list[str]:
    """Split text into lines without their line endings (``\\n`` or ``\\r\\n``; a lone ``\\r`` stays in its line).

    A final line ending does not start an extra empty line: ``"a\\nb\\n"`` and ``"a\\nb"`` both give ``["a", "b"]``;
    ``""`` gives ``[]``. Blank lines inside the text are kept (``"a\\n\\nb"`` gives ``["a", "", "b"]``).
    """
    if not text:
        return []
    normalised = text.replace("\r\n", "\n")
    lines = normalised.split("\n")
    if normalised.endswith("\n"):
        lines.pop()
    return lines
