"""lstmkit.tagger: the BiLSTM part-of-speech tagger as one package: padded batches of sentences (:mod:`.data`),
the model (:mod:`.model`), its training task (:mod:`.task`, ``lstmkit train-tagger``), accuracy and per-tag scores
(:mod:`.metrics`), and using a trained one (:mod:`.api`: ``lstmkit tag``, ``lstmkit eval-tagger``). CoNLL-U files
are read by :mod:`lstmkit.data`.
"""

from .api import FORMAT_RULE, LoadedTagger, detect_format, evaluate_tagger, load_tagger, tag_sentences, tag_text
from .data import PAD_TAG, TAGSETS, EncodedSentence, TaggingBatch, TaggingVocabs, encode_sentences, make_batch
from .metrics import TaggingScores, TagScore, plot_confusion, score_tags
from .model import Tagger, TaggerConfig, TaggerOutput, tagging_loss
from .task import TaggerOptimConfig, TaggingTask, TrainTaggerConfig, read_tagger_info, train_tagger

__all__ = [
    "TAGSETS", "PAD_TAG", "TaggingVocabs", "EncodedSentence", "TaggingBatch", "encode_sentences", "make_batch",
    "Tagger", "TaggerConfig", "TaggerOutput", "tagging_loss",
    "TaggerOptimConfig", "TrainTaggerConfig", "TaggingTask", "train_tagger", "read_tagger_info",
    "TagScore", "TaggingScores", "score_tags", "plot_confusion",
    "FORMAT_RULE", "LoadedTagger", "detect_format", "load_tagger", "tag_sentences", "tag_text", "evaluate_tagger",
]
