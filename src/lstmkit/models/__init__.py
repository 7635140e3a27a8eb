"""lstmkit.models: applications composed from nn + regularize; they return NamedTuples, not bare tuples."""

from .language_model import LanguageModel, LanguageModelConfig, LMHidden, LMLoss, LMOutput, detach_hidden

__all__ = ["LanguageModel", "LanguageModelConfig", "LMOutput", "LMLoss", "LMHidden", "detach_hidden"]
