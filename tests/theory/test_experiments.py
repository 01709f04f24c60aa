"""The papers' theorems on certified instances: a certified run must not break its theorem."""

from __future__ import annotations

import math

import numpy as np
import pytest

import softsym
from softsym.errors import ValidationError
from softsym.theory import experiments as ex
from softsym.theory.bounds import bounds, bounds_for_data
from softsym.theory.certify import certify
from softsym.theory.start import start_condition

MEMBERS = [m.name for m in softsym.catalogue("normalized")]
PAPER_MEMBERS = ("softmax", "rescaled_exp", "rescaled_cosh", "rescaled_sinh")


def test_separate_radii_reduce_to_one_radius_and_grow_with_each():
    for name in ("softmax", "rescaled_sinh"):
        one = bounds(name, R=1.5, n=7)
        two = bounds(name, n=7, R_A=1.5, R_x=1.5)
        assert one.as_dict() == two.as_dict()
        # a large ||A|| with a small ||x|| keeps C small: C depends on ||Ax|| <= R_A R_x only
        assert bounds(name, n=7, R_A=8.0, R_x=0.125).C == pytest.approx(bounds(name, n=7, R=1.0).C, rel=1e-12)
        for q in ("C", "smooth", "M", "G_A"):
            vals = [getattr(bounds(name, n=7, R_A=1.0, R_x=r), q) for r in (0.5, 1.0, 2.0)]
            assert vals[0] <= vals[1] <= vals[2], (name, q, vals)


def test_certification_with_separate_radii_finds_no_violation():
    cert = certify("rescaled_exp", R=(3.0,), R_x=0.2, n=(3,), seed=4, restarts=2, maxfev=120)
    assert not cert.violations, cert.table()
    assert all(r.R_x == 0.2 for r in cert.rows)
    assert "| 3 | 0.2 | 3 |" in cert.table()


@pytest.mark.parametrize("name", MEMBERS)
def test_certified_instance_satisfies_the_assumptions(name):
    inst = ex.certified_instance(name, n=300, d=3, seed=1)
    obj = inst.objective()
    # strong convexity certified at the recorded radii: w_min^2 >= C + l / sigma_min^2
    bd = bounds(name, n=300, b_norm=max(float(np.linalg.norm(inst.b)), 1e-300), w_max=float(inst.w[0]),
                region=inst.bounds.region, R_A=inst.R_A, R_x=inst.R_x)
    assert inst.w[0] ** 2 >= bd.C + inst.l / inst.sigma_min**2 - 1e-9 * inst.w[0] ** 2
    assert inst.R_A == pytest.approx(np.linalg.norm(inst.A, 2), rel=1e-10)
    assert inst.l > 0 and np.linalg.eigvalsh(obj.hess(inst.x_min))[0] >= inst.l * (1 - 1e-9)
    # the start is certified and the minimizer is where the certificate says
    sc = start_condition(obj, inst.x0)
    assert sc["start_certified"], sc["start_condition"]
    assert np.linalg.norm(inst.x0 - inst.x_min) <= sc["start_condition"]["dist_bound"] * (1 + 1e-9)
    assert np.linalg.norm(inst.x_min) <= inst.R_x
    assert inst.bounds.M * np.linalg.norm(inst.x0 - inst.x_min) <= 0.1 * inst.l
    # bounds_for_data reproduces the certified l at the same R_x
    bd2, q = bounds_for_data(name, inst.A, inst.b, inst.w, inst.R_x)
    assert bd2.l == pytest.approx(inst.l, rel=1e-9) and q.sigma_min == pytest.approx(inst.sigma_min)


@pytest.fixture(scope="module")
def paper_instances():
    return {name: ex.certified_instance(name, n=4000, d=3, seed=2) for name in PAPER_MEMBERS}


