"""Compatibility: this module is now :mod:`lstmkit.lm.api` (the language model's package, :mod:`lstmkit.lm`).

The old path re-exports the public names so that ``from lstmkit.lm_api import load_language_model`` keeps working;
new code imports from :mod:`lstmkit.lm`.
"""

from .lm.api import *  # noqa: F401,F403
from .lm.api import __all__  # noqa: F401
