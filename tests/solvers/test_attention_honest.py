"""A non-minimum is never reported as success; results say what is known."""

import numpy as np
import pytest

import softsym
from softsym.problems.attention import AttentionRegression, planted
from softsym.theory.attention import certified_reg_x


def _symmetric_saddle(seed=0, n=6, d=2):
    """Rows duplicated with A1 negated: L(-X, Y) = L(X, Y), so X = 0 is stationary in X for every Y."""
    rng = np.random.default_rng(seed)
    A1, A2, A3, B = (rng.standard_normal((n, d)) for _ in range(4))
    return AttentionRegression(np.vstack([A1, -A1]), np.vstack([A2, A2]), np.vstack([A3, A3]),
                               3 * np.vstack([B, B]))


@pytest.mark.parametrize("method", ["newton", "newton-cg"])
def test_saddle_is_not_success(method):
    prob = _symmetric_saddle()
    X = np.zeros((2, 2))
    Y = prob.minimize_y(X, X)
    assert np.abs(prob.grad(X, Y)[0]).max() < 1e-12
    assert np.linalg.eigvalsh(prob.reduced_hess_x(X, Y))[0] < -1.0   # premise: a true saddle
    res = softsym.minimize(prob, (X, None), method=method)
    assert not res.success
    assert res.status == 5
    assert res.lambda_min < -1.0
    assert res.guarantee == "none"


def test_planted_minimum_is_local_without_certificate():
    inst = planted(40, 2, seed=1)
    prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
    res = softsym.minimize(prob, (inst.perturbed_start(rel=0.1), None), method="newton")
    assert res.success and res.status == 0
    assert res.lambda_min > 0 and res.is_minimum
    assert res.guarantee == "local"
    assert not res.certificate["certified"]


def test_certified_regime_is_global():
    rng = np.random.default_rng(0)
    n, d = 8, 2
    A1, A2, A3, B = (0.3 * rng.standard_normal((n, d)) for _ in range(4))
    rx = certified_reg_x(A1, A2, A3, B, reg_y=1.0)
    prob = AttentionRegression(A1, A2, A3, B, reg_x=1.05 * rx, reg_y=1.0)
    res = softsym.minimize(prob, method="newton")
    assert res.success and res.guarantee == "global"
    assert res.certificate["certified"]


def test_psd_tol_validated():
    prob = _symmetric_saddle()
    with pytest.raises(softsym.ValidationError):
        softsym.minimize(prob, method="newton", psd_tol=-1.0)


def test_multistart_recovers_where_default_start_fails():
    inst = planted(100, 3, seed=202)
    prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
    b2 = float(np.sum(inst.B ** 2))
    one = softsym.minimize(prob, None, method="newton", tol=1e-10, maxiter=60)
    assert one.fun / b2 > 1e-3                                # the default start alone does not fit
    ms = softsym.minimize_multistart(prob, seed=2, method="newton", tol=1e-10, maxiter=60)
    assert ms.fun / b2 < 1e-10 and ms.success and ms.is_minimum
    assert np.linalg.norm(ms.X - inst.X_star) < 1e-6
    assert ms.starts_used == len(ms.screen_losses) <= 64 and ms.hops_used == 0   # found before hopping
    assert 1 <= ms.finished <= ms.starts_used
    assert ms.screen_iterations <= 40 * ms.starts_used
    assert ms.iterations_total >= ms.screen_iterations + ms.nit


def test_basin_hopping_rescues_the_default_start():
    inst = planted(60, 3, seed=202)
    prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
    b2 = float(np.sum(inst.B ** 2))
    alone = softsym.minimize_multistart(prob, starts=1, keep=1, hops=0, method="newton")
    assert alone.fun / b2 > 1e-3 and alone.hops_used == 0     # X0 = 0, screened and finished: a local minimum
    hopped = softsym.minimize_multistart(prob, starts=1, keep=1, hops=20, method="newton")
    assert hopped.fun / b2 < 1e-10 and hopped.success and 1 <= hopped.hops_used <= 20
    assert np.linalg.norm(hopped.X - inst.X_star) < 1e-6


def test_screen_reduced_descends_and_projects_y():
    from softsym.solvers.variable_projection import screen_reduced
    inst = planted(60, 3, seed=5)
    prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
    X0 = np.random.default_rng(1).standard_normal((3, 3))
    Y0 = prob.minimize_y(X0, np.zeros((3, 3)))
    sc = screen_reduced(prob, X0, 15)
    assert sc.phi < 0.5 * prob.loss(X0, Y0)                   # 15 L-BFGS iterations descend on phi
    assert sc.phi == pytest.approx(prob.loss(sc.X, sc.Y), rel=1e-12)
    assert np.allclose(prob.grad(sc.X, sc.Y)[1], 0, atol=1e-8 * np.sum(inst.B ** 2))   # Y = Y*(X)
    assert 1 <= sc.nit <= 15 and sc.nfev >= sc.nit


def test_multistart_without_exact_fit_is_honest():
    """Data with no exact fit: every start is screened, ``keep`` are finished, and the result is a
    minimum with a loss well above zero, not claimed to fit."""
    rng = np.random.default_rng(9)
    A1, A2, A3, B = (rng.standard_normal((30, 2)) for _ in range(4))
    prob = AttentionRegression(A1, A2, A3, B)
    ms = softsym.minimize_multistart(prob, starts=6, keep=2, hops=5, method="newton")
    assert ms.starts_used == 11 and ms.hops_used == 5 and ms.finished == 4
    assert ms.fun / np.sum(B ** 2) > 0.1
    assert ms.success == (ms.status == 0 and ms.is_minimum)


@pytest.mark.parametrize("bad", [{"starts": 0}, {"starts": 2.5}, {"screen_iters": 0}, {"keep": 0}, {"hops": -1},
                                 {"hop": 0.0}, {"scale": -1.0}, {"scale": float("nan")}, {"fit_tol": 0.0},
                                 {"seed": -1}])
def test_multistart_options_validated(bad):
    inst = planted(20, 2, seed=0)
    prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B)
    name = next(iter(bad))
    with pytest.raises(softsym.ValidationError, match=name):
        softsym.minimize_multistart(prob, **bad)


def test_lanczos_spectrum_matches_dense():
    from softsym.solvers.variable_projection import DENSE_LIMIT, reduced_spectrum
    inst = planted(40, 9, seed=3)
    assert 9 * 9 > DENSE_LIMIT
    prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B, reg_y=1e-3)
    X = inst.perturbed_start(rel=0.5)
    Y = prob.minimize_y(X, np.zeros((9, 9)))
    lo, hi = reduced_spectrum(prob, X, Y)
    ev = np.linalg.eigvalsh(prob.reduced_hess_x(X, Y))
    assert lo == pytest.approx(ev[0], rel=1e-4, abs=1e-6 * abs(ev).max())
    assert hi == pytest.approx(abs(ev).max(), rel=1e-4)
