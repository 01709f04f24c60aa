"""The layout holds: no import cycles (imports inside functions count), layers import downward,
no matplotlib below the application layer, and no private name imported across modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: package name -> source directory (as pyproject.toml maps them)
PACKAGES = {"softsym": ROOT / "softsym", "softsym.derive": ROOT / "derive"}
#: the layers of softsym, lowest first: a module may import from its own layer and those below
LAYERS = ["errors", "numerics.rows", "_validate", "registry", "numerics", "problems", "estimators", "solvers", "theory", "backends",
          "api", "__init__", "app"]


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg, directory in PACKAGES.items():
        for path in directory.rglob("*.py"):
            rel = path.relative_to(directory).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            if pkg == "softsym" and parts[:1] == ["derive"]:
                continue
            mods[name] = path
    return mods


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(name: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import in ``path``, resolved to absolute names."""
    package = name if _is_package(path) else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            # "from pkg import mod" imports the submodule pkg.mod
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in mods]
            out += [(s, [], node.lineno) for s in subs]
            out.append((target, [n for n in names if f"{target}.{n}" not in mods], node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        deps = set()
        for target, _, _ in _imports(name, path, mods):
            # importing a.b.c also runs a and a.b: count the deepest known module only
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                deps.add(target)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _layer(name: str) -> int | None:
    parts = name.split(".")
    if parts[0] != "softsym" or parts[1:2] in (["derive"], ["kernels"]):
        return None
    if parts[1:3] == ["numerics", "rows"]:
        return LAYERS.index("numerics.rows")
    return LAYERS.index(parts[1] if len(parts) > 1 else "__init__")


def test_layers_import_downward_only():
    bad = []
    for name, deps in _graph().items():
        own = _layer(name)
        if own is None:
            continue
        bad += [f"{name} -> {d}" for d in deps if (_layer(d) or 0) > own]
    assert bad == []


def test_no_matplotlib_below_the_application_layer():
    mods = _modules()
    bad = [name for name, path in mods.items() if not name.startswith("softsym.app")
           and any(t.split(".")[0] == "matplotlib" for t, _, _ in _imports(name, path, mods))]
    assert bad == []


def test_no_private_name_imported_across_modules():
    mods = _modules()
    bad = [f"{name}:{line} imports {target}.{n}" for name, path in mods.items()
           for target, names, line in _imports(name, path, mods) for n in names
           if n.startswith("_") and not n.startswith("__") and target.split(".")[0] in ("softsym",)]
    assert bad == []


#: what looks like a path to a Markdown file of the repository in code, tests or docs
MARKDOWN_NAME = re.compile(r"(?<![\w/.-])((?:\.\./)*(?:docs|generated|papers)/[\w./-]*\.md"
                           r"|(?:\.\./)*[A-Z][A-Z_]*\.md)\b")
#: where the names are looked for
NAMED_IN = ("softsym", "derive", "generated", "tests", "benchmarks", "docs")
TOP_LEVEL = ("README.md", "CHANGELOG.md", "Makefile", "pyproject.toml", "CITATION.cff")


def markdown_names() -> dict[str, list[str]]:
    """Markdown path -> the files naming it, for every such name in code, tests and docs."""
    files = [ROOT / name for name in TOP_LEVEL if (ROOT / name).is_file()]
    for top in NAMED_IN:
        files += [p for p in (ROOT / top).rglob("*") if p.suffix in (".py", ".md", ".json", ".toml", ".cff")
                  and "__pycache__" not in p.parts]
    found: dict[str, list[str]] = {}
    for path in files:
        for m in MARKDOWN_NAME.finditer(path.read_text("utf-8")):
            name = m.group(1)
            if not any((base / name).exists() for base in (ROOT, path.parent, ROOT / "docs")):
                found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_markdown_file_named_in_the_repository_exists():
    """Code, tests and docs cite only Markdown files that are in the repository (docs/math.md, ...)."""
    missing = markdown_names()
    assert missing == {}, missing
