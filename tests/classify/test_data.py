"""Readers of SST trees and MR files, the tokenizer, cross-validation folds and padded batches."""

from __future__ import annotations

import pytest
import torch

from lstmkit.classify.data import (
    make_batch,
    mr_folds,
    parse_tree,
    read_mr,
    read_sst,
    sst_examples,
    target_text,
    task_splits,
    tokenize,
)
from lstmkit.data import DataError

from tiny_sentiment import write_mr, write_sst


def test_tokenize_splits_clitics_and_punctuation_like_the_treebank():
    assert tokenize("It isn't Van Damme's best (sadly)...") == [
        "it", "is", "n't", "van", "damme", "'s", "best", "(", "sadly", ")", "..."]
    assert tokenize("a co-writer/director's 3.5-star j.r.r ``film''") == [
        "a", "co-writer/director", "'s", "3.5-star", "j.r.r", '"', "film", '"']
    assert tokenize("can't") == ["ca", "n't"]  # as the Penn Treebank splits it


def test_parse_tree_reads_the_sentence_its_label_and_every_phrase():
    tree = parse_tree(r"(3 (2 (2 The) (2 co-writer\/director)) (4 (4 (2 -LRB-) (4 (3 great) (2 -RRB-))) (2 .)))")
    assert tree.tokens == ("the", "co-writer/director", "(", "great", ")", ".")
    assert tree.label == 3
    assert (4, ("(", "great", ")", ".")) in tree.phrases
    assert tree.phrases[-1] == (3, tree.tokens)
    assert len(tree.phrases) == 11  # 6 leaves + 5 inner nodes


@pytest.mark.parametrize("line, message", [
    ("(3 (2 a) (2 b)", "not closed"),
    ("(7 (2 a))", "label '7' is not a sentiment 0-4"),
    ("(3 (2 a)) (2 b)", "unexpected text after the tree"),
    ("3 a", "expected a tree"),
    ("(2 ())", "without a label"),
])
def test_malformed_trees_name_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "train.txt"
    path.write_text("(3 (2 fine) (3 film))\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"train.txt: line 3: .*{message}"):
        read_sst(path)


def test_sst2_drops_neutral_and_merges_the_ends_sst5_keeps_five_labels(tmp_path):
    trees = read_sst(write_sst(tmp_path, sizes=(10, 5, 5)) / "train.txt")
    assert [tree.label for tree in trees] == [0, 1, 2, 3, 4] * 2
    assert [e.label for e in sst_examples(trees, "sst2")] == [0, 0, 1, 1] * 2
    assert [e.label for e in sst_examples(trees, "sst5")] == [0, 1, 2, 3, 4] * 2


def test_phrases_add_each_labelled_phrase_once_after_the_sentences(tmp_path):
    trees = [parse_tree("(4 (2 a) (4 (4 great) (2 film)))"), parse_tree("(3 (2 a) (4 (4 great) (2 story)))")]
    examples = sst_examples(trees, "sst2", phrases=True)
    assert examples[:2] == [(("a", "great", "film"), 1), (("a", "great", "story"), 1)]
    phrases = examples[2:]
    assert (("great",), 1) in phrases and len(set(phrases)) == len(phrases)
    assert all(label != 2 for _, label in examples)  # neutral phrases ("a", "film") are dropped for SST-2
    assert phrases.count((("great",), 1)) == 1  # seen in both trees, kept once


def test_read_mr_labels_negative_then_positive_and_rejects_empty_lines(tmp_path):
    folder = write_mr(tmp_path / "mr", per_class=4)
    examples = read_mr(folder)
    assert [e.label for e in examples] == [0] * 4 + [1] * 4
    (folder / "rt-polarity.pos").write_text("a fine film .\n \n", encoding="utf-8")
    with pytest.raises(DataError, match=r"rt-polarity.pos: line 2: no words"):
        read_mr(folder)
    (folder / "rt-polarity.neg").unlink()
    with pytest.raises(DataError, match="no rt-polarity.neg"):
        read_mr(folder)


def test_mr_folds_are_seeded_balanced_and_split_every_example_once(tmp_path):
    folds = mr_folds(103, folds=10, seed=0)
    assert folds == mr_folds(103, folds=10, seed=0) and folds != mr_folds(103, folds=10, seed=1)
    sizes = [folds.count(k) for k in range(10)]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 103
    splits = task_splits(write_mr(tmp_path, per_class=30), "mr", fold=3)
    assert len(splits["test"]) == 6 and len(splits["dev"]) == 6 and len(splits["train"]) == 48
    test_again = task_splits(tmp_path, "mr", fold=3)["test"]
    assert test_again == splits["test"]
    other = task_splits(tmp_path, "mr", fold=4)["test"]
    assert not set(map(id, other)) & set(map(id, splits["test"]))
    with pytest.raises(DataError, match="fold 10 is outside 0 .. 9"):
        task_splits(tmp_path, "mr", fold=10)


def test_task_splits_name_a_missing_sst_file(tmp_path):
    folder = write_sst(tmp_path)
    (folder / "dev.txt").unlink()
    with pytest.raises(DataError, match="no dev.txt"):
        task_splits(folder, "sst2")


def test_target_text_uses_train_and_dev_sentences_of_sst_never_test(tmp_path):
    folder = write_sst(tmp_path, sizes=(6, 3, 2))
    train, valid = target_text(folder)
    assert len(train) == 6 and len(valid) == 3
    mr_train, mr_valid = target_text(write_mr(tmp_path / "mr", per_class=10))
    assert len(mr_train) == 18 and len(mr_valid) == 2


def test_make_batch_pads_after_each_example_and_masks_the_padding():
    batch = make_batch([[5, 6, 7], [8], []], [1, 0, 1], pad_id=0)
    assert batch.words.shape == (3, 3)
    assert batch.lengths.tolist() == [3, 1, 1]
    assert batch.words[:, 0].tolist() == [5, 6, 7] and batch.words[1:, 1].tolist() == [0, 0]
    assert batch.mask.tolist() == [[True, True, True], [True, False, False], [True, False, False]]
    assert torch.equal(batch.labels, torch.tensor([1, 0, 1]))
    with pytest.raises(ValueError, match="3 examples but 2 labels"):
        make_batch([[1], [2], [3]], [0, 1], pad_id=0)
