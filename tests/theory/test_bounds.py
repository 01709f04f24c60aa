"""Derived bounds: emitted evaluators, adversarial certification, perturbation, start condition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

import softsym
from softsym.derive import catalogue
from softsym.derive.bounds import normalized as db
from softsym.derive.families import normalized
from softsym.derive.spec import NormalizedSpec, alpha, b, u
from softsym.errors import UnknownObjectiveError, ValidationError
from softsym.registry import kernels
from softsym.theory.bounds import REGIONS, bounds
from softsym.theory.certify import SearchProblem, certify
from softsym.theory.start import start_condition

MEMBERS = [m.name for m in softsym.catalogue("normalized")]


def test_every_member_has_finite_bounds_at_moderate_radius():
    for name in MEMBERS:
        for region in REGIONS:
            bd = bounds(name, R=1.0, n=5, region=region)
            assert all(bd.finite.values()), (name, region, bd.finite)
            vals = bd.as_dict()
            assert all(math.isfinite(v) and v >= 0 for v in vals.values()), (name, region, vals)
            # smoothness dominates the curvature both ways: R^2 max(lambda_max, C)
            assert bd.smooth >= bd.R_A**2 * bd.C * (1 - 1e-12)


@pytest.mark.parametrize("name", MEMBERS)
def test_certification_finds_no_violation(name):
    cert = certify(name, R=(1.0, 2.0), n=(2, 4), seed=1, restarts=2, maxfev=150)
    assert not cert.violations, f"{name}: derived bound violated\n{cert.table()}"
    assert all(r.worst > 0 for r in cert.rows if r.quantity in ("smooth", "G_b")), cert.table()


@pytest.mark.parametrize("name", ["softmax", "softmax_xent"])
def test_certification_on_the_simplex_finds_no_violation(name):
    cert = certify(name, R=(1.0, 4.0), n=(3,), region="simplex", seed=2, restarts=2, maxfev=150)
    assert not cert.violations, f"{name}: derived bound violated\n{cert.table()}"


def test_search_reaches_the_known_softmax_worst_case():
    # docs/math.md: search finds lambda_min(B) ~ -0.31 for softmax; our search must see it too,
    # otherwise "no violation" would mean little.
    cert = certify("softmax", R=(4.0,), n=(2,), quantities=("C",), seed=0, restarts=3, maxfev=300)
    row = cert.row("C", 4.0, 2)
    assert 0.3 < row.worst <= row.bound


def test_certify_is_deterministic():
    kw = dict(R=(1.0,), n=(3,), quantities=("C", "G_b"), seed=5, restarts=2, maxfev=60)
    assert certify("rescaled_cosh", **kw).rows == certify("rescaled_cosh", **kw).rows


def _solve(name, A, b, w):
    res = softsym.minimize(softsym.objective(name, A, b, w), method="newton", tol=1e-13)
    assert res.success, res.message
    return res.x


@pytest.mark.parametrize("name", ["softmax", "rescaled_exp", "rescaled_cosh", "rescaled_sinh", "exp", "softmax_xent"])
def test_perturbation_bound_holds_on_random_perturbations(name):
    rng = np.random.default_rng(11)
    n, d, R, l = 12, 3, 1.0, 0.5
    A = rng.standard_normal((n, d))
    A *= 0.7 / np.linalg.norm(A, 2)
    x_star = rng.standard_normal(d)
    x_star *= 0.5 / np.linalg.norm(x_star)
    bvec = softsym.problems.normalized.planted(name, A, x_star)
    region = "simplex" if name == "softmax_xent" else "ball"
    bn = 1.0
    if region == "ball":
        bvec = bvec * min(1.0, 0.8 / np.linalg.norm(bvec))
    # regularize so that hess L >= l I on the region for A and all perturbations of it
    smin_lo = np.linalg.svd(A, compute_uv=False)[-1] - 0.1
    bd0 = bounds(name, R=R, n=n, b_norm=bn, region=region)
    w = np.full(n, math.sqrt(bd0.C + l / smin_lo**2))
    bd = bounds(name, R=R, n=n, b_norm=bn, w_max=float(w[0]), l=l, region=region)
    x0 = _solve(name, A, bvec, w)
    for eps in (1e-3, 1e-2, 1e-1):
        for _ in range(3):
            dA = rng.standard_normal((n, d))
            dA *= eps / np.linalg.norm(dA, 2)
            A2 = A + dA
            if region == "simplex":
                b2 = np.abs(bvec + eps * rng.standard_normal(n) / math.sqrt(n))
                b2 /= b2.sum()
            else:
                db_ = rng.standard_normal(n)
                b2 = bvec + eps * db_ / np.linalg.norm(db_)
                b2 *= min(1.0, bn / np.linalg.norm(b2))
            assert np.linalg.norm(A2, 2) <= R and np.linalg.svd(A2, compute_uv=False)[-1] >= smin_lo
            x2 = _solve(name, A2, b2, w)
            assert max(np.linalg.norm(x0), np.linalg.norm(x2)) <= R
            moved = np.linalg.norm(x2 - x0)
            bound = bd.perturbation(np.linalg.norm(dA, 2), np.linalg.norm(b2 - bvec))
            assert moved <= bound, (name, eps, moved, bound)


def test_w_required_and_perturbation_need_l():
    bd = bounds("softmax", R=1.0, n=4)
    with pytest.raises(ValidationError, match="l="):
        bd.w_required(0.5)
    bd = bounds("softmax", R=1.0, n=4, l=0.25)
    assert bd.w_required(0.5) == pytest.approx(math.sqrt(bd.C + 1.0))


def test_bounds_validates_arguments():
    with pytest.raises(UnknownObjectiveError):
        bounds("nope")
    with pytest.raises(ValidationError, match="region"):
        bounds("softmax", region="cube")
    with pytest.raises(ValidationError, match="R"):
        bounds("softmax", R=0.0)
    with pytest.raises(ValidationError, match="n"):
        bounds("softmax", n=0)
    with pytest.raises(ValidationError, match="quantities"):
        certify("softmax", quantities=("K",))


def test_large_radius_overflows_to_inf_never_nan():
    bd = bounds("rescaled_exp", R=40.0, n=10)
    assert all(v == math.inf for v in bd.as_dict().values())
    # softmax stays finite: its normalized view gives n- and exp-free rules
    bd = bounds("softmax", R=40.0, n=10)
    assert math.isfinite(bd.C) and bd.C <= 9.0


def _planted_softmax(w_value):
    inst = softsym.problems.normalized.synthetic("softmax", 60, 3, seed=3, radius=0.3)
    A = inst.A / np.linalg.norm(inst.A, 2)
    bvec = softsym.problems.normalized.planted("softmax", A, inst.x_star)
    return softsym.objective("softmax", A, bvec, np.full(60, w_value)), inst.x_star


def test_start_condition_is_certified_near_the_solution():
    obj, x_star = _planted_softmax(10.0)
    res = softsym.minimize(obj, 0.9 * x_star, method="newton")
    assert res.success and res.start_certified, res.start_condition
    sc = res.start_condition
    assert sc["lhs"] <= sc["rhs"] and sc["l"] > 0
    # the certified distance bound really holds
    assert np.linalg.norm(0.9 * x_star - res.x) <= sc["dist_bound"] * (1 + 1e-9)


def test_start_condition_not_certified_without_regularizer():
    obj, x_star = _planted_softmax(0.0)
    res = softsym.minimize(obj, np.zeros(3), method="gd", maxiter=5)
    assert res.start_certified is False
    assert "no strong convexity" in res.start_condition["reason"]
    res = softsym.minimize(obj, np.zeros(3), method="gd", maxiter=5, certify_start=False)
    assert "start_certified" not in res


@pytest.mark.parametrize("name", MEMBERS)
def test_C_does_not_decrease_with_R(name):
    # start_condition's early exit (w_min^2 <= C at a lower bound of R) relies on this
    Rs = np.geomspace(1e-3, 1e3, 150)
    for region in REGIONS:
        for n, b_norm, w_max in ((2, 1.0, 0.0), (1000, 3.0, 0.7)):
            C = np.array([bounds(name, R=r, n=n, b_norm=b_norm, w_max=w_max, region=region).C for r in Rs])
            assert not np.any(np.isnan(C))
            assert np.all(C[1:] >= C[:-1]), (name, region, n, Rs[1:][C[1:] < C[:-1]])


def test_start_condition_rules_out_weak_regularizers_without_the_gram(monkeypatch):
    obj, _ = _planted_softmax(1e-3)

    def no_gram(*args, **kwargs):
        raise AssertionError("A^T A was formed although one pass over A decides")

    monkeypatch.setattr(np.linalg, "eigvalsh", no_gram)
    sc = start_condition(obj, np.zeros(3))
    assert sc["start_certified"] is False
    info = sc["start_condition"]
    assert "C grows with the radii" in info["reason"]
    # the radii used are below the ones the full check starts from, and it fails there as well
    R_full = max(float(np.linalg.norm(obj.A, 2)), 0.0)
    assert info["R_A"] <= R_full * (1 + 1e-12) and info["R_x"] <= 1e-300
    b_norm = float(np.linalg.norm(obj.b))
    assert info["w_min2"] <= bounds("softmax", n=60, b_norm=b_norm, R_A=R_full, R_x=1e-300).C


def test_rules_report_no_finite_bound_explicitly():
    # normalizing by sum sinh(u_i), which can vanish: no rule bounds 1/alpha
    spec = NormalizedSpec(name="sinh_softmax", doc="d", paper="-", phi=sp.sinh(u), ell=(sp.sinh(u) / alpha - b) ** 2 / 2)
    mb = db.derive_bounds(normalized.derive(spec))
    assert not mb.finite("ball", "C") and not mb.finite("ball", "M")
    assert "no finite bound" in db.emit_section(mb)
    src = db.emit_module(mb, "0" * 64)
    ns: dict = {}
    exec(compile(src, "sinh_softmax_bounds", "exec"), ns)  # noqa: S102 - our own generated source
    assert ns["C_ball"](1.0, 1.0, 3, 1.0, 0.0) == math.inf
    assert ns["FINITE"][("ball", "C")] is False


# ----------------------------------------------------------------------------------------
# The softmax-map cumulant rule (phi' = phi): its lemmas, checked numerically, and the target

def _softmax(u):
    e = np.exp(u - u.max())
    return e / e.sum()


def _cumulant_funcs():
    P, c, m, V = db.softmax_map_constants()
    syms = [c] + [m[j] for j in sorted(m)]
    return {k: sp.lambdify(syms, P[k], "numpy") for k in P}, sorted(m), V


def _central(s, h, js):
    c = h - s @ h
    return c, [float(s @ c**j) for j in js]


def test_cumulant_polynomials_are_the_directional_derivatives_of_softmax():
    # L1: D^k F(u)[h^k] = s * P_k(c), against central finite differences of the softmax
    funcs, js, _ = _cumulant_funcs()
    rng = np.random.default_rng(4)
    for n in (2, 3, 6):
        u, h = rng.standard_normal(n), rng.standard_normal(n)
        h /= np.linalg.norm(h)
        s = _softmax(u)
        c, ms = _central(s, h, js)
        t = 1e-2
        F = {j: _softmax(u + j * t * h) for j in (-2, -1, 0, 1, 2)}
        fd = {1: (F[1] - F[-1]) / (2 * t), 2: (F[1] - 2 * F[0] + F[-1]) / t**2,
              3: (F[2] - 2 * F[1] + 2 * F[-1] - F[-2]) / (2 * t**3)}
        for k, fn in funcs.items():
            np.testing.assert_allclose(s * fn(c, *ms), fd[k], atol=5e-4)


def test_moment_and_square_mean_bounds_hold_and_are_reached():
    # L5-L7: for unit h, |m_j| and E_s P_k(c)^2 stay below the derived constants, and the
    # two-point laws of n = 2 come close to them (the constants are not loose by design).
    funcs, js, V = _cumulant_funcs()
    mb = {j: float(db.moment_bound(j)) for j in js}
    rng = np.random.default_rng(5)
    top = {k: 0.0 for k in funcs}
    for trial in range(3000):
        n = 2 if trial % 2 else int(rng.integers(3, 8))
        s = rng.dirichlet(np.full(n, 0.3 if trial % 3 else 1.0))
        h = rng.standard_normal(n)
        h /= np.linalg.norm(h)
        c, ms = _central(s, h, js)
        assert np.ptp(c) <= math.sqrt(2) + 1e-12
        for j, mj in zip(js, ms):
            assert abs(mj) <= mb[j] * (1 + 1e-12) + 1e-15
        for k, fn in funcs.items():
            val = float(s @ fn(c, *ms) ** 2)
            assert val <= float(V[k]) * (1 + 1e-12)
            top[k] = max(top[k], val)
    assert top[1] > 0.49 and top[2] > 0.2 and top[3] > 0.2, top


def test_softmax_range_bound_holds_and_is_reached():
    # L9: max_i softmax(u)_i <= 1 / (1 + (n-1) exp(-R^2 sqrt(n/(n-1)))) on ||u|| <= R^2, with
    # equality at u = R^2 (1, -1/(n-1), ...) / sqrt(n/(n-1))
    f = sp.lambdify((db.R_A, db.R_x, db.n), db.softmax_range(), "math")
    rng = np.random.default_rng(6)
    for n in (2, 3, 7):
        for R in (0.5, 1.0, 2.0):
            bound = f(R, R, n)
            for _ in range(200):
                u = rng.standard_normal(n)
                u *= R**2 * rng.random() / np.linalg.norm(u)
                assert _softmax(u).max() <= bound * (1 + 1e-12)
            u = np.full(n, -1.0 / (n - 1))
            u[0] = 1.0
            u *= R**2 / np.linalg.norm(u)
            assert _softmax(u).max() == pytest.approx(bound, rel=1e-12)


def test_softmax_rule_applies_only_where_its_precondition_holds():
    names = {s.name: normalized.derive(s) for s in catalogue.NORMALIZED}
    assert db.softmax_loss(names["softmax"]) == (db.F - b) ** 2 / 2
    assert db.softmax_loss(names["softmax_xent"]) == -b * sp.log(db.F)     # applies, gives no finite bound
    for other in ("rescaled_exp", "rescaled_cosh", "exp"):
        assert db.softmax_loss(names[other]) is None, other


@pytest.mark.parametrize("region", REGIONS)
def test_softmax_C_and_M_tightness_at_most_10(region):
    # Issue 3's target as a regression guard: for softmax at R in {1, 2, 4} and n in {2, 3, 5}
    # the derived C and M are valid and within a factor 10 of the worst the search finds.
    cert = certify("softmax", R=(1.0, 2.0, 4.0), n=(2, 3, 5), region=region, quantities=("C", "M"),
                      seed=0, restarts=3, maxfev=300)
    assert not cert.violations, cert.table()
    assert max(r.tightness for r in cert.rows) <= 10.0, cert.table()
    # n- and R-free for large R: C <= 2/sqrt(3), M <= 2.7 R^3
    bd = bounds("softmax", R=4.0, n=1000, region=region)
    assert bd.C <= 2 / math.sqrt(3) + 1e-9 and bd.M <= 2.7 * 4.0**3


@pytest.mark.parametrize("name", ["rescaled_exp", "rescaled_cosh", "rescaled_sinh"])
def test_pair_expansion_is_the_gauss_newton_remainder(name):
    # B - J^T J (J = d rho / d u, rho_i = rho0(u_i) + alpha rho1(b_i)) is diagonal with entries
    # self(u_i, b_i) + sum_j pair(u_i, b_i; u_j, b_j; Q): the identity the pair rule bounds.
    spec = next(s for s in catalogue.NORMALIZED if s.name == name)
    f = normalized.derive(spec)
    rho1, self_, pair, Q = db._pair_parts(f)
    uj, bj = db._u2, db._b2
    f_self = sp.lambdify((u, b), self_, "numpy")
    f_pair = sp.lambdify((u, b, uj, bj, Q), pair, "numpy")
    f_rho1 = sp.lambdify(b, rho1 + 0 * b, "numpy")
    f_J = sp.lambdify((u, alpha, b), [sp.diff(db._rho(f), u), sp.diff(db._rho(f), alpha)], "numpy")
    f_phi_u = sp.lambdify(u, f.partials["phi_u"], "numpy")
    f_phi = sp.lambdify(u, f.phi, "numpy")
    k = kernels(name)
    rng = np.random.default_rng(8)
    for n in (2, 3, 5):
        u_, b_ = rng.uniform(-1.5, 1.5, n), rng.uniform(-0.5, 0.5, n)
        a = f_phi(u_).sum()
        d_own, d_alpha = f_J(u_, a, b_)
        J = np.diag(d_own * np.ones(n)) + np.outer(d_alpha * np.ones(n), f_phi_u(u_))
        B = k.hess(np.eye(n), b_, np.zeros(n), u_)
        Qv = float(np.sum(f_rho1(b_) ** 2))
        d = np.array([f_self(u_[i], b_[i]) + sum(f_pair(u_[i], b_[i], u_[j], b_[j], Qv) for j in range(n))
                      for i in range(n)])
        np.testing.assert_allclose(B - J.T @ J, np.diag(d), atol=1e-9 * np.abs(B).max())


def test_pair_rule_bounds_rescaled_C_within_10_of_the_search():
    cert = certify("rescaled_exp", R=(1.0, 2.0, 4.0), n=(2, 3, 5), quantities=("C",), seed=0,
                      restarts=3, maxfev=300)
    assert not cert.violations, cert.table()
    assert max(r.tightness for r in cert.rows) <= 10.0, cert.table()


def test_M_search_point_without_direction_is_no_witness():
    # a zero direction (Powell can set it exactly) gives u = v: no witness, not a division by zero
    for n in (1, 3):
        prob = SearchProblem("softmax", "M", "ball", 1.0, n, 1.0)
        z = np.concatenate([np.full(n, 0.3), np.zeros(n), np.full(n, 0.1)])
        assert prob.value(z) == 0.0
