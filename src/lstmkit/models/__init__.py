"""lstmkit.models: the models of every task in one namespace. Each now lives in its task's package
(:mod:`lstmkit.lm.model`, :mod:`lstmkit.tagger.model`); this module re-exports them so that
``from lstmkit.models import LanguageModel, Tagger`` keeps working."""

from ..lm.model import LanguageModel, LanguageModelConfig, LMHidden, LMLoss, LMOutput, detach_hidden
from ..tagger.model import Tagger, TaggerConfig, TaggerOutput, tagging_loss

__all__ = [
    "LanguageModel", "LanguageModelConfig", "LMOutput", "LMLoss", "LMHidden", "detach_hidden",
    "Tagger", "TaggerConfig", "TaggerOutput", "tagging_loss",
]
