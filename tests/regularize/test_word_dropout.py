import doctest
import importlib

import pytest
import torch

from lstmkit.regularize import WordDropout, word_dropout, word_dropout_probabilities


def test_probabilities_are_alpha_over_alpha_plus_count():
    probabilities = word_dropout_probabilities([0, 1, 3, 99], alpha=1.0)
    torch.testing.assert_close(probabilities, torch.tensor([1.0, 0.5, 0.25, 0.01]))
    assert torch.equal(word_dropout_probabilities([0, 5], alpha=0.0), torch.zeros(2))
    with pytest.raises(ValueError, match="non-negative"):
        word_dropout_probabilities([1], alpha=-1.0)
    with pytest.raises(ValueError, match="counts"):
        word_dropout_probabilities([-1], alpha=1.0)


def test_rare_words_become_unk_at_their_rate_and_frequent_ones_almost_never():
    probabilities = word_dropout_probabilities([0, 1, 10_000], alpha=0.25)  # singleton: 0.2
    words = torch.tensor([1, 2]).repeat(20_000)
    dropped = word_dropout(words, probabilities, unk_id=0, generator=torch.Generator().manual_seed(0))
    assert set(dropped.unique().tolist()) <= {0, 1, 2}
    assert torch.equal(dropped[dropped != 0], words[dropped != 0])  # survivors keep their id
    singleton_rate = (dropped[words == 1] == 0).float().mean().item()
    frequent_rate = (dropped[words == 2] == 0).float().mean().item()
    assert abs(singleton_rate - 0.2) < 0.02 and frequent_rate < 0.001


def test_identity_in_eval_and_the_module_follows_training():
    module = WordDropout([0, 1, 1, 1], alpha=100.0)
    words = torch.tensor([[1, 2, 3]] * 50)
    module.eval()
    assert module(words) is words
    module.train()
    assert (module(words) == 0).any()
    assert "probabilities" in module.state_dict()


def test_docstring_example():
    module = importlib.import_module("lstmkit.regularize.word_dropout")  # the package attribute is the function
    result = doctest.testmod(module, extraglobs={"torch": torch})
    assert result.attempted > 0 and result.failed == 0
