"""lstmkit.data: what more than one task reads: text -> tokens -> vocabulary -> ids -> batches, and CoNLL-U.

Stands alone: imports torch tensors only, nothing else from lstmkit and nothing from torch.nn.

Language modelling::

    corpus = load_corpus("../shared/data/ptb")             # or load_corpus(None) for the built-in corpus
    check_length(corpus.train, batch_size=20, bptt=70, split_name="train")
    train = batchify(corpus.train, 20)                     # (N // 20, 20)
    for inputs, targets, seq_len, lr_scale, start in bptt_windows(train, 70, generator=generator):
        ...

Sentences (the tagger's vocabularies and padded batches are in :mod:`lstmkit.tagger.data`)::

    files = find_conllu_splits("../shared/data/ud_english_ewt")          # {"train": Path, "dev": Path, ...}
    sentences = read_conllu(files["train"])                               # Sentence.forms, .upos, .xpos
    for indices in batch_plan([len(s.forms) for s in sentences], batch_size=32, generator=generator):
        ...                                                               # similar lengths in each batch
    write_conllu(sentences, "predicted.conllu", upos=predicted_tags)
"""

from lstmkit.data.batching import BpttWindow, batch_plan, batchify, bptt_windows, sample_seq_len
from lstmkit.data.conllu import (
    COLUMN_NAMES,
    Sentence,
    find_conllu_splits,
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
    "batch_plan",
    # CoNLL-U and plain text
    "COLUMN_NAMES",
    "Sentence",
    "read_conllu",
    "parse_conllu",
    "sentence_to_conllu",
    "write_conllu",
    "read_plain",
    "find_conllu_splits",
]
