"""The softsym command line, driven through subprocesses."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from softsym.theory.bounds import bounds

ROOT = Path(__file__).resolve().parents[2]


def softsym(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "softsym.app.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_catalogue_and_formulas():
    out = softsym("catalogue")
    assert out.returncode == 0 and "rescaled_sinh" in out.stdout
    page = softsym("formulas", "softmax")
    assert page.returncode == 0 and "Proven exactly" in page.stdout
    tex = softsym("formulas", "softmax", "--latex")
    assert tex.returncode == 0 and "|" not in tex.stdout
    lines = tex.stdout.splitlines()
    assert lines[0] == "\\varphi(u) = e^{u}" and "q_i = e^{u}" in lines
    assert any(line.startswith("\\beta_i = ") for line in lines)
    bounds = [line for line in lines if " \\le " in line]
    assert len(bounds) == 10 and bounds[0].startswith("C \\le ") and bounds[0].endswith("(ball)")
    att = softsym("formulas", "attention", "--latex")
    assert att.returncode == 0 and "\\ell_{ss} = 2" in att.stdout.splitlines()
    att_bounds = [line for line in att.stdout.splitlines() if " \\le " in line]
    assert [line.split(" ")[0] for line in att_bounds] == ["smooth_x", "C_x", "M_x", "smooth_y", "cross", "cross_res"]
    assert all(line.endswith("(norm_ball)") and "R_{A}" not in line and "R_A" in line for line in att_bounds)
    two = softsym("formulas", "two_layer_softmax", "--latex")
    assert two.returncode == 0 and " \\le " not in two.stdout
    assert any(line.startswith("lr = ") and line.endswith("(preactivation_box)") for line in two.stdout.splitlines())


def test_formulas_come_from_the_manifest_not_the_page():
    from softsym.registry import catalogue, page

    for info in catalogue():
        assert info.formulas, info.name
        text = page(info)
        for lhs, rhs in info.formulas:
            assert rhs in text, (info.name, lhs)   # the page is rendered from the same list
        assert info.has_bounds == (info.family != "mixture_score")
        assert bool(info.bound_formulas) == info.has_bounds
        regions = {region for region, _, _ in info.bound_formulas}
        assert regions == {region for region, _ in info.bound_assumptions}
        assert all(assumed for _, assumed in info.bound_assumptions)
        assert info.bound_relation == ("=" if info.family == "two_layer" else "<=")
        for _, _, rhs in info.bound_formulas:
            assert rhs in text, (info.name, rhs)   # the page is rendered from the same mapping


def test_verify_passes_and_names_unknown_members():
    ok = softsym("verify", "softmax", "rescaled_exp")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all checks passed" in ok.stdout and ok.stdout.count("pass") >= 6
    bad = softsym("verify", "softmax", "nope")
    assert bad.returncode == 2 and "unknown objective 'nope'" in bad.stderr
    bad = softsym("verify", "softmax", "--rungs", "exact,proof")
    assert bad.returncode == 2 and "exact,numeric,bounds" in bad.stderr


def _row(stdout: str, name: str) -> list[str]:
    line = next(line for line in stdout.splitlines() if line.startswith(f"| {name} "))
    return [c.strip() for c in line.strip("|").split("|")]


def test_verify_every_family():
    out = softsym("verify", "gaussian_mixture_score", "two_layer_relu", "two_layer_softmax")
    assert out.returncode == 0, out.stdout + out.stderr
    for name, family in (("gaussian_mixture_score", "mixture_score"), ("two_layer_relu", "two_layer")):
        row = _row(out.stdout, name)
        assert row[1] == family and row[2] == "pass" and "emission identical" in row[3]
        assert row[4] == "pass" and "max scaled error" in row[5]
    assert _row(out.stdout, "gaussian_mixture_score")[6] == "n/a"
    assert "no derived bounds" in _row(out.stdout, "gaussian_mixture_score")[7]
    assert _row(out.stdout, "two_layer_relu")[6] == "pass"     # the margin-count bound, certified
    # attention's exact rung re-proves 13 claims (minutes); its numeric rung is the new part
    out = softsym("verify", "attention", "softmax_xent", "--rungs", "numeric,bounds")
    assert out.returncode == 0, out.stdout + out.stderr
    att = _row(out.stdout, "attention")
    assert att[1] == "attention" and att[2] == "n/a" and att[4] == "pass" and "hessp_x" in att[5]
    xent = _row(out.stdout, "softmax_xent")
    assert xent[4] == "pass" and xent[6] == "pass" and "no violation" in xent[7]


def test_numeric_rung_catches_a_wrong_kernel(monkeypatch):
    from softsym.app import verify
    from softsym.registry import kernels, member

    real = kernels("gaussian_mixture_score")

    class Wrong:
        log_density = staticmethod(real.log_density)

        @staticmethod
        def score(X, means, var, logw):
            return real.score(X, means, var, logw) * 1.001

    monkeypatch.setattr(verify, "kernels", lambda name: Wrong)
    ok, detail = verify.numeric_step(member("gaussian_mixture_score"), seed=0)
    assert ok is False and "max scaled error" in detail


def test_solve_synthetic_with_outputs(tmp_path):
    out = softsym("solve", "softmax", "--synthetic", "500,6", "--json", tmp_path / "r.json",
                  "--plot", tmp_path / "r.png")
    assert out.returncode == 0, out.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["success"] and res["member"] == "softmax" and len(res["x"]) == 6
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_solve_npz(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((200, 3))
    np.savez(tmp_path / "d.npz", A=A, b=rng.dirichlet(np.ones(200)), w=np.full(200, 0.1))
    out = softsym("solve", "softmax", "--data", tmp_path / "d.npz", "--method", "gd", "--tol", "1e-6")
    assert out.returncode == 0, out.stderr
    assert re.search(r"success\s*\|\s*True", out.stdout)


def test_solve_passes_options_to_the_method(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", A=rng.standard_normal((400, 3)), b=rng.dirichlet(np.ones(400)),
             w=np.full(400, 0.3))
    out = softsym("solve", "softmax", "--data", tmp_path / "d.npz", "--method", "approx-newton",
                  "-o", "mode=paper", "--option", "eps0=0.3", "-o", "exact_above=1", "--json", tmp_path / "r.json")
    assert out.returncode in (0, 1), out.stderr
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["mode"] == "paper" and res["eps0"] == 0.3 and res["method"] == "approx-newton"
    bad = softsym("solve", "softmax", "--data", tmp_path / "d.npz", "-o", "eps0=0.3")  # newton has no eps0
    assert bad.returncode == 2 and "unknown option(s) eps0" in bad.stderr
    bad = softsym("solve", "softmax", "--data", tmp_path / "d.npz", "-o", "0x=1")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr


def test_solve_attention_planted_and_npz(tmp_path):
    out = softsym("solve", "attention", "--synthetic", "200,3", "--json", tmp_path / "r.json",
                  "--plot", tmp_path / "r.png")
    assert out.returncode == 0, out.stderr
    assert "start X* + 50% noise" in out.stdout
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["success"] and res["member"] == "attention" and np.shape(res["X"]) == (3, 3)
    assert float(re.search(r"\|\|X - X_planted\|\|\s*\|\s*(\S+)", out.stdout).group(1)) < 1e-6
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    inst = softsym_planted(120, 2)
    np.savez(tmp_path / "att.npz", A1=inst.A1, A2=inst.A2, A3=inst.A3, B=inst.B, X0=1.1 * inst.X_star)
    out = softsym("solve", "attention", "--data", tmp_path / "att.npz", "--method", "newton", "-o", "reg_y=1e-9",
                  "--json", tmp_path / "n.json")
    assert out.returncode == 0, out.stderr
    res = json.loads((tmp_path / "n.json").read_text())
    assert np.linalg.norm(np.array(res["X"]) - inst.X_star) < 1e-4, res["message"]


def softsym_planted(n: int, d: int):
    from softsym.problems.attention import planted

    return planted(n, d, seed=5)


@pytest.mark.parametrize("args, message", [
    (["--synthetic", "30,2", "--method", "gd"], "unknown method 'gd' for the attention family"),
    (["--synthetic", "30,2", "-o", "eps0=0.1"], "got unknown option(s) eps0"),
    (["--synthetic", "30,2", "-o", "reduced=3"], "reduced must be True or False"),
    (["--synthetic", "30,2", "-o", "reg_x=-1"], "reg_x"),
    (["--data", "NOA3"], "lacks array(s) A3"),
    (["--data", "SHAPE"], "must have shape"),
])
def test_solve_attention_bad_input_exits_2(tmp_path, args, message):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "noa3.npz", A1=rng.standard_normal((5, 2)), A2=rng.standard_normal((5, 2)),
             B=rng.standard_normal((5, 2)))
    np.savez(tmp_path / "shape.npz", **{k: rng.standard_normal((5, 2)) for k in ("A1", "A2", "A3")},
             B=rng.standard_normal((5, 3)))
    args = [{"NOA3": tmp_path / "noa3.npz", "SHAPE": tmp_path / "shape.npz"}.get(a, a) for a in args]
    res = softsym("solve", "attention", *args, "--json", tmp_path / "r.json")
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert message in res.stderr
    assert not (tmp_path / "r.json").exists()


def _bad_files(tmp: Path) -> dict[str, tuple[list, str]]:
    np.savez(tmp / "no_b.npz", A=np.ones((3, 2)))
    np.savez(tmp / "shape.npz", A=np.ones((3, 2)), b=np.ones(4))
    np.savez(tmp / "nan.npz", A=np.full((3, 2), np.nan), b=np.ones(3))
    np.savez(tmp / "obj.npz", A=np.array([{}, {}, {}], dtype=object), b=np.ones(3))
    np.savez(tmp / "dtype.npz", A=np.ones((3, 2), dtype=complex), b=np.ones(3))
    (tmp / "junk.npz").write_bytes(b"not a zip")
    return {
        "missing array": (["--data", tmp / "no_b.npz"], "lacks array(s) b"),
        "wrong shape": (["--data", tmp / "shape.npz"], "b must have shape (3,)"),
        "non-finite": (["--data", tmp / "nan.npz"], "A has 6 non-finite"),
        "pickled": (["--data", tmp / "obj.npz"], "without pickle"),
        "dtype": (["--data", tmp / "dtype.npz"], "complex"),
        "not npz": (["--data", tmp / "junk.npz"], "not a readable .npz"),
        "no file": (["--data", tmp / "missing.npz"], "does not exist"),
        "bad synthetic": (["--synthetic", "3x4"], "N,D"),
        "bad method": (["--synthetic", "30,2", "--method", "sgd"], "unknown method 'sgd'"),
    }


@pytest.mark.parametrize("case", ["missing array", "wrong shape", "non-finite", "pickled", "dtype", "not npz",
                                  "no file", "bad synthetic", "bad method"])
def test_solve_bad_input_exits_2_and_writes_nothing(tmp_path, case):
    args, message = _bad_files(tmp_path)[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    res = softsym("solve", "softmax", *args, "--json", out_dir / "r.json", "--plot", out_dir / "r.png")
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert message in res.stderr
    assert list(out_dir.iterdir()) == []


def test_solve_unknown_member_and_bad_output_path(tmp_path):
    res = softsym("solve", "softmaxx", "--synthetic", "30,2")
    assert res.returncode == 2 and "unknown objective 'softmaxx'" in res.stderr
    res = softsym("solve", "softmax", "--synthetic", "30,2", "--json", tmp_path / "nodir" / "r.json")
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = softsym("solve", "softmax", "--synthetic", "30,2", "--plot", tmp_path / "r.jpg")
    assert res.returncode == 2 and ".png" in res.stderr


def _readme_spec() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Your own objective"):]
    return re.search(r"```python[^\n]*\n(.*?)```", section, re.S).group(1)


def test_user_defined_objective_from_the_readme(tmp_path):
    (tmp_path / "my_specs.py").write_text(_readme_spec())
    gen = softsym("generate", tmp_path / "my_specs.py", "--out", tmp_path / "my_kernels")
    assert gen.returncode == 0, gen.stderr
    assert (tmp_path / "my_kernels" / "softmax_t2.py").is_file()
    check = softsym("generate", tmp_path / "my_specs.py", "--out", tmp_path / "my_kernels", "--check")
    assert check.returncode == 0
    script = (
        "import numpy as np, softsym\n"
        f"softsym.load_kernels({str(tmp_path / 'my_kernels')!r})\n"
        "inst = softsym.problems.normalized.synthetic('softmax_t2', n=500, d=6, seed=0)\n"
        "obj = inst.objective()\n"
        "res = softsym.minimize(obj, method='newton')\n"
        "assert res.success, res.message\n"
        "assert np.linalg.norm(res.x - inst.x_star) < 1e-8\n"
        "x = np.full(6, 0.3); h = 1e-5\n"
        "fd = [(obj.fun(x + h * e) - obj.fun(x - h * e)) / (2 * h) for e in np.eye(6)]\n"
        "assert np.allclose(obj.jac(x), fd, atol=1e-8)\n"
        "print('ok', res.nit)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.startswith("ok"), run.stderr


def test_wrong_spec_is_refused_clearly(tmp_path):
    (tmp_path / "wrong.py").write_text(
        "from sympy import exp\n"
        "from softsym.derive.spec import NormalizedSpec, alpha, b, u\n"
        "SPECS = [NormalizedSpec(name='x', doc='rescaled exp, wrongly claimed shift invariant', paper='-',\n"
        "                        phi=exp(u), ell=(exp(u) - alpha * b) ** 2 / 2, shift_invariant=True)]\n")
    res = softsym("generate", tmp_path / "wrong.py", "--out", tmp_path / "k")
    assert res.returncode == 1
    assert "member 'x': could not prove: L without regularizer is invariant" in res.stderr
    assert "refusing to emit" in res.stderr
    assert not (tmp_path / "k").exists()


def test_generate_bad_spec_file_exits_2(tmp_path):
    (tmp_path / "empty.py").write_text("x = 1\n")
    res = softsym("generate", tmp_path / "empty.py", "--out", tmp_path / "k")
    assert res.returncode == 2 and "defines no spec" in res.stderr
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    res = softsym("generate", tmp_path / "broken.py", "--out", tmp_path / "k")
    assert res.returncode == 2 and "boom" in res.stderr
    assert not (tmp_path / "k").exists()


def test_bounds_command():
    out = softsym("bounds", "softmax", "--R", "2", "--n", "3", "--certify", "--restarts", "1")
    assert out.returncode == 0, out.stderr
    assert "no violation found" in out.stdout and "| C | 2 | 2 | 3 |" in out.stdout
    assert "certify softmax 5/5: G_b" in out.stderr        # progress, one step per quantity
    bad = softsym("bounds", "softmax", "--R", "-1")
    assert bad.returncode == 2 and "R_A must be > 0" in bad.stderr
    # separate radii: the same rows as the Python API, R_x fixed across the R_A rows
    out = softsym("bounds", "rescaled_exp", "--R-A", "3", "5", "--R-x", "0.2", "--n", "4")
    assert out.returncode == 0, out.stderr
    for R_A in (3.0, 5.0):
        bd = bounds("rescaled_exp", n=4, R_A=R_A, R_x=0.2)
        assert f"{bd.C:.4g}" in out.stdout and f"{bd.M:.4g}" in out.stdout
    bad = softsym("bounds", "softmax", "--R-x", "0")
    assert bad.returncode == 2 and "R_x must be > 0" in bad.stderr
    bad = softsym("bounds", "nope")
    assert bad.returncode == 2 and "unknown objective 'nope'" in bad.stderr
    for name in ("gaussian_mixture_score",):
        bad = softsym("bounds", name)
        assert bad.returncode == 2 and "has no derived bounds" in bad.stderr and "normalized" in bad.stderr


USER_SPEC = """
from sympy import exp
from softsym.derive.spec import NormalizedSpec, alpha, b, u

