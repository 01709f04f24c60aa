"""The two-layer reproduction experiment at a tiny size: measured NTK drift never exceeds its bound."""

import math

from softsym.app import two_layer_repro as rp


def test_width_sweep_measured_drift_within_bound_and_tables(tmp_path):
    rows = rp.width_sweep(widths=(16, 32), n=6, d=8, steps=40, eps=1e-2)
    assert {(r["convention"], r["activation"]) for r in rows} == {
        ("ntk", "softmax"), ("ntk", "relu"), ("ntk", "exp"), ("paper", "softmax")}
    for r in rows:
        assert r["rel_dH"] <= r["dH_bound_rel"] * (1 + 1e-9), r
        assert 0 < r["lam0"] <= r["lmax0"]
        if r["activation"] != "relu":
            assert r["lr_certified"] > 0 and math.isfinite(r["margin"])
    srows = rp.score_sweep(widths=(16,), checkpoints=(0, 5), n=100)
    assert all(set(r["errors"]) == {0, 5} for r in srows)
    trows = rp.score_time_sweep(widths=(16,), checkpoints=(0, 5), ts=(0.2, 1.0), n=200)
    assert {r["model"] for r in trows} == {"time-conditioned", "per-t"} and len(trows) == 8
    assert all(len(r["errors"][5]) == 2 and all(e > 0 for e in r["errors"][5]) for r in trows)
    md = rp.tables(rows, rp.required_width(rows), srows, 40, trows)
    assert "| paper | softmax | 32 |" in md and "error after 5 steps" in md
    assert "| ntk | relu | 16 | per-t |" in md and "t = 0.2" in md
    assert rp.plots(tmp_path, rows, srows, trows) == ["two_layer_sweep.png", "two_layer_score.png",
                                                      "two_layer_score_time.png"]
    assert (tmp_path / "two_layer_sweep.png").stat().st_size > 1000
