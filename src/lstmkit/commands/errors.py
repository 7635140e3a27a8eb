"""The error a command raises for input the user can fix; ``lstmkit.cli`` prints it as one line, exit code 2.

It lives here rather than in ``cli.py`` so that command modules and the CLI both import it from below, with no
import going back up from a command to the CLI that loads it.
"""

from __future__ import annotations


class UsageError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""
