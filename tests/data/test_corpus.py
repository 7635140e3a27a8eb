"""Tests for lstmkit.data.corpus: layouts, <eos> policy, train-only vocabulary, errors, built-in corpus."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lstmkit.data.corpus import (
    SPLITS,
    Corpus,
    builtin_corpus,
    builtin_lines,
    check_length,
    find_split_files,
    load_corpus,
    word_tokens,
)
from lstmkit.data.errors import DataError
from lstmkit.data.vocab import EOS, UNK


def write_splits(directory: Path, pattern: str, texts: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for split, text in texts.items():
        (directory / pattern.format(split=split)).write_text(text, encoding="utf-8")


TINY_TEXTS = {
    "train": "the cat sat\nthe dog sat on the mat\n",
    "valid": "the bird sat\n",
    "test": "a cat and a dog\n",
}


def decoded(corpus: Corpus, split: str) -> list[str]:
    return corpus.vocab.decode(corpus.split(split))


# ---------------------------------------------------------------------------------------------------- word level


def test_ptb_layout_is_recognised_and_tokens_get_eos(tmp_path: Path) -> None:
    write_splits(tmp_path, "ptb.{split}.txt", TINY_TEXTS)
    corpus = load_corpus(tmp_path)
    assert corpus.level == "word"
    assert corpus.paths == {split: tmp_path / f"ptb.{split}.txt" for split in SPLITS}
    assert decoded(corpus, "train") == "the cat sat <eos> the dog sat on the mat <eos>".split()
    for split in SPLITS:
        ids = corpus.split(split)
        assert ids.dtype == torch.long and ids.dim() == 1


def test_vocab_is_built_from_train_only_and_unknowns_are_counted(tmp_path: Path) -> None:
    write_splits(tmp_path, "ptb.{split}.txt", TINY_TEXTS)
    corpus = load_corpus(tmp_path)
    assert set(corpus.vocab.itos) == {UNK, EOS, "the", "cat", "sat", "dog", "on", "mat"}
    assert "bird" not in corpus.vocab
    assert decoded(corpus, "valid") == ["the", UNK, "sat", EOS]
    assert decoded(corpus, "test") == [UNK, "cat", UNK, UNK, "dog", EOS]
    assert dict(corpus.unknown_counts) == {"train": 0, "valid": 1, "test": 3}


def test_wikitext_layout_keeps_an_eos_for_every_blank_line(tmp_path: Path) -> None:
    texts = {"train": " = Title = \n \n Some text . \n\n", "valid": "Some\n", "test": "text\n"}
    write_splits(tmp_path, "{split}.txt", texts)
    corpus = load_corpus(tmp_path)
    assert corpus.paths["train"] == tmp_path / "train.txt"
    assert decoded(corpus, "train") == ["=", "Title", "=", EOS, EOS, "Some", "text", ".", EOS, EOS]


def test_wikitext_tokens_layout_is_recognised(tmp_path: Path) -> None:
    write_splits(tmp_path, "wiki.{split}.tokens", TINY_TEXTS)
    corpus = load_corpus(tmp_path)
    assert corpus.paths["test"] == tmp_path / "wiki.test.tokens"
    assert corpus.train.numel() == 11


def test_word_tokens_appends_eos_to_every_line() -> None:
    assert word_tokens(["a  b", "", "\tc "]) == ["a", "b", EOS, EOS, "c", EOS]


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere: no such directory"):
        load_corpus(tmp_path / "nowhere")


def test_directory_without_a_training_file_lists_the_names_looked_for(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("hello\n")
    with pytest.raises(DataError, match=r"no training file found, looked for ptb\.train\.txt, train\.txt, wiki\.train"):
        find_split_files(tmp_path)


def test_missing_split_file_is_named(tmp_path: Path) -> None:
    write_splits(tmp_path, "ptb.{split}.txt", {"train": "a b\n", "valid": "a\n"})
    with pytest.raises(DataError, match=r"PTB layout is incomplete, missing ptb\.test\.txt"):
        load_corpus(tmp_path)


def test_word_level_on_a_single_file_points_at_char_level(tmp_path: Path) -> None:
    path = tmp_path / "input.txt"
    path.write_text("abc\n")
    with pytest.raises(DataError, match=r"is a file; .*level='char'"):
        load_corpus(path)


def test_empty_split_file(tmp_path: Path) -> None:
    write_splits(tmp_path, "{split}.txt", {**TINY_TEXTS, "valid": ""})
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'valid.txt'}: file is empty")):
        load_corpus(tmp_path)


def test_split_file_with_blank_lines_only(tmp_path: Path) -> None:
    write_splits(tmp_path, "{split}.txt", {**TINY_TEXTS, "test": "\n  \n"})
    with pytest.raises(DataError, match=r"test\.txt: contains no words"):
        load_corpus(tmp_path)


def test_non_utf8_split_file_names_file_line_and_byte(tmp_path: Path) -> None:
    write_splits(tmp_path, "ptb.{split}.txt", TINY_TEXTS)
    (tmp_path / "ptb.valid.txt").write_bytes(b"good line\nsecond\nna\xefve \xff\n")
    with pytest.raises(DataError, match=r"ptb\.valid\.txt: line 3: byte 0xef at column 3 is not valid UTF-8"):
        load_corpus(tmp_path)


def test_unknown_level_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="level must be 'word' or 'char'"):
        load_corpus(tmp_path, level="byte")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- char level


def test_char_level_splits_90_10_and_test_is_valid(tmp_path: Path) -> None:
    text = "abcdefghij" * 9 + "abcdefghiZ"  # 100 characters; 'Z' only in the last 10
    path = tmp_path / "input.txt"
    path.write_text(text)
    corpus = load_corpus(path, level="char")
    assert corpus.level == "char"
    assert corpus.train.numel() == 90 and corpus.valid.numel() == 10
    assert corpus.test is corpus.valid
    assert "".join(decoded(corpus, "train")) == text[:90]
    assert decoded(corpus, "valid") == [*"abcdefghi", UNK]
    assert corpus.unknown_counts["valid"] == 1
    assert corpus.vocab.itos[0] == UNK and EOS not in corpus.vocab
    assert len(corpus.vocab) == 1 + 10


def test_char_level_directory_with_one_txt(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not this one")
    (tmp_path / "input.txt").write_text("x" * 20)
    corpus = load_corpus(tmp_path, level="char")
    assert corpus.paths["train"] == tmp_path / "input.txt"


def test_char_level_directory_with_two_txt(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x" * 20)
    (tmp_path / "b.txt").write_text("y" * 20)
    with pytest.raises(DataError, match=r"exactly one \.txt file, found a\.txt, b\.txt"):
        load_corpus(tmp_path, level="char")


def test_char_level_text_too_short_to_split(tmp_path: Path) -> None:
    path = tmp_path / "tiny.txt"
    path.write_text("a")
    with pytest.raises(DataError, match=r"tiny\.txt: too short to split 90/10 into train and valid \(1 characters\)"):
        load_corpus(path, level="char")


def test_char_level_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        load_corpus(tmp_path / "missing.txt", level="char")


# ---------------------------------------------------------------------------------------------------- built in


def test_builtin_corpus_is_nonempty_deterministic_with_three_splits() -> None:
    first, second = builtin_corpus(), load_corpus(None)
    assert first.vocab == second.vocab
    for split in SPLITS:
        assert torch.equal(first.split(split), second.split(split))
    assert first.train.numel() > 50_000
    assert first.valid.numel() > 5_000 and first.test.numel() > 5_000
    assert first.unknown_counts["train"] == 0
    assert first.unknown_counts["valid"] > 0  # the manual's later topics use words the earlier ones do not


def test_builtin_splits_are_80_10_10_of_the_lines() -> None:
    lines = builtin_lines()
    corpus = builtin_corpus()
    eos_counts = [int((corpus.split(split) == corpus.vocab.eos_id).sum()) for split in SPLITS]
    assert sum(eos_counts) == len(lines)
    assert eos_counts[0] == int(len(lines) * 0.8)
    assert all(line == line.strip() and line for line in lines)


def test_builtin_corpus_at_char_level() -> None:
    corpus = load_corpus(None, level="char")
    assert corpus.level == "char"
    assert "\n" in corpus.vocab and EOS not in corpus.vocab
    assert corpus.test is not corpus.valid and corpus.test.numel() > 0


# ---------------------------------------------------------------------------------------------------- length check


def test_check_length_accepts_exactly_enough_tokens() -> None:
    check_length(torch.zeros(4 * 6, dtype=torch.long), batch_size=4, bptt=5, split_name="valid")


def test_check_length_names_the_split_and_the_numbers() -> None:
    with pytest.raises(DataError, match=r"valid split has 23 tokens, fewer than batch_size 4 x \(bptt 5 \+ 1\) = 24"):
        check_length(list(range(23)), batch_size=4, bptt=5, split_name="valid")


def test_check_length_rejects_nonpositive_sizes() -> None:
    with pytest.raises(ValueError, match="batch_size must be positive"):
        check_length([1, 2], batch_size=0, bptt=5, split_name="train")
    with pytest.raises(ValueError, match="bptt must be positive"):
        check_length([1, 2], batch_size=1, bptt=0, split_name="train")


# ---------------------------------------------------------------------------------------------------- real data


@pytest.mark.data
def test_ptb_token_counts_and_vocabulary(real_dataset: Callable[[str], Path]) -> None:
    corpus = load_corpus(real_dataset("ptb"))
    assert [corpus.split(split).numel() for split in SPLITS] == [929_589, 73_760, 82_430]
    assert len(corpus.vocab) == 10_000
    assert dict(corpus.unknown_counts) == {"train": 0, "valid": 0, "test": 0}  # valid/test add no new words
    assert int((corpus.train == corpus.vocab.stoi[UNK]).sum()) == 45_020  # PTB's own <unk> tokens


@pytest.mark.data
def test_tinyshakespeare_char_split(real_dataset: Callable[[str], Path]) -> None:
    corpus = load_corpus(real_dataset("tinyshakespeare"), level="char")
    assert (corpus.train.numel(), corpus.valid.numel()) == (1_003_854, 111_540)
    assert len(corpus.vocab) == 65 + 1  # 65 characters and <unk>


@pytest.mark.data
def test_wikitext2_token_counts_and_vocabulary(real_dataset: Callable[[str], Path]) -> None:
    corpus = load_corpus(real_dataset("wikitext2"))
    assert [corpus.split(split).numel() for split in SPLITS] == [2_088_628, 217_646, 245_569]
    assert len(corpus.vocab) == 33_278
