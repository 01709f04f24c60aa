"""softsym.minimize(method="approx-newton"): the papers' approximate Newton."""

from __future__ import annotations

import numpy as np
import pytest

import softsym
from softsym.errors import ValidationError
from softsym.numerics import sketch
from softsym.problems import normalized as datasets
from softsym.solvers.approx_newton import sparsified_hessian


def paper_instance(n: int = 4000, d: int = 5, wfrac: float = 1.0, seed: int = 2):
    """rescaled_exp (paper 001) with w^2 = wfrac * median beta(x_planted): beta > 0 around x*."""
    inst = datasets.synthetic("rescaled_exp", n, d, seed=seed, radius=0.5)
    beta = inst.objective().pieces(inst.x_star).beta
    w = np.full(n, np.sqrt(wfrac * np.median(np.abs(beta))))
    return softsym.objective("rescaled_exp", inst.A, inst.b, w)


@pytest.fixture(scope="module")
def solved():
    obj = paper_instance()
    res = softsym.minimize(obj, method="newton", tol=1e-13)
    assert res.success
    return obj, res.x


#: safeguarded-mode options that keep the sampled Hessian on these small instances (no cost rule)
SAMPLED = {"exact_above": 1.0}


def iterates(obj, **kw) -> list[np.ndarray]:
    xs: list[np.ndarray] = []
    res = softsym.minimize(obj, method="approx-newton", callback=lambda r: xs.append(r.x), **kw)
    assert res.success, res.message
    return xs


def test_paper_mode_converges_linearly_at_rate_0_4(solved):
    """Started in the region (M ||x0 - x*|| small), every step contracts by <= 0.4 (docs/math.md)."""
    obj, xstar = solved
    rng = np.random.default_rng(0)
    for seed in range(5):
        x0 = xstar + 0.01 * np.linalg.norm(xstar) * rng.standard_normal(obj.d) / np.sqrt(obj.d)
        errs = [np.linalg.norm(x0 - xstar)] + [np.linalg.norm(x - xstar)
                                                for x in iterates(obj, x0=x0, mode="paper", eps0=0.25, seed=seed,
                                                                  tol=1e-12)]
        for a, b in zip(errs, errs[1:]):
            if a > 1e-11:  # above the float64 floor of x* itself
                assert b <= 0.4 * a, errs
        assert errs[-1] < 1e-9


def test_same_seed_gives_bit_identical_iterates(solved):
    obj, _ = solved
    a = iterates(obj, seed=7, eps0=0.5, leverage="approx", **SAMPLED)
    b = iterates(paper_instance(), seed=7, eps0=0.5, leverage="approx", **SAMPLED)
    c = iterates(obj, seed=8, eps0=0.5, leverage="approx", **SAMPLED)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_sparsified_hessian_is_spectrally_close_with_stated_probability(solved):
    """(1 - eps0 c) H <= H~ <= (1 + eps0 c) H in >= 1 - delta of the seeds, c = ||H^-1/2 K H^-1/2||."""
    obj, xstar = solved
    eps0, delta, seeds = 0.3, 0.2, 40
    pc = obj.pieces(xstar)
    assert np.all(pc.beta > 0)
    H = obj.hess(xstar)
    Linv = np.linalg.inv(np.linalg.cholesky(H))
    K = (obj.A * pc.beta[:, None]).T @ obj.A
    c = float(np.linalg.eigvalsh(Linv @ K @ Linv.T)[-1])
    assert 1 <= c < 1.5  # the rank-2 part is small here: the guarantee transfers to H almost unchanged
    fails = 0
    for s in range(seeds):
        Ht, m = sparsified_hessian(obj, xstar, eps0=eps0, delta=delta, seed=s)
        assert m < obj.n / 2
        ev = np.linalg.eigvalsh(Linv @ Ht @ Linv.T)
        fails += max(1 - ev[0], ev[-1] - 1) > eps0 * c
    assert fails <= delta * seeds + 3 * np.sqrt(seeds * delta * (1 - delta))


