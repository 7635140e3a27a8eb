"""Compatibility: the language model's training task is now :mod:`lstmkit.lm.task`; ``train/`` keeps only what every
task shares.

The old path re-exports the public names so that ``from lstmkit.train.lm import make_config, train_language_model``
keeps working; new code imports from :mod:`lstmkit.lm`. Nothing in lstmkit imports this module.
"""

from ..lm.task import *  # noqa: F401,F403
from ..lm.task import __all__  # noqa: F401
