"""Every snippet in README.md and docs/**/*.md runs as written, and every relative link resolves.

Fenced blocks, in document order, one fresh subprocess per Markdown file (so no state leaks
between files), in a temporary working directory:

* ```python blocks run in one namespace, in order.  ```python file=NAME blocks are not run:
  they are written to NAME in the working directory (a spec file a later command reads).
* ```console blocks: each ``$ CMD`` line runs in a shell with the interpreter's bin directory
  first on PATH; the lines up to the next ``$`` are its expected output (stdout and stderr
  together), compared line by line with doctest-style ellipsis: ``...`` alone on a line
  matches any number of lines, ``...`` inside a line matches any text.  The exit status must be
  0 unless the command ends with ``# exit N``.
* ```text, ```python-norun and any other tag are not run.

Run one file by hand: ``python tests/app/test_docs.py README.md`` (from any directory).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 260
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]\n]*\]\(([^)\s]+)\)")
EXIT = re.compile(r"\s+# exit (\d+)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its info string's first word, the rest of the info string, body, line."""

    lang: str
    args: str
    body: str
    line: int


def markdown_files() -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, in order."""
    out = []
    for m in FENCE.finditer(text):
        info = m.group(1).strip().split(None, 1)
        lang = info[0] if info else ""
        out.append(Block(lang, info[1] if len(info) > 1 else "", m.group(2),
                         text.count("\n", 0, m.start()) + 1))
    return out


def console_commands(body: str) -> list[tuple[str, int, list[str]]]:
    """``(command, expected exit status, expected output lines)`` for each ``$`` line of a block."""
    cmds: list[tuple[str, int, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            cmd, status = line[2:], 0
            m = EXIT.search(cmd)
            if m:
                cmd, status = cmd[:m.start()], int(m.group(1))
            cmds.append((cmd, status, []))
        elif cmds:
            cmds[-1][2].append(line)
        elif line.strip():
            raise ValueError(f"console block: output before the first '$ ' line: {line!r}")
    return cmds


def _line_pattern(expected: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in expected.rstrip().split("...")) + r"\Z")


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Doctest-style ellipsis match of output lines (trailing whitespace ignored)."""
    exp = [e.rstrip() for e in expected]
    act = [a.rstrip() for a in actual]
    while exp and not exp[-1]:
        exp.pop()
    while act and not act[-1]:
        act.pop()
    pats = [None if e == "..." else _line_pattern(e) for e in exp]
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[i, j]
        if i == len(pats):
            ok = j == len(act)
        elif pats[i] is None:
            ok = any(match(i + 1, k) for k in range(j, len(act) + 1))
        else:
            ok = j < len(act) and bool(pats[i].match(act[j])) and match(i + 1, j + 1)
        memo[i, j] = ok
        return ok

    return match(0, 0)


def run_file(path: Path, cwd: Path) -> list[str]:
    """Run every block of one Markdown file in ``cwd``; return the failures (empty: all passed)."""
    text = path.read_text()
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__main__"}
    failures = []
    timing = os.environ.get("SOFTSYM_DOCS_TIMING")
    for block in blocks(text):
        where = f"{rel}:{block.line}"
        start = time.perf_counter()
        if block.lang == "python" and block.args.startswith("file="):
            (cwd / block.args[len("file="):].split()[0]).write_text(block.body)
        elif block.lang == "python":
            try:
                exec(compile(block.body, where, "exec"), namespace)
            except BaseException as exc:  # noqa: BLE001 - every failure is reported with its block
                import traceback
                failures.append(f"{where}: python block raised\n{traceback.format_exc()}")
                break  # later blocks depend on this one
        elif block.lang == "console":
            for cmd, status, expected in console_commands(block.body):
                run = subprocess.run(cmd, shell=True, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, timeout=300)
                actual = run.stdout.splitlines()
                if run.returncode != status:
                    failures.append(f"{where}: `{cmd}` exited {run.returncode}, expected {status}\n{run.stdout}")
                elif not output_matches(expected, actual):
                    failures.append(f"{where}: `{cmd}` output differs\n--- expected\n" + "\n".join(expected)
                                    + "\n--- actual\n" + run.stdout)
        if timing:
            print(f"{where} {block.lang}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return failures


def relative_links(path: Path) -> list[str]:
    """Relative link targets in a Markdown file (code blocks excluded), without #anchors."""
    text = FENCE.sub("", path.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)
    out = []
    for m in LINK.finditer(text):
        target = m.group(1) or m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        out.append(target.split("#", 1)[0])
    return out


# ---- the tests -----------------------------------------------------------------------------

def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def test_the_snippet_runner_can_fail():
    assert output_matches(["a ... c", "...", "z"], ["a b c", "x", "y", "z"])
    assert output_matches(["...", "z"], ["z"])
    assert not output_matches(["a ... c"], ["a b d"])
    assert not output_matches(["one"], ["one", "two"])
    assert console_commands("$ f x  # exit 2\nerr\n$ g\n") == [("f x", 2, ["err"]), ("g", 0, [])]
    bs = blocks("t\n```python\nraise ValueError\n```\n```text\nno\n```\n")
    assert [(b.lang, b.line) for b in bs] == [("python", 2), ("text", 5)]


def test_a_failing_snippet_is_reported(tmp_path):
    md = tmp_path / "bad.md"
    md.write_text("```python\nx = 1\n```\n\n```console\n$ echo hi\nho\n$ false\n```\n\n"
                  "```python\nassert x == 2\n```\n")
    failures = run_file(md, tmp_path)
    assert len(failures) == 3, failures
    assert "output differs" in failures[0] and "exited 1" in failures[1] and "AssertionError" in failures[2]


import pytest  # noqa: E402 - the module also runs as a script without pytest's fixtures


@pytest.mark.parametrize("path", markdown_files(), ids=_ids(markdown_files()))
def test_snippets_run_as_written(path, tmp_path):
    run = subprocess.run([sys.executable, __file__, str(path)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("path", markdown_files(), ids=_ids(markdown_files()))
def test_relative_links_resolve(path):
    missing = [t for t in relative_links(path) if not (path.parent / t).exists()]
    assert not missing, f"{path.name}: links to missing files {missing}"


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_MAX_LINES


def test_citation_license_and_changelog_agree_with_the_package():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    yaml = pytest.importorskip("yaml")        # installed with dask (the test extra)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert str(cff["version"]) == project["version"] and cff["license"] == project["license"] == "MIT"
    readme_ids = re.findall(r"\[(\d{4}\.\d{5})\]\(https://arxiv\.org/abs/\1\)", (ROOT / "README.md").read_text())
    cff_ids = [i["value"].removeprefix("arXiv:") for r in cff["references"] for i in r["identifiers"]]
    assert len(readme_ids) == 5 and cff_ids == readme_ids
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert f"## {project['version']}" in (ROOT / "CHANGELOG.md").read_text()


def main(argv: list[str]) -> int:
    """Run the snippets of the Markdown files named in ``argv`` in a fresh temporary directory."""
    status = 0
    for name in argv:
        path = Path(name).resolve()
        with tempfile.TemporaryDirectory(prefix="softsym-docs-") as tmp:
            os.chdir(tmp)  # python blocks see the same working directory as the commands
            failures = run_file(path, Path(tmp))
        for f in failures:
            print(f, file=sys.stderr)
        status |= bool(failures)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
