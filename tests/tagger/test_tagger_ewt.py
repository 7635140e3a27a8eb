"""The tagger's data path on the real UD English EWT treebank (skipped when the shared data are absent)."""

from __future__ import annotations

import pytest
import torch

from lstmkit.data import batch_plan, find_conllu_splits, read_conllu
from lstmkit.tagger.data import TaggingVocabs, encode_sentences, make_batch
from lstmkit.tagger import Tagger, TaggerConfig

pytestmark = pytest.mark.data


def test_ewt_vocabularies_and_one_batch_through_a_tagger(real_data) -> None:
    folder = real_data / "ud_english_ewt"
    if not folder.is_dir():
        pytest.skip(f"UD English EWT not found at {folder}")
    files = find_conllu_splits(folder, required=("train", "dev", "test"))
    train = read_conllu(files["train"])
    vocabs = TaggingVocabs.build(train, "upos")
    assert len(vocabs.tags) == 18  # the 17 UPOS tags of EWT and <unk>
    assert sum(vocabs.word_counts) == sum(len(sentence) for sentence in train) == 204_577
    test = encode_sentences(read_conllu(files["test"]), vocabs)
    plan = batch_plan([len(sentence.word_ids) for sentence in test], 256)
    assert sum(len(batch) for batch in plan) == 2077
    batch = make_batch([test[i] for i in plan[0]], vocabs)
    torch.manual_seed(0)
    model = Tagger.from_vocabs(TaggerConfig(hidden_size=8, char_hidden_size=4, word_embedding_size=4), vocabs).eval()
    with torch.inference_mode():
        output = model(batch)
    assert output.logits.shape == (*batch.word_ids.shape, 18)