def test_safeguarded_mode_reaches_newtons_minimizer_from_zero(solved):
    obj, xstar = solved
    res = softsym.minimize(obj, method="approx-newton", tol=1e-10, **SAMPLED)
    assert res.success and res.nit <= 20
    assert np.linalg.norm(res.x - xstar) < 1e-8 * np.linalg.norm(xstar)
    assert res.signed_steps >= 1  # beta(0) has negative entries: sampled with signs, no guarantee there
    assert len(res.sample_rows) == res.nit and res.leverage_refreshes >= 1


def test_paper_mode_stops_clearly_when_the_diagonal_part_is_not_positive(solved):
    obj, _ = solved
    assert np.any(obj.pieces(np.zeros(obj.d)).beta <= 0)
    res = softsym.minimize(obj, method="approx-newton", mode="paper")
    assert not res.success and res.status == 4 and "not positive" in res.message


def test_many_rows_fall_back_to_the_exact_hessian():
    obj = paper_instance(n=300, d=3)
    res = softsym.minimize(obj, method="approx-newton", eps0=0.05, tol=1e-10, **SAMPLED)  # m >= n, not the rule
    assert res.success and res.exact_steps + res.reused_hessian_steps == res.nit
    assert res.sample_rows == [obj.n] * res.nit


def test_cost_rule_switches_to_the_exact_hessian_and_says_so(solved):
    """sample_size(d_eff = d) >= exact_above * n: exact steps only, no scores, no refinement."""
    obj, xstar = solved
    m_d = sketch.sample_size(float(obj.d), obj.d, 0.25, 0.01)
    assert m_d >= 0.04 * obj.n  # the default rule fires on this small instance
    res = softsym.minimize(obj, method="approx-newton", tol=1e-10)
    assert res.success and res.leverage_refreshes == 0 and res.sample_rows == [obj.n] * res.nit
    # exact Hessians, each reused at most once (refined, in the local phase)
    assert res.exact_steps + res.reused_hessian_steps == res.nit and res.reused_hessian_steps <= res.exact_steps
    assert (res.hessian_vector_products > 0) == (res.reused_hessian_steps > 0)
    assert np.linalg.norm(res.x - xstar) < 1e-8 * np.linalg.norm(xstar)
    sampled = softsym.minimize(obj, method="approx-newton", tol=1e-10, exact_above=1.01 * m_d / obj.n)
    # below the rule the step samples, unless the (reused-score) sample would take >= n rows
    assert sampled.success and sampled.exact_steps < sampled.nit
    assert sampled.exact_steps == sampled.sample_rows.count(obj.n)
    paper = softsym.minimize(obj, method="approx-newton", exact_above=1e-6, mode="paper", x0=xstar * 0.99)
    assert paper.exact_steps == 0  # paper mode ignores the rule: always the sparsifier


@pytest.mark.parametrize("refine", ["auto", 1, 3])
def test_refined_steps_stay_descent_and_converge(solved, refine):
    """Refinement from x0 = 0 (signed steps, shifted H~ possible) converges; products are counted."""
    obj, xstar = solved
    f = []
    res = softsym.minimize(obj, method="approx-newton", tol=1e-10, refine=refine, eps0=0.5, seed=1,
                           callback=lambda r: f.append(r.fun), **SAMPLED)
    assert res.success and res.hessian_vector_products >= 1
    assert all(b <= a + 1e-12 * abs(a) for a, b in zip(f, f[1:]))  # a descent method
    assert np.linalg.norm(res.x - xstar) < 1e-8 * np.linalg.norm(xstar)
    if refine != "auto":
        assert res.hessian_vector_products <= refine * res.nit


def test_refinement_contracts_faster_than_the_papers_step(solved):
    """From inside the region, refine=2 needs fewer iterations than refine=0 (same seed)."""
    obj, xstar = solved
    x0 = 0.97 * xstar
    its = [softsym.minimize(obj, x0=x0, method="approx-newton", tol=1e-12, eps0=0.5, seed=4, refine=k,
                            **SAMPLED).nit for k in (0, 2)]
    assert its[1] < its[0], its


