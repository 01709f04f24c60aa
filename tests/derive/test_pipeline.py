"""derive/: exact proofs, refusal to emit wrong formulas, determinism, the sync check."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

from softsym.derive import pipeline as generate
from softsym.derive.catalogue import NORMALIZED
from softsym.derive.families import normalized
from softsym.derive.proof import ProofError, is_zero
from softsym.derive.spec import NormalizedSpec, SpecError, alpha, b, u

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "generated"


def test_catalogue_has_the_issue_members():
    names = {s.name for s in NORMALIZED}
    assert names == {"softmax", "rescaled_exp", "rescaled_cosh", "rescaled_sinh", "exp", "cosh", "sinh",
                     "softmax_xent"}


@pytest.mark.parametrize("spec", NORMALIZED, ids=lambda s: s.name)
def test_structure_theorem_is_proven(spec):
    """The manifest records what was proven; the determinism test below shows a fresh
    generation (which proves everything again) reproduces it byte for byte."""
    claims = json.loads((GENERATED / "manifest.json").read_text())["members"][spec.name]["proof"]
    assert any("grad L = A^T g" in c for c in claims)
    assert any("hess L" in c for c in claims)
    assert any("stationary" in c for c in claims)
    assert any("invariant" in c for c in claims) == spec.shift_invariant


def test_wrong_structured_formula_is_refused():
    """Dropping the S phi'' term of beta must make the Hessian proof fail."""
    f = normalized.derive(NORMALIZED[0])
    wrong = dict(f.partials, phi_uu=sp.Integer(0))
    with pytest.raises(ProofError, match="hess L"):
        normalized.prove(dataclasses.replace(f, partials=wrong))


def test_false_shift_invariance_claim_is_refused():
    spec = dataclasses.replace(next(s for s in NORMALIZED if s.name == "rescaled_exp"), shift_invariant=True)
    with pytest.raises(ProofError, match="invariant"):
        generate.build_member(spec)


def test_wrong_target_is_refused():
    spec = NormalizedSpec(name="bad_target", doc="d", paper="-", phi=sp.exp(u),
                          ell=(sp.exp(u) / alpha - b) ** 2 / 2, target=sp.exp(u))
    with pytest.raises(ProofError, match="refusing to emit"):
        generate.build([spec])


def test_is_zero_is_not_vacuous():
    x = sp.Symbol("x", real=True)
    assert is_zero(sp.cosh(x) ** 2 - sp.sinh(x) ** 2 - 1)
    assert not is_zero(sp.cosh(x) ** 2 - sp.sinh(x) ** 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="Bad Name", ell=u), "must match"),
    (dict(name="x", ell=u * sp.Symbol("z")), "unknown symbols"),
    (dict(name="x", ell=u * alpha), "unknown symbols"),          # alpha without phi
    (dict(name="x", ell=u, phi=sp.exp(b)), "depend on u only"),
    (dict(name="x", ell=u, shift_invariant=True), "needs a normalizer"),
])
def test_spec_validation(kwargs, match):
    with pytest.raises(SpecError, match=match):
        NormalizedSpec(doc="d", paper="-", **kwargs)


def test_ambiguous_target_needs_explicit_target():
    spec = NormalizedSpec(name="quartic", doc="d", paper="-", ell=(u - b) ** 4)  # d/db has 1 root (b = u)
    assert normalized.derive(spec).target == u
    spec = NormalizedSpec(name="lin", doc="d", paper="-", ell=u * b)
    with pytest.raises(SpecError, match="target"):
        normalized.derive(spec)


def _generate_into(out: Path, hashseed: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONHASHSEED=hashseed)
    return subprocess.Popen([sys.executable, "-m", "softsym.derive", "-q", "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_generation_is_byte_identical_across_hash_seeds(tmp_path):
    procs = [_generate_into(tmp_path / seed, seed) for seed in ("0", "4242")]  # concurrently: ~1 min each
    for proc in procs:
        _, err = proc.communicate()
        assert proc.returncode == 0, err.decode()
    names = sorted(p.name for p in (tmp_path / "0").iterdir() if p.is_file())
    assert names == sorted(p.name for p in (tmp_path / "4242").iterdir() if p.is_file())
    for name in names:
        one = (tmp_path / "0" / name).read_bytes()
        assert one == (tmp_path / "4242" / name).read_bytes(), name
        assert one == (GENERATED / name).read_bytes(), name


def test_check_names_stale_files(tmp_path):
    out = tmp_path / "gen"
    shutil.copytree(GENERATED, out, ignore=shutil.ignore_patterns("__pycache__"))
    (out / "softmax.py").write_text((out / "softmax.py").read_text() + "# edited by hand\n")
    (out / "exp.md").unlink()
    proc = subprocess.run([sys.executable, "-m", "softsym.derive", "--check", "-q", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "softmax.py" in proc.stderr and "exp.md" in proc.stderr
    assert "cosh.py" not in proc.stderr
