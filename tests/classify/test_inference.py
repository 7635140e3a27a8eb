"""The fast inference form of a classifier: float32 computes the module's function; int8 stays close to it; batches
must come longest first; models with LSTM variants keep the module's path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lstmkit.classify.api import LoadedClassifier, classify_texts
from lstmkit.classify.data import make_batch
from lstmkit.classify.inference import FastClassifier, supports_fast_path
from lstmkit.classify.model import Classifier, ClassifierConfig
from lstmkit.classify.task import ClassifierRunConfig
from lstmkit.data import EOS, UNK, Vocab
from lstmkit.models import LanguageModelConfig

SMALL = LanguageModelConfig(embedding_size=6, hidden_size=10, num_layers=2)


def trained_looking(model: Classifier) -> Classifier:
    """Batch norm with running statistics other than the initial ones, so the head's eval form matters."""
    with torch.no_grad():
        for module in model.head:
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def sorted_batch(lengths: list[int], vocab_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    rows = [torch.randint(vocab_size, (n,), generator=generator).tolist() for n in lengths]
    batch = make_batch(rows, None, 0)
    return batch.words, batch.lengths


def test_float32_fast_path_computes_the_modules_logits():
    torch.manual_seed(0)
    model = trained_looking(Classifier(40, 3, ClassifierConfig(encoder=SMALL, head_hidden=5)))
    fast = FastClassifier(model)
    words, lengths = sorted_batch([9, 9, 6, 3, 1, 1], 40)
    expected = model(words, lengths).logits
    torch.testing.assert_close(fast.logits(words, lengths), expected, rtol=1e-5, atol=1e-6)
    one_word, one = sorted_batch([1], 40, seed=1)  # a batch of one example of one token
    torch.testing.assert_close(fast.logits(one_word, one), model(one_word, one).logits, rtol=1e-5, atol=1e-6)


def test_the_fast_path_refuses_a_batch_that_is_not_longest_first():
    model = trained_looking(Classifier(40, 2, ClassifierConfig(encoder=SMALL, head_hidden=5)))
    words, _ = sorted_batch([5, 3, 2], 40)
    with pytest.raises(ValueError, match="longest first"):
        FastClassifier(model).logits(words, torch.tensor([3, 5, 2]))
    with pytest.raises(ValueError, match=r"values in 1 \.\. T = 5"):
        FastClassifier(model).logits(words, torch.tensor([6, 3, 2]))


def test_int8_is_quantized_yet_close_to_float32():
    torch.manual_seed(0)
    config = LanguageModelConfig(embedding_size=16, hidden_size=32, num_layers=2)
    model = trained_looking(Classifier(60, 2, ClassifierConfig(encoder=config, head_hidden=8)))
    words, lengths = sorted_batch([12, 10, 10, 7, 4, 2], 60)
    exact = FastClassifier(model).logits(words, lengths)
    int8 = FastClassifier(model, int8=True).logits(words, lengths)
    difference = (int8 - exact).abs().max().item()
    assert 0 < difference < 0.05 * exact.abs().max().item()  # int8 arithmetic, within a few % of the logits


def vocab_of(texts: list[str]) -> Vocab:
    return Vocab.build((word for text in texts for word in text.split()), specials=(UNK, EOS))


def test_classify_texts_float32_equals_the_module_and_int8_is_an_option():
    texts = ["a good film", "a bad long boring film that goes on", "good", "", "bad bad film"]
    vocab = vocab_of(texts)
    torch.manual_seed(0)
    model = trained_looking(Classifier(len(vocab), 2, ClassifierConfig(encoder=SMALL, head_hidden=5)))
    clf = LoadedClassifier(model, vocab, ["negative", "positive"], ClassifierRunConfig(), Path("memory"))
    fast = classify_texts(clf, texts)
    assert list(clf.fast) == [False]  # float32 went through the fast form
    ids = [[vocab.eos_id, *vocab.encode(text.split())] for text in texts]
    for text, row, prediction in zip(texts, ids, fast):
        logits = model(torch.tensor(row).unsqueeze(1), torch.tensor([len(row)])).logits[0].detach()
        probability, index = torch.softmax(logits, dim=0).max(dim=0)
        assert prediction.label == clf.labels[int(index)], text
        assert prediction.probability == pytest.approx(float(probability), abs=1e-5)
    assert len(classify_texts(clf, texts, precision="int8")) == len(texts) and True in clf.fast


def test_a_model_with_lstm_variants_keeps_the_modules_path():
    config = LanguageModelConfig(embedding_size=6, hidden_size=10, num_layers=2)
    model = Classifier(20, 2, ClassifierConfig(encoder=config, head_hidden=5)).eval()
    assert supports_fast_path(model)
    model.encoder.layers[0].cell_clip = 3.0  # a variant the fast path does not compute
    assert not supports_fast_path(model)
    with pytest.raises(ValueError, match="plain one-layer float32 LSTM layers"):
        FastClassifier(model)
    texts = ["w1 w2", "w3"]
    clf = LoadedClassifier(model, vocab_of(["w1 w2 w3"]), ["negative", "positive"], ClassifierRunConfig(),
                           Path("memory"))
    assert len(classify_texts(clf, texts)) == 2 and clf.fast == {}
    with pytest.raises(ValueError, match="precision='int8' needs plain LSTM layers"):
        classify_texts(clf, texts, precision="int8")


def test_workers_take_whole_batches_and_give_the_same_probabilities():
    texts = [" ".join(f"w{(i * 7 + j) % 13}" for j in range(1 + i % 9)) for i in range(23)]
    vocab = vocab_of(texts)
    torch.manual_seed(0)
    model = trained_looking(Classifier(len(vocab), 3, ClassifierConfig(encoder=SMALL, head_hidden=5)))
    clf = LoadedClassifier(model, vocab, ["a", "b", "c"], ClassifierRunConfig(), Path("memory"))
    threads = torch.get_num_threads()
    one = classify_texts(clf, texts, batch_size=4, workers=1)
    for precision in ("float32", "int8", "bfloat16"):
        alone = classify_texts(clf, texts, batch_size=4, precision=precision, workers=1)
        together = classify_texts(clf, texts, batch_size=4, precision=precision, workers=3)
        assert [p.label for p in together] == [p.label for p in alone], precision
        assert [p.probability for p in together] == pytest.approx([p.probability for p in alone], abs=1e-6)
        assert torch.get_num_threads() == threads  # restored after the workers
    assert [p.label for p in one] == [p.label for p in classify_texts(clf, texts, batch_size=4, workers=3)]
    assert classify_texts(clf, [], workers=2) == []
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        classify_texts(clf, texts, workers=0)
