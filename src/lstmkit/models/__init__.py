"""lstmkit.models: applications composed from lstmkit.nn and lstmkit.regularize; they return NamedTuples."""

from .tagger import Tagger, TaggerConfig, TaggerOutput, tagging_loss

__all__ = ["Tagger", "TaggerConfig", "TaggerOutput", "tagging_loss"]
