"""The README's tour is executed, so it cannot drift from the code."""

from __future__ import annotations

import re

from helpers import REPO


def test_readme_tour_runs():
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no python code block"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_readme_names_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert "make demo" in text and "make test" in text


def test_tour_module_runs(capsys):
    from lstmkit import tour

    assert tour.main() == 0
    assert "impl=fused" in capsys.readouterr().out
