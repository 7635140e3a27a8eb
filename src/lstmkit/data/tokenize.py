"""Splitting raw English text into words the way the Universal Dependencies English treebanks do.

A tagger trained on UD English EWT has seen ``ca n't``, ``John 's``, ``dog .`` and ``( maybe )`` as separate
words; raw text such as ``The dog can't run.`` must be cut the same way before tagging, or ``run.`` and ``can't``
reach the model as unknown words. :func:`treebank_tokens` uses NLTK's Penn Treebank tokenizer
(``nltk.tokenize.TreebankWordTokenizer``), whose rules are the ones UD English follows for clitics (``n't``, ``'s``,
``'m``, ``'re``, ``'ll``, ``'ve``, ``'d``), punctuation and brackets, and returns the words as they appear in the
text (quotes stay ``"``, not the tokenizer's `````` / ``''``). Only a full stop at the end of the line is split
off (a line is taken as one sentence; ``U.S.`` and ``3.50`` keep theirs). Measured effect on tagging accuracy:
benchmarks/RESULTS.md, "Tagging raw text".
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["treebank_tokens"]


@lru_cache(maxsize=1)
def _tokenizer():
    from nltk.tokenize import TreebankWordTokenizer  # imported on first use: nltk takes a moment to load

    return TreebankWordTokenizer()


def treebank_tokens(line: str) -> list[str]:
    """The words of one line of raw text, cut as UD English does (see the module docstring).

    Example::

        >>> treebank_tokens('He said "hi" to John\\'s dog, didn\\'t he?')
        ['He', 'said', '"', 'hi', '"', 'to', 'John', "'s", 'dog', ',', 'did', "n't", 'he', '?']
    """
    if not line.strip():
        return []
    tokenizer = _tokenizer()
    try:
        return [line[start:end] for start, end in tokenizer.span_tokenize(line)]
    except ValueError:  # the tokenizer could not align its words with the text: take its words as they are
        return ['"' if word in ("``", "''") else word for word in tokenizer.tokenize(line)]
