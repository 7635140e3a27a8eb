"""Tests for lstmkit.tagger.data: vocabularies, encoding, padded batches, batch plans, split discovery."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lstmkit.data import DataError, Sentence, batch_plan, find_conllu_splits, parse_conllu
from lstmkit.tagger.data import PAD_TAG, TaggingVocabs, encode_sentences, make_batch, word_chars
from tiny_treebank import write_treebank


def tagged(forms: str, tags: str) -> Sentence:
    sentence = Sentence.from_tokens(forms.split())
    sentence.upos = tags.split()
    sentence.xpos = [tag.lower() for tag in tags.split()]
    return sentence


TRAIN = [tagged("the cat sat", "DET NOUN VERB"), tagged("the dog sat down", "DET NOUN VERB ADV")]


def test_vocabs_come_from_training_words_with_unk_first_and_counts() -> None:
    vocabs = TaggingVocabs.build(TRAIN)
    assert vocabs.words.itos[:3] == ("<unk>", "the", "sat")
    assert vocabs.word_counts[vocabs.words.stoi["the"]] == 2 and vocabs.word_counts[0] == 0
    assert vocabs.tags.itos == ("<unk>", "DET", "NOUN", "VERB", "ADV")
    assert set(vocabs.chars.itos) == {"<unk>", *"thecatsdogwn"}
    assert TaggingVocabs.from_dict(vocabs.to_dict()) == vocabs
    assert TaggingVocabs.build(TRAIN, tagset="xpos").tags.itos[1] == "det"


def test_vocabs_reject_untagged_training_words_and_bad_descriptions() -> None:
    untagged = Sentence.from_tokens(["hello"])
    with pytest.raises(DataError, match="without a UPOS tag"):
        TaggingVocabs.build([untagged])
    with pytest.raises(DataError, match="no training sentences"):
        TaggingVocabs.build([])
    with pytest.raises(ValueError, match="not a tagging vocabulary"):
        TaggingVocabs.from_dict({"words": {"itos": ["<unk>"]}})
    with pytest.raises(ValueError, match="tagset"):
        TaggingVocabs.build(TRAIN, tagset="deprel")


def test_a_batch_pads_words_with_zero_tags_with_pad_and_spells_each_form_once() -> None:
    vocabs = TaggingVocabs.build(TRAIN)
    encoded = encode_sentences([tagged("the zebra sat", "DET NOUN VERB"), tagged("the cat", "DET NOUN")], vocabs)
    batch = make_batch(encoded, vocabs)
    assert batch.word_ids.tolist() == [[1, 0, 2], [1, vocabs.words.stoi["cat"], 0]]
    assert batch.lengths.tolist() == [3, 2] and batch.num_tokens == 5
    assert batch.tags[1, 2].item() == PAD_TAG and batch.tags[0, 1].item() == vocabs.tags.stoi["NOUN"]
    assert batch.mask.tolist() == [[True, True, True], [True, True, False]]
    assert batch.char_ids.shape == (4, 5)  # the, zebra, sat, cat: "the" spelled once
    assert batch.char_lengths.tolist() == [3, 5, 3, 3]
    assert batch.word_index.tolist() == [[0, 1, 2], [0, 3, 0]]
    assert batch.char_ids[1, :5].tolist() == vocabs.chars.encode("zebra")  # unseen 'z', 'b' -> 0
    untagged = make_batch(encode_sentences([["the", "cat"]], vocabs, with_tags=False), vocabs)
    assert untagged.tags is None


def test_long_forms_keep_their_head_and_tail() -> None:
    assert word_chars("short", 8) == "short"
    assert word_chars("http://example.com/a/b", 8) == "http/a/b"
    assert len(word_chars("x" * 100, 33)) == 33


def test_batch_plan_sorted_for_inference_and_reproducible_for_training() -> None:
    lengths = [3, 9, 1, 7, 5, 2, 8]
    assert batch_plan(lengths, 3) == [[1, 6, 3], [4, 0, 5], [2]]
    plan = batch_plan(lengths, 2, torch.Generator().manual_seed(1), pool_batches=2)
    assert sorted(index for batch in plan for index in batch) == list(range(7))
    assert plan == batch_plan(lengths, 2, torch.Generator().manual_seed(1), pool_batches=2)
    for batch in plan:  # each batch is sorted by length within its pool
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)


def test_find_conllu_splits(tmp_path: Path) -> None:
    write_treebank(tmp_path / "tb")
    found = find_conllu_splits(tmp_path / "tb")
    assert {split: path.name for split, path in found.items()} == {
        "train": "tiny-ud-train.conllu", "dev": "tiny-ud-dev.conllu", "test": "tiny-ud-test.conllu"
    }
    with pytest.raises(DataError, match="no such directory"):
        find_conllu_splits(tmp_path / "missing")
    (tmp_path / "tb" / "tiny-ud-dev.conllu").unlink()
    with pytest.raises(DataError, match="no dev file"):
        find_conllu_splits(tmp_path / "tb")


def test_encoding_parsed_conllu_keeps_forms_and_tags() -> None:
    text = "1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n\n"
    vocabs = TaggingVocabs.build(parse_conllu(text))
    (sentence,) = encode_sentences(parse_conllu(text), vocabs)
    assert sentence.forms == ("Hi",) and sentence.word_ids == (1,) and sentence.tag_ids == (1,)
    with pytest.raises(ValueError, match="token lists have no tags"):
        encode_sentences([["Hi"]], vocabs)
