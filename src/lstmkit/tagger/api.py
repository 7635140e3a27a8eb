"""Using a trained part-of-speech tagger: load it, tag sentences or text, score it on gold data.

The Python forms of ``lstmkit tag`` and ``lstmkit eval-tagger``::

    from lstmkit.tagger import evaluate_tagger, load_tagger, tag_sentences, tag_text

    tagger = load_tagger("runs/ewt-upos")                       # the best checkpoint, in eval mode
    tag_sentences(tagger, [["I", "saw", "her", "duck", "."]])   # [["PRON", "VERB", "PRON", "NOUN", "PUNCT"]]
    tag_text(tagger, open("file.conllu").read()).text           # CoNLL-U with the UPOS column filled in
    scores = evaluate_tagger(tagger, "test")                    # .accuracy, .tokens, .per_tag, .confusion

Every function takes a run directory or an already loaded :class:`LoadedTagger`. Loading reads only safetensors and
JSON (never pickle) and checks the files against the checkpoint's manifest. Sentences are tagged in batches of
similar length under ``torch.inference_mode``.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..data import (
    DataError,
    Sentence,
    batch_plan,
    find_conllu_splits,
    parse_conllu,
    read_conllu,
    read_plain,
    split_lines,
    strip_bom,
    treebank_tokens,
    write_conllu,
)
from ..train.checkpoint import CheckpointError, checkpoint_exists, load_checkpoint
from ..train.loop import chosen_checkpoint
from .data import TaggingVocabs, encode_sentences, make_batch, sentence_tags
from .metrics import TaggingScores, score_tags
from .model import Tagger
from .task import TrainTaggerConfig, read_tagger_info

__all__ = [
    "LoadedTagger",
    "load_tagger",
    "tag_sentences",
    "FORMATS",
    "TaggedText",
    "detect_format",
    "tag_text",
    "evaluate_tagger",
]


# ---------------------------------------------------------------------------------------------------- loading


@dataclasses.dataclass(frozen=True)
class LoadedTagger:
    """A trained tagger ready to tag: the model (in eval mode), its vocabularies, the run's configuration and the
    checkpoint directory it came from."""

    model: Tagger
    vocabs: TaggingVocabs
    config: TrainTaggerConfig
    path: Path

    @property
    def tagset(self) -> str:
        return self.vocabs.tagset

    def tag(self, sentences: Sequence[Sequence[str]] | Sequence[Sentence], batch_size: int | None = None):
        """Shorthand for :func:`tag_sentences`."""
        return tag_sentences(self, sentences, batch_size)


def load_tagger(run_dir: str | os.PathLike, checkpoint: str = "best") -> LoadedTagger:
    """Load the tagger of a run directory written by :func:`~lstmkit.tagger.task.train_tagger` /
    ``lstmkit train-tagger``.

    Args:
        run_dir: the run directory.
        checkpoint: ``"best"`` (the best dev accuracy; the last checkpoint if there is no best yet) or ``"last"``
            (the latest checkpoint, e.g. of an interrupted run).

    Raises:
        CheckpointError: a one-line message when ``run_dir`` does not exist, is not a tagger run directory, or its
            files are damaged.
    """
    run_dir = Path(run_dir)
    name = chosen_checkpoint(run_dir, checkpoint)  # ValueError for anything but best / last
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is a file, not a run directory")
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    if not checkpoint_exists(run_dir, name):
        raise CheckpointError(f"{run_dir} is not a tagger run directory (it has no {name}/ checkpoint)")
    stored = load_checkpoint(run_dir, name=name)
    config, vocabs = read_tagger_info(stored.extra.get("task"), run_dir)
    model = Tagger(config.model, len(vocabs.words), len(vocabs.chars), len(vocabs.tags))
    try:
        model.load_state_dict(stored.model_state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {stored.path}: weights do not fit the stored config: {first}") from None
    return LoadedTagger(model.eval(), vocabs, config, stored.path)


# ---------------------------------------------------------------------------------------------------- tagging


def tag_sentences(
    model_or_run_dir: LoadedTagger | str | os.PathLike,
    sentences: Sequence[Sequence[str]] | Sequence[Sentence],
    batch_size: int | None = None,
) -> list[list[str]]:
    """Predict one tag per word.

    Args:
        model_or_run_dir: a :class:`LoadedTagger` or a run directory to load one from.
        sentences: token lists (``[["The", "cat", "sat"], ...]``) or :class:`~lstmkit.data.Sentence` objects.
        batch_size: sentences per batch (default: the run's ``eval_batch_size``); batches are length-sorted.

    Returns:
        One tag list per sentence, in input order.

    Raises:
        ValueError: a sentence without words.
    """
    tagger = model_or_run_dir if isinstance(model_or_run_dir, LoadedTagger) else load_tagger(model_or_run_dir)
    forms = [list(sentence.forms) if isinstance(sentence, Sentence) else list(sentence) for sentence in sentences]
    for index, words in enumerate(forms):
        if not words:
            raise ValueError(f"sentence {index} has no words")
    pieces = [piece for index, words in enumerate(forms) for piece in _windows(index, len(words))]
    encoded = encode_sentences([forms[p.sentence][p.start : p.stop] for p in pieces], tagger.vocabs,
                               with_tags=False)
    lengths = [len(sentence.word_ids) for sentence in encoded]
    plan = _cap_words(batch_plan(lengths, batch_size or tagger.config.eval_batch_size), lengths)
    itos = tagger.vocabs.tags.itos
    results: list[list[str]] = [[] for _ in forms]
    tagger.model.eval()
    with torch.inference_mode():
        for indices in plan:
            batch = make_batch([encoded[i] for i in indices], tagger.vocabs, tagger.config.model.max_word_chars)
            predicted = tagger.model.predict(tagger.model(batch)).tolist()
            for row, index in enumerate(indices):
                piece = pieces[index]
                keep = predicted[row][piece.keep_from - piece.start : piece.keep_to - piece.start]
                results[piece.sentence].extend(itos[tag] for tag in keep)  # pieces come in order
    return results


WINDOW_WORDS = 400
"""Sentences longer than this are tagged in windows of this many words, and batches hold at most
:data:`BATCH_WORDS` words, so memory stays bounded on a line of any length (one 200,000-word line took 2.6 GB in
one piece; measured in benchmarks/RESULTS.md, "Tagging raw text"). Treebank sentences are far shorter (EWT's
longest: 159 words)."""
WINDOW_CONTEXT = 50
"""Words of context a window sees on each side beyond the words it tags."""


BATCH_WORDS = 8192
"""At most this many padded words (sentences x longest) per batch: the windows of one long line come in batches of
20, not of ``batch_size``."""


def _cap_words(plan: list[list[int]], lengths: Sequence[int]) -> list[list[int]]:
    """Split each batch of ``plan`` (sorted longest first) so that none holds more than :data:`BATCH_WORDS` padded
    words (a single longer sentence stays alone)."""
    out = []
    for indices in plan:
        rows = max(1, BATCH_WORDS // max(1, max(lengths[i] for i in indices)))
        out.extend(indices[start : start + rows] for start in range(0, len(indices), rows))
    return out


class _Piece(NamedTuple):
    sentence: int  # which sentence
    start: int  # words [start, stop) go through the model
    stop: int
    keep_from: int  # the tags of words [keep_from, keep_to) are kept
    keep_to: int


def _windows(sentence: int, length: int) -> list[_Piece]:
    """The pieces a sentence of ``length`` words is tagged in: itself, or overlapping windows of at most
    :data:`WINDOW_WORDS` words whose kept parts tile the sentence."""
    if length <= WINDOW_WORDS:
        return [_Piece(sentence, 0, length, 0, length)]
    step = WINDOW_WORDS - 2 * WINDOW_CONTEXT
    pieces = []
    for keep_from in range(0, length, step):
        keep_to = min(length, keep_from + step)
        start = max(0, keep_from - WINDOW_CONTEXT)
        stop = min(length, keep_to + WINDOW_CONTEXT)
        pieces.append(_Piece(sentence, start, stop, keep_from, keep_to))
    return pieces


FORMATS = ("auto", "plain", "conllu")
"""Input formats of :func:`tag_text`: ``"auto"`` tells them apart with :func:`detect_format`."""
_CONLLU_WORD_LINE = re.compile(r"[0-9]+([-.][0-9]+)?\t")


class TaggedText(NamedTuple):
    """What :func:`tag_text` produced: the output ``text``, its ``format``, and how many sentences and words."""

    text: str
    format: str
    sentences: int
    tokens: int


FORMAT_RULE = (
    "auto: CoNLL-U when the first line that is neither blank nor a '#' comment starts with a word ID (1, 1-2 or "
    "1.1) and a tab, plain text otherwise; so plain text, even with '#' lines, is never read as CoNLL-U, and "
    "CoNLL-U that does not parse stops with the line's error"
)
"""How :func:`detect_format` decides, in the words ``lstmkit tag --help`` shows."""


def detect_format(text: str, source: str = "<input>") -> str:
    """``"conllu"`` or ``"plain"`` by :data:`FORMAT_RULE`: plain text, even one whose first line starts with
    ``#``, is never taken for CoNLL-U."""
    for line in split_lines(strip_bom(text)):
        if not line.strip() or line.startswith("#"):
            continue
        return "conllu" if _CONLLU_WORD_LINE.match(line) else "plain"
    return "plain"


def tag_text(
    model_or_run_dir: LoadedTagger | str | os.PathLike,
    text: str,
    input_format: str = "auto",
    source: str = "<input>",
    batch_size: int | None = None,
    pretokenized: bool = False,
) -> TaggedText:
    """Tag plain text or CoNLL-U, as ``lstmkit tag`` does.

    - Plain text: one sentence per line (lines end at ``\n`` or ``\r\n`` only, so that output lines match input
      lines), cut into words as UD English does (:func:`lstmkit.data.treebank_tokens`: ``can't`` -> ``ca n't``,
      ``dog.`` -> ``dog .``) unless ``pretokenized``, where words are separated by whitespace already. The output
      has one line per non-blank input line of ``word/TAG`` items separated by spaces
      (``The/DET cat/NOUN sat/VERB ./PUNCT``).
    - CoNLL-U: the output is the input with the tag column of the model's tagset (UPOS or XPOS) filled in; every
      other column, comment, multiword token and empty node is written as read.

    Args:
        model_or_run_dir: a :class:`LoadedTagger` or a run directory.
        text: the input.
        input_format: ``"plain"``, ``"conllu"`` or ``"auto"`` (:func:`detect_format`).
        source: the input's name in error messages.
        batch_size: sentences per batch (default: the run's ``eval_batch_size``).
        pretokenized: plain text whose words are separated by whitespace already (no treebank tokenizer).

    A leading byte-order mark is ignored.

    Raises:
        DataError: empty input (no sentences), or malformed CoNLL-U (naming the line).
    """
    if input_format not in FORMATS:
        raise ValueError(f"input_format must be one of {FORMATS}, got {input_format!r}")
    text = strip_bom(text)
    if not text.strip():
        raise DataError(f"{source}: empty input, nothing to tag")
    tagger = model_or_run_dir if isinstance(model_or_run_dir, LoadedTagger) else load_tagger(model_or_run_dir)
    kind = detect_format(text, source) if input_format == "auto" else input_format
    if kind == "conllu":
        try:
            sentences = parse_conllu(text, source=source, require_upos=False)
        except DataError as error:
            if input_format != "auto":
                raise
            raise DataError(f"{error} (read as CoNLL-U: its first token line starts with an ID and a tab; "
                            "--format plain reads it as plain text)") from None
        if not sentences:
            raise DataError(f"{source}: no sentences found")
        tags = tag_sentences(tagger, sentences, batch_size)
        out = io.StringIO()
        write_conllu(sentences, out, **{tagger.tagset: tags})
        return TaggedText(out.getvalue(), kind, len(sentences), sum(len(sentence) for sentence in sentences))
    lines = split_lines(text)
    token_lists = read_plain(lines) if pretokenized else [words for words in map(treebank_tokens, lines) if words]
    if not token_lists:
        raise DataError(f"{source}: no words to tag")
    tags = tag_sentences(tagger, token_lists, batch_size)
    lines = [" ".join(f"{word}/{tag}" for word, tag in zip(words, line_tags)) + "\n"
             for words, line_tags in zip(token_lists, tags)]
    return TaggedText("".join(lines), kind, len(token_lists), sum(len(words) for words in token_lists))


# ---------------------------------------------------------------------------------------------------- scoring


def _gold_sentences(tagger: LoadedTagger, split: str, data: Any) -> tuple[str, list[Sentence]]:
    """``(name, sentences)`` of what to score: a list of sentences, a CoNLL-U file, or a treebank folder's split."""
    if isinstance(data, (list, tuple)):
        return split, list(data)
    source = Path(data) if data is not None else Path(tagger.config.data)
    if data is None and not tagger.config.data:
        raise DataError("the run records no treebank; pass data (a folder or a CoNLL-U file)")
    if source.is_file():
        return split, read_conllu(source)
    files = find_conllu_splits(source, required=(split,)) if split in ("train", "dev", "test") else None
    if files is None:
        raise DataError(f"unknown split {split!r}: choose train, dev or test (or pass a CoNLL-U file)")
    return split, read_conllu(files[split])


def evaluate_tagger(
    model_or_run_dir: LoadedTagger | str | os.PathLike,
    split: str = "test",
    data: str | os.PathLike | Sequence[Sentence] | None = None,
    batch_size: int | None = None,
) -> TaggingScores:
    """Tag gold sentences and score the tags of the run's tagset (UPOS or XPOS).

    Args:
        model_or_run_dir: a :class:`LoadedTagger` or a run directory.
        split: ``"train"``, ``"dev"`` or ``"test"``: which file of the treebank folder to score (also the name
            given to the result).
        data: a treebank folder (default: the one the run was trained on), a CoNLL-U file, or sentences.
        batch_size: sentences per batch (default: the run's ``eval_batch_size``).

    Raises:
        DataError: missing or malformed data. CheckpointError: not a tagger run directory.

    Example::

        >>> scores = evaluate_tagger("runs/ewt-upos", split="test")   # doctest: +SKIP
        >>> scores.accuracy, scores.tokens                             # doctest: +SKIP
        (0.95..., 25094)
    """
    tagger = model_or_run_dir if isinstance(model_or_run_dir, LoadedTagger) else load_tagger(model_or_run_dir)
    name, sentences = _gold_sentences(tagger, split, data)
    gold = [sentence_tags(sentence, tagger.tagset) for sentence in sentences]
    for index, tags in enumerate(gold):
        if "_" in tags:
            where = sentences[index].comment_value("sent_id") or f"number {index + 1}"
            raise DataError(f"sentence {where} of {name} has a word without a gold {tagger.tagset.upper()} tag")
    predicted = tag_sentences(tagger, sentences, batch_size)
    words = tagger.vocabs.words
    known = [[form in words for form in sentence.forms] for sentence in sentences]
    return score_tags(gold, predicted, name, tagger.vocabs.tags.itos[1:], known)