@pytest.mark.parametrize("name", PAPER_MEMBERS)
def test_paper_mode_contracts_at_the_proven_rate_on_certified_instances(paper_instances, name):
    inst = paper_instances[name]
    for seed in range(3):
        run = ex.newton_contraction(inst, eps0=0.25, seed=seed)
        assert run.status == 0, run.message
        assert run.sample_rows and max(run.sample_rows) < 4000   # the sparsifier ran, not exact Newton
        assert run.ratios, run.errors
        for r, p in zip(run.ratios, run.predicted):
            assert r <= ex.PAPER_RATE, (name, seed, run.ratios)   # the theorem's 0.4
            assert r <= p, (name, seed, run.ratios, run.predicted)  # the bound's per-step factor
        assert run.errors[-1] <= 1e-10 * max(1.0, np.linalg.norm(inst.x_min)) + 1e-12


def test_sparsifier_holds_at_the_rate_its_size_promises(paper_instances):
    inst = paper_instances["rescaled_exp"]
    sa = ex.sparsifier_accuracy(inst.objective(), inst.x0, 0.25, draws=30, seed=3)
    assert max(sa["sample_rows"]) < inst.A.shape[0]
    assert sa["fraction_within"] >= 0.9     # delta = 0.01 per draw
    assert min(sa["eps_K"]) > 0


@pytest.mark.parametrize("name", ["softmax", "rescaled_exp"])
def test_perturbation_displacement_stays_below_the_bound(name):
    inst = ex.certified_instance(name, n=20, d=3, seed=0, sigma_min=0.8, l_extra=0.01, radius=1.0)
    rows = ex.perturbation_study(inst, sizes=(1e-3, 1e-2, 3e-2), repeats=3, seed=1)
    for r in rows:
        assert 0 < r.moved <= r.bound, (name, r)
    # the displacement scales with the perturbation (the corollary is not vacuous here)
    small = np.median([r.moved for r in rows if r.size == 1e-3])
    large = np.median([r.moved for r in rows if r.size == 3e-2])
    assert large > 5 * small


def test_zo_certified_step_and_rate():
    inst = ex.certified_instance("softmax", n=300, d=4, seed=3)
    obj = inst.objective()
    res = softsym.minimize(obj, inst.x0, method="zo", K=4, lr="certified", R_x=inst.R_x, maxiter=3, tol=0.0)
    opts = res.zo_options
    assert opts["lr"] == pytest.approx(4 / ((4 + 4) * opts["certified_smooth"]), rel=1e-15)
    assert opts["certified_smooth"] == pytest.approx(
        bounds("softmax", n=300, b_norm=float(np.linalg.norm(inst.b)), w_max=float(inst.w[0]),
               region=inst.bounds.region, R_A=float(np.linalg.norm(inst.A, 2)), R_x=inst.R_x).smooth, rel=1e-9)
    for K in (1, 16):
        r = ex.zeroth_order_rate(inst, K, eps=1e-4, seed=K)
        assert 0 < r.iterations <= r.predicted, r     # the expected-rate bound, with its 1/0.3 margin seen
        assert not r.left_region
        assert r.smooth >= r.smooth_true * (1 - 1e-9) and r.l <= r.l_true * (1 + 1e-9)


def test_zo_lr_option_is_validated():
    inst = softsym.problems.normalized.synthetic("softmax", 20, 2, seed=0)
    with pytest.raises(ValidationError, match="lr"):
        softsym.minimize(inst.objective(), method="zo", lr="fast")
    with pytest.raises(ValidationError, match="R_x"):
        softsym.minimize(inst.objective(), method="zo", lr="certified", R_x=-1.0)


def test_certified_instance_validates_arguments():
    with pytest.raises(ValidationError, match="sigma_min"):
        ex.certified_instance("softmax", n=10, d=2, sigma_min=2.0, R_A=1.0)
    with pytest.raises(ValidationError, match="n"):
        ex.certified_instance("softmax", n=0)


def test_zo_rate_formula():
    # K -> infinity: the gradient-descent rate 1 - l / smooth
    assert ex.zo_rate(10**9, 5, 1.0, 4.0) == pytest.approx(0.75, rel=1e-6)
    assert ex.zo_rate(1, 5, 1.0, 4.0) == pytest.approx(1 - 5 / (36 * 4))
    assert math.isfinite(ex.zo_rate(1, 1, 1.0, 1.0))
