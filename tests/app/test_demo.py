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


def test_two_layer_guarantees_summary():
    from softsym.app.demo.two_layer import guarantees_summary

    lines = guarantees_summary(widths=(32,))
    rows = [ln for ln in lines if ln.startswith("| softmax") or ln.startswith("| exp")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[3]) > 0 and float(cells[4]) > 1      # certified lr, used / certified
        assert (float(cells[5]) >= 1) == (cells[6] == "yes")     # margin vs verdict


def test_verify_two_layer_gradient_step():
    from softsym.app.verify import two_layer_numeric_step

    for name in ("two_layer_softmax", "two_layer_relu", "two_layer_exp"):
        ok, msg = two_layer_numeric_step(name, seed=1)
        assert ok, msg
