"""The one exception type of :mod:`lstmkit.data`."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """A data file or directory that cannot be used as it is.

    Raised for missing files, empty files, bytes that are not UTF-8, malformed CoNLL-U lines and corpora too short for
    the requested batch layout. The message is one line and names the file (and the 1-based line number where there is
    one), so that it can be shown to a user as it is. It subclasses :class:`ValueError`, so callers that already catch
    bad values keep working.
    """
