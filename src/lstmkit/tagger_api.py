"""Compatibility: this module is now :mod:`lstmkit.tagger.api` (the tagger's package, :mod:`lstmkit.tagger`).

The old path re-exports the public names so that ``from lstmkit.tagger_api import load_tagger`` keeps working;
new code imports from :mod:`lstmkit.tagger`.
"""

from .tagger.api import *  # noqa: F401,F403
from .tagger.api import __all__  # noqa: F401
