"""lstmkit.data: text -> tokens -> vocabulary -> ids -> batches, and CoNLL-U for tagging.

Stands alone: imports torch tensors only, nothing else from lstmkit and nothing from torch.nn.

Language modelling::

    corpus = load_corpus("../shared/data/ptb")             # or load_corpus(None) for the built-in corpus
    check_length(corpus.train, batch_size=20, bptt=70, split_name="train")
    train = batchify(corpus.train, 20)                     # (N // 20, 20)
    for inputs, targets, seq_len, lr_scale, start in bptt_windows(train, 70, generator=generator):
        ...

Tagging::

    sentences = read_conllu("en_ewt-ud-train.conllu")      # Sentence.forms, .upos, .xpos
    vocabs = TaggingVocabs.build(sentences, tagset="upos")
    encoded = encode_sentences(sentences, vocabs)
    for indices in batch_plan([len(s) for s in sentences], batch_size=32, generator=generator):
        batch = make_batch([encoded[i] for i in indices], vocabs)   # TaggingBatch: word_ids (B, T), lengths, ...
    write_conllu(sentences, "predicted.conllu", upos=predicted_tags)
"""

from lstmkit.data.batching import BpttWindow, batchify, bptt_windows, sample_seq_len
from lstmkit.data.conllu import (
    COLUMN_NAMES,
    Sentence,
    parse_conllu,
    read_conllu,
    read_plain,
    sentence_to_conllu,
    write_conllu,
)
from lstmkit.data.corpus import (
    SPLITS,
    WORD_LEVEL_LAYOUTS,
    Corpus,
    builtin_corpus,
    builtin_lines,
    check_length,
    find_split_files,
    load_char_corpus,
    load_corpus,
    load_word_corpus,
    word_tokens,
)
from lstmkit.data.errors import DataError
from lstmkit.data.tagging import (
    PAD_TAG,
    TAGSETS,
    EncodedSentence,
    TaggingBatch,
    TaggingVocabs,
    batch_plan,
    encode_sentences,
    find_conllu_splits,
    make_batch,
    sentence_tags,
    word_chars,
)
from lstmkit.data.textfile import read_utf8_text, split_lines, strip_bom
from lstmkit.data.tokenize import treebank_tokens
from lstmkit.data.vocab import EOS, UNK, EncodedTokens, Vocab

__all__ = [
    # errors and text files
    "DataError",
    "read_utf8_text",
    "split_lines",
    "strip_bom",
    "treebank_tokens",
    # vocabulary
    "UNK",
    "EOS",
    "Vocab",
    "EncodedTokens",
    # language-model corpora
    "SPLITS",
    "WORD_LEVEL_LAYOUTS",
    "Corpus",
    "load_corpus",
    "load_word_corpus",
    "load_char_corpus",
    "builtin_corpus",
    "builtin_lines",
    "find_split_files",
    "word_tokens",
    "check_length",
    # batching
    "batchify",
    "BpttWindow",
    "sample_seq_len",
    "bptt_windows",
    # CoNLL-U and plain text
    "COLUMN_NAMES",
    "Sentence",
    "read_conllu",
    "parse_conllu",
    "sentence_to_conllu",
    "write_conllu",
    "read_plain",
    # tagging: vocabularies and padded batches of sentences
    "TAGSETS",
    "PAD_TAG",
    "TaggingVocabs",
    "EncodedSentence",
    "TaggingBatch",
    "sentence_tags",
    "encode_sentences",
    "make_batch",
    "batch_plan",
    "find_conllu_splits",
    "word_chars",
]
