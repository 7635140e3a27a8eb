"""lstmkit.models: applications composed from nn + regularize; they return NamedTuples, not bare tuples."""

from .language_model import LanguageModel, LanguageModelConfig, LMHidden, LMLoss, LMOutput, detach_hidden
from .tagger import Tagger, TaggerConfig, TaggerOutput, tagging_loss

__all__ = [
    "LanguageModel", "LanguageModelConfig", "LMOutput", "LMLoss", "LMHidden", "detach_hidden",
    "Tagger", "TaggerConfig", "TaggerOutput", "tagging_loss",
]
