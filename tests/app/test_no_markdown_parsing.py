"""Formulas reach the CLI and the demo as data: nothing in softsym/ parses Markdown pages."""

from __future__ import annotations

import ast
from pathlib import Path

SOFTSYM = Path(__file__).resolve().parents[2] / "softsym"
#: modules allowed to name a .md file: the registry reads a member's page for display; the demo and the
#: reproduction scripts write their reports
ALLOWED_MD = {"registry.py", "app/demo/__init__.py", "app/two_layer_repro.py", "app/attention_repro.py"}


def _modules():
    for path in sorted(SOFTSYM.rglob("*.py")):
        rel = path.relative_to(SOFTSYM).as_posix()
        if rel.startswith("kernels/"):
            continue
        yield rel, ast.parse(path.read_text("utf-8"))


def test_no_regular_expressions_in_softsym():
    for rel, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(a.name != "re" for a in node.names), rel
            if isinstance(node, ast.ImportFrom):
                assert node.module != "re", rel


def _code_strings(tree: ast.AST):
    """String constants of the code, docstrings and other bare string statements left out."""
    bare = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in bare:
            yield n.value


def test_only_the_registry_reads_member_pages():
    for rel, tree in _modules():
        names_md = any(".md" in s for s in _code_strings(tree))
        assert not names_md or rel in ALLOWED_MD, rel
