"""Tests for lstmkit.data.textfile: strict UTF-8 reading and line splitting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lstmkit.data.errors import DataError
from lstmkit.data.textfile import read_utf8_text, split_lines


def test_read_utf8_text_returns_the_decoded_text(tmp_path: Path) -> None:
    path = tmp_path / "ok.txt"
    path.write_bytes("naïve café\nline two\n".encode("utf-8"))
    assert read_utf8_text(path) == "naïve café\nline two\n"


def test_read_utf8_text_names_file_line_column_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\nalso fine\nabc\xffdef\n")
    with pytest.raises(DataError, match=re.escape(f"{path}: line 3: byte 0xff at column 4 is not valid UTF-8")):
        read_utf8_text(path)


def test_read_utf8_text_counts_lines_before_a_bad_byte_on_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 1: byte 0xe9 at column 4"):
        read_utf8_text(path)


def test_read_utf8_text_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothere\.txt: no such file"):
        read_utf8_text(tmp_path / "nothere.txt")


def test_read_utf8_text_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a regular file"):
        read_utf8_text(tmp_path)


def test_data_error_is_a_value_error() -> None:
    assert issubclass(DataError, ValueError)


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", []),
        ("a", ["a"]),
        ("a\n", ["a"]),
        ("a\nb", ["a", "b"]),
        ("a\n\nb\n", ["a", "", "b"]),
        ("\n", [""]),
        ("a\r\nb\r\n", ["a", "b"]),
        ("a\rb\r\n", ["a\rb"]),  # a lone carriage return does not end a line
        ("form\x0cfeed\u2028kept\n", ["form\x0cfeed\u2028kept"]),
    ],
)
def test_split_lines_ends_lines_at_lf_or_crlf_only(text: str, lines: list[str]) -> None:
    assert split_lines(text) == lines
