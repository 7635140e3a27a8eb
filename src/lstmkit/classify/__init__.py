"""lstmkit.classify: sentence classification the ULMFiT way (Howard and Ruder 2018).

Pretrain a language model (``lstmkit train-lm``), fine-tune it on the target text (:mod:`.finetune`,
``lstmkit finetune-lm``), then train a classifier on its encoder (:mod:`.task`, ``lstmkit train-classifier``) with
concat pooling (:mod:`.model`), gradual unfreezing, discriminative and slanted triangular learning rates; use it
with :mod:`.api` (``lstmkit classify``, ``lstmkit eval-classifier``). Data: SST trees and MR (:mod:`.data`).
"""

from .api import (
    ClassificationScores,
    LoadedClassifier,
    Prediction,
    classify_texts,
    evaluate_classifier,
    load_classifier,
)
from .data import LABELS, TASKS, Example, SSTTree, mr_folds, parse_tree, read_mr, read_sst, sst_examples, tokenize
from .finetune import extend_vocab, finetune_language_model, map_embeddings
from .model import Classifier, ClassifierConfig, ClassifierOutput, concat_pool
from .task import ClassifierRunConfig, ClassifierTask, stlr_factor, train_classifier

__all__ = [
    "TASKS", "LABELS", "Example", "SSTTree", "tokenize", "parse_tree", "read_sst", "sst_examples", "read_mr",
    "mr_folds", "Classifier", "ClassifierConfig", "ClassifierOutput", "concat_pool", "ClassifierRunConfig",
    "ClassifierTask", "stlr_factor", "train_classifier", "extend_vocab", "map_embeddings",
    "finetune_language_model", "LoadedClassifier", "Prediction", "ClassificationScores", "load_classifier",
    "classify_texts", "evaluate_classifier",
]
