"""A tiny self-written treebank for the tagger's tests: random sentences from a toy grammar, as CoNLL-U files.

Words are ambiguous enough to need context ("saw" is a NOUN after a determiner, a VERB after a noun) and some forms
are spelled like known ones (capitalised, plural), so both encoders have something to learn.
"""

from __future__ import annotations

import random
from pathlib import Path

DETERMINERS = ["the", "a", "every", "this"]
ADJECTIVES = ["big", "small", "red", "old", "happy"]
NOUNS = ["cat", "dog", "saw", "bird", "man", "house", "tree", "cats", "dogs"]
VERBS = ["sees", "saw", "likes", "finds", "wants", "eats"]
NAMES = ["Anna", "Bob", "Paris", "London"]
ADVERBS = ["quickly", "often", "today"]


def _noun_phrase(rng: random.Random) -> list[tuple[str, str]]:
    if rng.random() < 0.25:
        return [(rng.choice(NAMES), "PROPN")]
    phrase = [(rng.choice(DETERMINERS), "DET")]
    if rng.random() < 0.4:
        phrase.append((rng.choice(ADJECTIVES), "ADJ"))
    phrase.append((rng.choice(NOUNS), "NOUN"))
    return phrase


def random_sentence(rng: random.Random) -> list[tuple[str, str]]:
    """(form, UPOS) pairs of one sentence."""
    words = _noun_phrase(rng) + [(rng.choice(VERBS), "VERB")] + _noun_phrase(rng)
    if rng.random() < 0.3:
        words.append((rng.choice(ADVERBS), "ADV"))
    if words[0][1] != "PROPN" and rng.random() < 0.5:
        words[0] = (words[0][0].capitalize(), words[0][1])
    words.append((rng.choice([".", "!"]), "PUNCT"))
    return words


def random_sentences(count: int, seed: int = 0) -> list:
    """``count`` random sentences as :class:`lstmkit.data.Sentence` objects with their UPOS tags set."""
    from lstmkit.data import Sentence

    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = random_sentence(rng)
        sentence = Sentence.from_tokens([form for form, _ in words])
        sentence.upos = [tag for _, tag in words]
        out.append(sentence)
    return out


def conllu_text(sentences: list[list[tuple[str, str]]], prefix: str = "s") -> str:
    """CoNLL-U for the sentences: a sent_id and text comment, 10 columns, XPOS = UPOS lowercased."""
    parts = []
    for number, words in enumerate(sentences, start=1):
        lines = [f"# sent_id = {prefix}{number}", "# text = " + " ".join(form for form, _ in words)]
        for index, (form, tag) in enumerate(words, start=1):
            head = "0" if index == 1 else "1"
            relation = "root" if index == 1 else "dep"
            lines.append("\t".join([str(index), form, form.lower(), tag, tag.lower(), "_", head, relation, "_", "_"]))
        parts.append("\n".join(lines) + "\n\n")
    return "".join(parts)


def write_treebank(directory: Path, train: int = 40, dev: int = 10, test: int = 10, seed: int = 0) -> Path:
    """Write ``tiny-ud-{train,dev,test}.conllu`` into ``directory`` (created) and return it."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("dev", dev), ("test", test)):
        sentences = [random_sentence(rng) for _ in range(count)]
        (directory / f"tiny-ud-{split}.conllu").write_text(conllu_text(sentences, split), encoding="utf-8")
    return directory
