"""The package layout the README describes is the one in src/lstmkit, and the imports keep to its rules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "src" / "lstmkit"
TASKS = {"lm", "tagger", "classify"}
COMPAT = {"train/lm.py"}  # old module paths that only re-export a task's module


def layout_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Layout\n"):]
    return re.search(r"```\n(.*?)```", section, flags=re.S).group(1)


def test_the_readme_map_names_every_package_and_module_and_nothing_else():
    block = layout_block()
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    named_packages = set(re.findall(r"^  (\w+)/ ", block, flags=re.M))
    assert named_packages == packages
    modules = {path.name for path in PACKAGE.glob("*.py")} - {"__init__.py"}
    for module in modules:
        assert re.search(rf"(?<![\w/.]){re.escape(module)}\b", block), module
    for line in block.splitlines():  # files named on a package's lines exist in that package
        match = re.match(r"^  (\w+)/ ", line)
        if match:
            package = match.group(1)
        elif not line.startswith("    "):
            package = None
        if package:
            for name in re.findall(r"\b(\w+\.py)\b", line):
                assert (PACKAGE / package / name).is_file() or (PACKAGE / name).is_file(), f"{package}/{name}"


def imported_packages(path: Path) -> set[str]:
    """The lstmkit subpackages and top-level modules that ``path`` imports."""
    parts = path.relative_to(PACKAGE).parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(parts[:-1])[: len(parts) - 1 - (node.level - 1)]
            target = base + (node.module.split(".") if node.module else [alias.name for alias in node.names][:1])
            found.add(target[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lstmkit."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("lstmkit."))
    return found


def test_lower_layers_import_no_task_and_nothing_above_them():
    above = {"nn": TASKS | {"train", "regularize", "data", "commands", "cli", "explain", "export"},
             "ops": TASKS | {"train", "nn", "regularize", "data", "commands", "cli", "explain", "export"},
             "regularize": TASKS | {"train", "data", "commands", "cli"},
             "train": TASKS | {"commands", "cli", "explain", "export", "models"},
             "data": {path.name for path in PACKAGE.iterdir() if path.is_dir()} - {"data"}}
    for package, forbidden in above.items():
        for path in (PACKAGE / package).glob("*.py"):
            if str(path.relative_to(PACKAGE)) in COMPAT:
                continue
            wrong = imported_packages(path) & forbidden
            assert not wrong, f"{path.relative_to(PACKAGE)} imports {sorted(wrong)}"


def test_the_tagger_and_the_language_model_do_not_import_each_other_or_the_classifier():
    """...and the classifier builds on the language model only (its scoring is train's, not the tagger's)."""
    for task, others in (("lm", {"tagger", "classify"}), ("tagger", {"lm", "classify"}), ("classify", {"tagger"})):
        for path in (PACKAGE / task).glob("*.py"):
            assert not imported_packages(path) & others, path.relative_to(PACKAGE)
