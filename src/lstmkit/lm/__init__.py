"""lstmkit.lm: the AWD-LSTM language model as one package: the model (:mod:`.model`), its training task and
presets (:mod:`.task`, ``lstmkit train-lm``), and using a trained one (:mod:`.api`: ``eval-lm``, ``generate``,
``next-word``). Its corpora and BPTT windows come from :mod:`lstmkit.data`, which the classifier's fine-tuning
reads too.
"""

from .api import LMEvaluation, TrainedLM, evaluate_lm, generate, load_language_model, next_words, tokenize_prompt
from .model import LanguageModel, LanguageModelConfig, LMHidden, LMLoss, LMOutput, detach_hidden
from .task import (
    PRESETS,
    LanguageModelTask,
    LMDataConfig,
    LMOptimConfig,
    LMRunConfig,
    make_config,
    preset_config,
    train_language_model,
)

__all__ = [
    "LanguageModel", "LanguageModelConfig", "LMOutput", "LMLoss", "LMHidden", "detach_hidden",
    "LMDataConfig", "LMOptimConfig", "LMRunConfig", "PRESETS", "preset_config", "make_config", "LanguageModelTask",
    "train_language_model",
    "TrainedLM", "LMEvaluation", "load_language_model", "evaluate_lm", "generate", "next_words", "tokenize_prompt",
]
