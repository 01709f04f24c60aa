"""Demo sections and the report: one section per paper in order, each with a claim and a verdict."""

from __future__ import annotations

import re

import pytest

from softsym.app import demo
from softsym.app.demo import DemoSection, attention, zeroth_order
from softsym.app.report import OUTCOMES, SectionResult, Verdict

VERDICT = re.compile(r"^\*\*Verdict: (reproduced|partly reproduced|not reproduced here)\.\*\* .*\d")


def test_sections_one_per_paper_in_order_then_the_backend():
    papers = [s.paper for s in demo.SECTIONS]
    assert papers == ["000", "001", "002", "003", "004", None]
    headings = [s.heading for s in demo.SECTIONS]
    assert len(set(headings)) == len(headings)
    for s in demo.SECTIONS[:-1]:
        assert s.heading.startswith(f"Paper {s.paper}: ") and "arXiv" in s.heading
        assert s.claim and len(s.claim) > 80 and s.claim.endswith(".")
    assert demo.SECTIONS[-1].heading.startswith("Backend: ") and demo.SECTIONS[-1].claim is None


def _fake(body: str, verdict: Verdict | None, passed: bool = True):
    def run(out_dir):
        (out_dir / f"{body}.png").write_bytes(b"png")
        return SectionResult(f"{body} table\n\n![plot]({body}.png)", verdict, passed)
    return run


def test_report_structure(tmp_path, capsys):
    sections = (
        DemoSection("Paper 000: first", "Claim zero.", _fake("a", Verdict("reproduced", "3 iterations.")), "000"),
        DemoSection("Paper 001: second", "Claim one.", _fake("b", Verdict("partly reproduced", "ratio 2.5.")), "001"),
        DemoSection("Backend: dask", None, _fake("c", None)),
    )
    assert demo.run_demo(tmp_path, sections) == 0
    report = (tmp_path / "report.md").read_text()
    blocks = re.split(r"^## ", report, flags=re.M)[1:]
    assert [b.splitlines()[0] for b in blocks] == ["Paper 000: first", "Paper 001: second", "Backend: dask"]
    for block in blocks[:2]:
        lines = [line for line in block.splitlines() if line.strip()]
        assert lines[1].startswith("**Claim.** ")
        assert VERDICT.match(lines[-1]), lines[-1]
    assert "**Verdict" not in blocks[2] and "**Claim" not in blocks[2]
    shown = capsys.readouterr().out
    assert "![plot]" not in shown and shown.index("Paper 000") < shown.index("Paper 001") < shown.index("Backend")


def test_failed_check_exits_1_and_missing_verdict_is_an_error(tmp_path):
    failing = (DemoSection("Paper 000: x", "Claim.", _fake("a", Verdict("not reproduced here", "1e-2."), False),
                           "000"),)
    assert demo.run_demo(tmp_path, failing) == 1
    with pytest.raises(ValueError, match="no verdict"):
        demo.run_demo(tmp_path, (DemoSection("Paper 000: x", "Claim.", _fake("a", None), "000"),))
    with pytest.raises(ValueError, match="outcome must be one of"):
        Verdict("mostly", "numbers 1")


def test_zeroth_order_section_writes_plot_table_and_verdict(tmp_path):
    res = zeroth_order.section(tmp_path)
    md = res.markdown
    assert (tmp_path / "zo_convergence.png").stat().st_size > 10_000
    assert md.startswith("### Zeroth-order gradient descent")
    assert "![ZO-GD vs GD](zo_convergence.png)" in md
    assert md.count(" yes ") == 5 and " no: " not in md  # GD and four K values all converge
    assert res.passed and res.verdict.outcome in OUTCOMES[:2]
    assert all(f"K = {k}:" in res.verdict.evidence for k in (1, 4, 16, 64))


def test_attention_section(tmp_path):
    res = attention.section(tmp_path)
    assert res.markdown.startswith("### ") and "attention_convergence.png" in res.markdown
    assert res.passed and res.verdict.outcome == "partly reproduced"
    assert "not shown here" in res.verdict.evidence.lower()
