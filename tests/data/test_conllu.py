"""Tests for lstmkit.data.conllu: reading, exact round trips, predicted tags, errors, plain text."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from lstmkit.data.conllu import Sentence, parse_conllu, read_conllu, read_plain, sentence_to_conllu, write_conllu
from lstmkit.data.errors import DataError


def token_line(*columns: str) -> str:
    return "\t".join(columns)


TINY_CONLLU = (
    "# newdoc id = tiny\n"
    "# sent_id = 1\n"
    "# text = Don't stop.\n"
    + token_line("1-2", "Don't", "_", "_", "_", "_", "_", "_", "_", "_") + "\n"
    + token_line("1", "Do", "do", "AUX", "VBP", "Mood=Imp", "3", "aux", "3:aux", "_") + "\n"
    + token_line("2", "n't", "not", "PART", "RB", "_", "3", "advmod", "3:advmod", "_") + "\n"
    + token_line("3", "stop", "stop", "VERB", "VB", "VerbForm=Inf", "0", "root", "0:root", "SpaceAfter=No") + "\n"
    + token_line("3.1", "stop", "stop", "VERB", "VB", "_", "_", "_", "3:conj", "CopyOf=3") + "\n"
    + token_line("4", ".", ".", "PUNCT", ".", "_", "3", "punct", "3:punct", "_") + "\n"
    "\n"
    "# sent_id = 2\n"
    + token_line("1", "Go", "go", "VERB", "VB", "_", "0", "root", "0:root", "_") + "\n"
    "\n"
)


@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.conllu"
    path.write_text(TINY_CONLLU, encoding="utf-8")
    return path


def write_lines(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bad.conllu"
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


GOOD_WORD = token_line("1", "Hi", "hi", "INTJ", "UH", "_", "0", "root", "0:root", "_")


# ---------------------------------------------------------------------------------------------------- reading


def test_read_keeps_words_only_for_tagging(tiny_file: Path) -> None:
    first, second = read_conllu(tiny_file)
    assert first.forms == ["Do", "n't", "stop", "."]
    assert first.upos == ["AUX", "PART", "VERB", "PUNCT"]
    assert first.xpos == ["VBP", "RB", "VB", "."]
    assert len(first) == 4 and len(first.token_lines) == 6
    assert first.comments == ["# newdoc id = tiny", "# sent_id = 1", "# text = Don't stop."]
    assert first.comment_value("text") == "Don't stop." and first.comment_value("missing") is None
    assert second.forms == ["Go"] and second.comment_value("sent_id") == "2"


def test_round_trip_is_byte_exact(tiny_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.conllu"
    write_conllu(read_conllu(tiny_file), out)
    assert out.read_bytes() == tiny_file.read_bytes()


def test_predicted_tags_replace_only_the_tag_columns_of_word_lines(tiny_file: Path) -> None:
    sentences = read_conllu(tiny_file)
    buffer = io.StringIO()
    write_conllu(sentences, buffer, upos=[["X", "X", "X", "X"], ["NOUN"]], xpos=[["a", "b", "c", "d"], ["NN"]])
    written, original = buffer.getvalue().split("\n"), TINY_CONLLU.split("\n")
    assert len(written) == len(original)
    changed = [(old, new) for old, new in zip(original, written) if old != new]
    assert len(changed) == 5  # four words of sentence 1 and one of sentence 2; the range and empty node untouched
    for old, new in changed:
        old_columns, new_columns = old.split("\t"), new.split("\t")
        assert [c for i, c in enumerate(old_columns) if i not in (3, 4)] == [
            c for i, c in enumerate(new_columns) if i not in (3, 4)
        ]
    reread = parse_conllu(buffer.getvalue())
    assert reread[0].upos == ["X"] * 4 and reread[0].xpos == ["a", "b", "c", "d"]
    assert reread[1].upos == ["NOUN"] and reread[1].xpos == ["NN"]


def test_write_rejects_tags_that_do_not_fit(tiny_file: Path) -> None:
    sentences = read_conllu(tiny_file)
    with pytest.raises(ValueError, match="2 sentences but 1 UPOS tag lists"):
        write_conllu(sentences, io.StringIO(), upos=[["X"] * 4])
    with pytest.raises(ValueError, match="sentence 1 has 1 words but 2 UPOS tags"):
        write_conllu(sentences, io.StringIO(), upos=[["X"] * 4, ["X", "Y"]])
    with pytest.raises(ValueError, match="XPOS tag 'N N' must be non-empty without whitespace"):
        sentence_to_conllu(sentences[1], xpos=["N N"])


def test_sentence_from_tokens_writes_valid_untagged_conllu() -> None:
    sentence = Sentence.from_tokens(["Hello", "world"], comments=["# sent_id = p1"])
    text = sentence_to_conllu(sentence, upos=["INTJ", "NOUN"])
    assert text == (
        "# sent_id = p1\n"
        "1\tHello\t_\tINTJ\t_\t_\t_\t_\t_\t_\n"
        "2\tworld\t_\tNOUN\t_\t_\t_\t_\t_\t_\n"
        "\n"
    )
    assert parse_conllu(text)[0].forms == ["Hello", "world"]
    with pytest.raises(ValueError, match="without tabs"):
        Sentence.from_tokens(["a\tb"])


def test_untagged_input_reads_when_upos_is_not_required(tmp_path: Path) -> None:
    path = write_lines(tmp_path, [token_line("1", "Hi", *["_"] * 8), ""])
    (sentence,) = read_conllu(path, require_upos=False)
    assert sentence.upos == ["_"]


def test_last_sentence_without_a_final_blank_line_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "open.conllu"
    path.write_text(GOOD_WORD + "\n")
    assert [sentence.forms for sentence in read_conllu(path)] == [["Hi"]]


# ---------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["# ok", GOOD_WORD, "1\tHi\thi\tINTJ", ""], r"line 3: expected 10 tab-separated columns, found 4"),
        ([GOOD_WORD.replace("\t", " ", 1), ""], r"line 1: expected 10 tab-separated columns, found 9"),
        ([GOOD_WORD.replace("hi", ""), ""], r"line 1: column LEMMA is empty"),
        ([GOOD_WORD.replace("1", "x", 1), ""], r"line 1: bad ID 'x'"),
        ([GOOD_WORD.replace("1", "0", 1), ""], r"line 1: bad ID '0'"),
        ([GOOD_WORD, GOOD_WORD, ""], r"line 2: word ID 1 out of order, expected 2"),
        ([GOOD_WORD.replace("INTJ", "_"), ""], r"line 1: word 1 has no UPOS tag \('_'\)"),
        ([token_line("2-3", "x", *["_"] * 8), ""], r"line 1: bad multiword token range 2-3, expected 1-N"),
        ([GOOD_WORD, token_line("3.1", "x", *["_"] * 8), ""], r"line 2: empty node 3.1 must follow word 3"),
        ([GOOD_WORD, "# late", ""], r"line 2: comment inside a sentence"),
        (["# only a comment", ""], r"line 2: sentence has no words"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = write_lines(tmp_path, lines)
    with pytest.raises(DataError, match=re.escape(str(path)) + ": " + message):
        read_conllu(path)


def test_non_utf8_conllu_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.conllu"
    path.write_bytes((GOOD_WORD + "\n\n" + GOOD_WORD.replace("Hi", "Caf\xe9") + "\n").encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.conllu: line 3: byte 0xe9 at column 6 is not valid UTF-8"):
        read_conllu(path)


def test_empty_and_blank_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.conllu"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.conllu: file is empty"):
        read_conllu(empty)
    blank = tmp_path / "blank.conllu"
    blank.write_text("\n\n")
    with pytest.raises(DataError, match=r"blank\.conllu: no sentences found"):
        read_conllu(blank)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_conllu(tmp_path / "absent.conllu")


# ---------------------------------------------------------------------------------------------------- plain text


def test_read_plain_from_a_file_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("The cat sat .\n\n  \nIt  purred\t!\n")
    assert read_plain(path) == [["The", "cat", "sat", "."], ["It", "purred", "!"]]


def test_read_plain_from_lines() -> None:
    assert read_plain(io.StringIO("a b\n\nc\n")) == [["a", "b"], ["c"]]
    assert read_plain(["x y", ""]) == [["x", "y"]]
    with pytest.raises(TypeError, match="not bytes"):
        read_plain(b"a b\n")  # type: ignore[arg-type]


def test_read_plain_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_bytes(b"ok\n\xc3(\n")
    with pytest.raises(DataError, match=r"plain\.txt: line 2: byte 0xc3"):
        read_plain(path)


# ---------------------------------------------------------------------------------------------------- real data


@pytest.mark.data
def test_ewt_dev_round_trips_byte_for_byte(real_dataset: Callable[[str], Path]) -> None:
    path = real_dataset("ud_english_ewt") / "en_ewt-ud-dev.conllu"
    sentences = read_conllu(path)
    buffer = io.StringIO()
    write_conllu(sentences, buffer, upos=[s.upos for s in sentences], xpos=[s.xpos for s in sentences])
    assert buffer.getvalue().encode("utf-8") == path.read_bytes()


@pytest.mark.data
def test_ewt_sentence_counts_and_upos_tags(real_dataset: Callable[[str], Path]) -> None:
    folder = real_dataset("ud_english_ewt")
    counts, upos_tags = {}, set()
    for split in ("train", "dev", "test"):
        sentences = read_conllu(folder / f"en_ewt-ud-{split}.conllu")
        counts[split] = len(sentences)
        upos_tags.update(tag for sentence in sentences for tag in sentence.upos)
    assert counts == {"train": 12_544, "dev": 2_001, "test": 2_077}
    assert len(upos_tags) == 17