def test_hessian_vector_products_match_the_objective(solved):
    """The solver's A^T diag(beta) A v + R v equals objective.hessp; without gram_matvec it calls hessp."""
    from softsym.solvers.approx_newton import ApproxNewton, _rank2

    obj, xstar = solved
    x = 0.5 * xstar
    pc = obj.pieces(x)
    G = obj.A.T @ np.column_stack((pc.p, pc.q))
    R = _rank2(pc, G[:, 0], G[:, 1])
    v = np.random.default_rng(0).standard_normal(obj.d)
    want = obj.hessp(x, v)
    got = ApproxNewton._hvp(obj, sketch.DenseRows(obj.A), x, pc, R, v)
    assert np.allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())

    class NoGramMatvec:
        gram_matvec = None

    assert np.array_equal(ApproxNewton._hvp(obj, NoGramMatvec(), x, pc, R, v), want)


def test_refinement_option_and_scipy_compatible_result(solved):
    obj, xstar = solved
    res = softsym.minimize(obj, method="approx-newton", eps0=0.5, refine=1, tol=1e-10, **SAMPLED)
    assert res.success and np.linalg.norm(res.x - xstar) < 1e-8
    for key in ("x", "fun", "jac", "nit", "nfev", "njev", "nhev", "status", "message", "history", "exact_steps",
                "reused_hessian_steps", "hessian_vector_products", "sample_rows", "signed_steps", "leverage_refreshes"):
        assert key in res


class RowsOnly:
    """An objective without ``A`` that serves its data through ``row_access()`` (as a Dask one would)."""

    family = "normalized"

    def __init__(self, obj):
        self._obj, self.n, self.d = obj, obj.n, obj.d
        self.nfev = self.njev = self.nhev = 0
        self.used: set[str] = set()
        outer = self

        class Rows(sketch.DenseRows):
            def __getattribute__(self, name):
                if not name.startswith("_") and name not in ("A", "n", "d"):
                    outer.used.add(name)
                return super().__getattribute__(name)

        self._rows = Rows(obj.A)

    def row_access(self):
        return self._rows

    def pieces(self, x):
        return self._obj.pieces(x)

    def fun(self, x):
        return self._obj.fun(x)

    def jac(self, x):
        return self._obj.jac(x)


def test_solver_runs_through_the_row_access_interface_only(solved):
    obj, _ = solved
    big = paper_instance(n=60_000, d=5)
    ref = iterates(big, eps0=0.5, seed=3, **SAMPLED)
    wrapped = RowsOnly(paper_instance(n=60_000, d=5))
    got = iterates(wrapped, eps0=0.5, seed=3, **SAMPLED)
    assert len(got) == len(ref) and all(np.array_equal(x, y) for x, y in zip(got, ref))
    assert wrapped.used <= {"rmatmat", "gram_matvec", "take", "countsketch", "sq_row_norms"}, wrapped.used
    assert "countsketch" in wrapped.used and "gram_matvec" in wrapped.used  # the refinement's products


@pytest.mark.parametrize("options", [
    {"eps0": 0.0}, {"eps0": 1.0}, {"eps0": -0.1}, {"eps0": float("nan")}, {"eps0": "x"},
    {"delta": 0.0}, {"delta": 1.0}, {"delta": 2.0}, {"mode": "fast"}, {"leverage": "qr"},
    {"refresh": 0.5}, {"seed": "a"}, {"seed": 1.5}, {"refine": -1}, {"refine": 1, "mode": "paper"},
    {"refine": "fast"}, {"exact_above": 0.0}, {"exact_above": -1.0}, {"exact_above": "x"},
    {"sketch": 3},
])
def test_bad_options_raise_validation_error(solved, options):
    obj, _ = solved
    with pytest.raises(ValidationError):
        softsym.minimize(obj, method="approx-newton", **options)


def test_bad_x0_raises_validation_error(solved):
    obj, _ = solved
    with pytest.raises(ValidationError):
        softsym.minimize(obj, x0=np.ones(obj.d + 1), method="approx-newton")
