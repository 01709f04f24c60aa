"""The attention reproduction experiment at a tiny size: tables, figures and the recovery record."""

from softsym.app import attention_repro as rp


def test_regime_iterations_recovery_tables_and_figures(tmp_path):
    rg = rp.regime(factors=(1.0, 0.0), starts=2)
    assert rg["threshold"] > 0 and [r["factor"] for r in rg["rows"]] == [1.0, 0.0]
    top = rg["rows"][0]
    # at the derived threshold every start reaches one certified minimizer
    assert top["success"] == top["runs"] == 3 and top["minimizers"] == 1 and top["guarantee"] == {"global": 3}
    it = rp.iterations(factors=(1.0,), eps=(1e-2, 1e-8))
    assert all(1 <= k <= 5 for k in it["iterations"]["1"])
    rec = rp.recovery(cells=((40, 2),), seeds=(0,), extra_seeds=(), progress=lambda s: None)
    assert len(rec) == 1 and {"fit", "fit_x0", "candidates", "time"} <= set(rec[0])
    assert rec[0]["fit"] == (rec[0]["rel_loss"] < rp.FIT)
    data = {"regime": rg, "iterations": it, "recovery": rec}
    md = rp.tables(data)
    assert "| 1 | 3/3 | 1 |" in md and "| 40 x 2 | 1 |" in md and "reg_x = 1 x reg_x*" in md
    assert rp.plots(tmp_path, data) == ["attention_multistart.png", "attention_iterations_eps.png"]
    assert (tmp_path / "attention_multistart.png").stat().st_size > 1000