SPECS = [NormalizedSpec(name="softmax_l4", doc="softmax with a quartic loss", paper="-",
                        phi=exp(u), ell=(exp(u) / alpha - b) ** 4 / 4, shift_invariant=True)]
"""


@pytest.fixture(scope="module")
def user_kernels(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("user")
    (tmp / "spec.py").write_text(USER_SPEC)
    gen = softsym("generate", tmp / "spec.py", "--out", tmp / "kernels")
    assert gen.returncode == 0, gen.stderr
    return tmp / "kernels"


def test_kernels_option_before_or_after_the_subcommand(user_kernels, tmp_path):
    assert "softmax_l4" not in softsym("catalogue").stdout
    for args in (["--kernels", user_kernels, "catalogue"], ["catalogue", "--kernels", user_kernels],
                 ["--kernels", user_kernels, "catalogue", "--kernels", user_kernels]):
        out = softsym(*args)
        assert out.returncode == 0 and _row(out.stdout, "softmax_l4")[1] == "normalized", (args, out.stderr)
    tex = softsym("formulas", "softmax_l4", "--kernels", user_kernels, "--latex")
    assert tex.returncode == 0 and "\\ell(u, \\alpha; b) = " in tex.stdout
    assert "Proven exactly" in softsym("formulas", "softmax_l4", "--kernels", user_kernels).stdout
    solve = softsym("--kernels", user_kernels, "solve", "softmax_l4", "--synthetic", "300,4",
                    "--json", tmp_path / "r.json")
    assert solve.returncode == 0, solve.stdout + solve.stderr
    assert json.loads((tmp_path / "r.json").read_text())["member"] == "softmax_l4"
    ver = softsym("verify", "softmax_l4", "--kernels", user_kernels, "--rungs", "exact,numeric")
    assert ver.returncode == 0, ver.stdout + ver.stderr
    row = _row(ver.stdout, "softmax_l4")
    assert row[2] == "n/a" and "softsym generate" in row[3] and row[4] == "pass"
    bounds = softsym("bounds", "softmax_l4", "--kernels", user_kernels, "--R", "1", "--n", "3")
    assert bounds.returncode == 0 and "| 1   | 1   | 3 |" in bounds.stdout


def test_kernels_option_bad_directory(tmp_path):
    out = softsym("--kernels", tmp_path / "missing", "catalogue")
    assert out.returncode == 2 and "no such directory" in out.stderr
    out = softsym("catalogue", "--kernels", tmp_path)
    assert out.returncode == 2 and "no manifest.json" in out.stderr


def test_bounds_attention_table_and_certify():
    out = softsym("bounds", "attention", "--R", "1", "--n", "2", "--certify", "--restarts", "1")
    assert out.returncode == 0, out.stderr
    assert "C_phi" in out.stdout and "reg_x_threshold_phi" in out.stdout and "no violation found" in out.stdout


def test_bounds_command_two_layer():
    out = softsym("bounds", "two_layer_exp", "--B", "1", "--m", "64", "--n", "8", "--certify", "--restarts", "1")
    assert out.returncode == 0, out.stderr
    assert "no violation found" in out.stdout and "| 1 | 64 | 8 |" in out.stdout and "L_H" in out.stdout
    relu = softsym("bounds", "two_layer_relu", "--B", "1", "--m", "64", "--n", "8")
    assert relu.returncode == 0 and "no deterministic NTK perturbation constant" in relu.stdout
    bad = softsym("bounds", "two_layer_softmax", "--B", "-1")
    assert bad.returncode == 2 and "B must be" in bad.stderr
