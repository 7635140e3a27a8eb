"""Command modules of the ``lstmkit`` CLI: each provides ``configure_parser(parser)`` and ``run(args) -> int``.

They parse and print only; the work is done by the package's Python API (see each module's docstring).
"""
