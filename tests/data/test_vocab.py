"""Tests for lstmkit.data.vocab.Vocab."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmkit.data.vocab import EOS, UNK, Vocab


def test_build_orders_specials_then_descending_count_then_first_occurrence() -> None:
    vocab = Vocab.build("b a c a b d a".split())
    # counts: a 3, b 2, c 1, d 1; c occurs before d
    assert vocab.itos == (UNK, EOS, "a", "b", "c", "d")
    assert vocab.unk_id == 0 and vocab.eos_id == 1


def test_build_counts_a_special_in_the_text_once() -> None:
    vocab = Vocab.build(["x", UNK, "y", UNK, EOS])
    assert vocab.itos == (UNK, EOS, "x", "y")


def test_build_is_deterministic() -> None:
    tokens = "one two three two three three four".split()
    assert Vocab.build(tokens) == Vocab.build(list(tokens))


def test_min_count_leaves_rare_tokens_out() -> None:
    vocab = Vocab.build("a a b c c c".split(), min_count=2)
    assert vocab.itos == (UNK, EOS, "c", "a")
    assert vocab.encode(["b"]) == [vocab.unk_id]


def test_character_vocabulary_without_eos() -> None:
    vocab = Vocab.build("hello", specials=(UNK,))
    assert vocab.itos == (UNK, "l", "h", "e", "o")
    assert vocab.eos_id is None


def test_encode_and_decode() -> None:
    vocab = Vocab.build("the cat sat on the mat".split())
    ids = vocab.encode(["the", "cat", "dog"])
    assert ids == [2, 3, vocab.unk_id]
    assert vocab.decode(ids) == ["the", "cat", UNK]
    assert vocab.decode(torch.tensor(ids)) == ["the", "cat", UNK]


def test_encode_counting_unknown_counts_tokens_outside_the_vocabulary_only() -> None:
    vocab = Vocab.build(["a", "b", UNK])
    encoded = vocab.encode_counting_unknown(["a", "zzz", UNK, "yyy", "b"])
    assert encoded.ids.dtype == torch.long
    assert encoded.ids.tolist() == [2, 0, 0, 0, 3]
    assert encoded.unknown_count == 2  # the literal <unk> is a known token


def test_decode_rejects_ids_out_of_range() -> None:
    vocab = Vocab.build(["a"])
    with pytest.raises(IndexError, match="id 7 is outside the vocabulary of size 3"):
        vocab.decode([7])
    with pytest.raises(IndexError, match="id -1"):
        vocab.decode([-1])


def test_stoi_and_itos_agree_and_stoi_is_read_only() -> None:
    vocab = Vocab.build("x y z y".split())
    assert all(vocab.itos[index] == token for token, index in vocab.stoi.items())
    assert len(vocab) == len(vocab.stoi) == 5
    assert "y" in vocab and "w" not in vocab
    with pytest.raises(TypeError):
        vocab.stoi["w"] = 9  # type: ignore[index]


def test_to_dict_is_json_and_round_trips() -> None:
    vocab = Vocab.build("ünïcode words and words".split())
    state = json.loads(json.dumps(vocab.to_dict()))
    assert Vocab.from_dict(state) == vocab


def test_constructor_rejects_duplicates_and_missing_unknown() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Vocab([UNK, "a", "a"])
    with pytest.raises(ValueError, match="unknown token"):
        Vocab(["a", "b"])
    with pytest.raises(ValueError, match="'itos'"):
        Vocab.from_dict({"tokens": []})


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=3), max_size=40))
def test_every_training_token_decodes_to_itself(tokens: list[str]) -> None:
    vocab = Vocab.build(tokens)
    assert vocab.decode(vocab.encode(tokens)) == tokens
    assert vocab.encode_counting_unknown(tokens).unknown_count == 0
