"""Demo sections: each writes its plot and a Markdown section with the numbers."""

from __future__ import annotations

from softsym.app.demo import attention, zeroth_order


def test_zeroth_order_section_writes_plot_and_table(tmp_path):
    md = zeroth_order.section(tmp_path)
    assert (tmp_path / "zo_convergence.png").stat().st_size > 10_000
    assert md.startswith("### Zeroth-order gradient descent")
    assert "![ZO-GD vs GD](zo_convergence.png)" in md
    assert md.count(" yes ") == 5 and " no: " not in md  # GD and four K values all converge


def test_attention_section(tmp_path):
    md = attention.section(tmp_path)
    assert md.startswith("## ") and "attention_convergence.png" in md
