"""Fuzzed command line (in process, ``softsym.app.cli.main``): exit 0/1/2, one line on stderr
and nothing written on 2, no traceback, strict JSON, generate/load_kernels file handling
(issue 19)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softsym.app.cli import jsonable, main
from softsym.derive.pipeline import DEFAULT_OUT
from softsym.errors import ValidationError
from softsym.registry import load_kernels

from .conftest import drawn

FUZZ = settings(deadline=None, database=None, max_examples=60,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*"))}


def run_cli(capsys, argv: list[str], folder: Path) -> tuple[int, str, str]:
    """``main(argv)`` under the contract; returns (code, stdout, stderr)."""
    capsys.readouterr()
    before = listing(folder)
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), code
    assert "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err
        assert listing(folder) == before, "nothing may be written on exit code 2"
    if code != 0:
        assert err.strip(), "a failure says why on stderr"
    assert not [p for p in listing(folder) if ".probe" in p or p.startswith(".")], "temporary files left"
    return code, out, err


@pytest.fixture
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    (folder / "sub").mkdir()
    (folder / "taken.json").mkdir()
    return folder


# -- solve ----------------------------------------------------------------------------------
members = st.sampled_from(["softmax", "exp", "cosh", "rescaled_sinh", "softmax_xent", "attention", "two_layer_relu",
                           "gaussian_mixture_score", "nope", "softmax\n"])
synthetic = st.sampled_from(["30,3", "12,2", "4,4", "0,3", "3", "a,b", "-5,2", "500000000,64", "1000000,100000",
                             "20,2,2", " 30 , 3 "])
seeds = st.sampled_from(["0", "7", "-1", "1.5", "x", str(2**63), str(2**63 - 1)])
options = st.lists(st.sampled_from(["maxiter=3", "tol=1e-3", "method=gd", "callback=1", "lr=0.1", "lr=1e300", "lr=-1",
                                    "K=4", "K=0", "seed=-3", "true_grad=\"false\"", "true_grad=false", "eps0=2",
                                    "sketch_size=1", "jl_dim=0", "mode=paper", "bogus=1", "=3", "novalue",
                                    "reg_x=0.1", "reduced=\"yes\"", "lr=0.1"]), max_size=3)
methods = st.sampled_from([None, None, "newton", "gd", "zo", "approx-newton", "newton-cg", "bogus"])


@FUZZ
@given(members, synthetic, seeds, options, methods, st.sampled_from([None, "1e-6", "nan", "-1", "0"]),
       st.sampled_from([None, "5", "0", "-2", "2.5"]),
       st.sampled_from([None, "r.json", "sub/r.json", "missing/r.json", "taken.json", "r.txt", "sub"]),
       st.sampled_from([None, None, "p.png", "missing/p.png", "sub", "p.jpg"]))
def test_solve_synthetic(capsys, work, member, size, seed, opts, method, tol, maxiter, out_json, plot):
    drawn("cli: solve --synthetic")
    argv = ["solve", member, "--synthetic", size, "--seed", seed]
    for o in opts:
        argv += ["-o", o]
    for flag, value in (("--method", method), ("--tol", tol), ("--maxiter", maxiter or "30"),
                        ("--json", out_json and work / out_json), ("--plot", plot and work / plot)):
        if value is not None:
            argv += [flag, value]
    code, out, err = run_cli(capsys, argv, work)
    written = work / out_json if out_json else None
    if code in (0, 1) and written is not None and written.suffix == ".json" and written.is_file():
        text = written.read_text()
        json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    if plot and code in (0, 1) and (work / plot).is_file():
        assert (work / plot).read_bytes()[:4] == b"\x89PNG"


@st.composite
def npz_contents(draw):
    n, d = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    arrays = {}
    for key, shape in (("A", (n, d)), ("b", (n,)), ("w", (n,)), ("x0", (d,))):
        if draw(st.integers(0, 5)) == 0 and key in ("A", "b"):
            continue  # missing array
        if key in ("w", "x0") and draw(st.booleans()):
            continue
        shape = draw(st.sampled_from([shape, shape, shape, shape[::-1] + (1,)]))
        scale = draw(st.sampled_from([1e-300, 1e-160, 1.0, 1.0, 1.0, 30.0, 800.0, 1e160, 1e300]))
        a = np.random.default_rng(draw(st.integers(0, 9))).standard_normal(shape) * scale
        if key == "w":
            a = np.abs(a)
        if draw(st.integers(0, 8)) == 0:
            a.flat[0] = draw(st.sampled_from([np.nan, np.inf]))
        kind = draw(st.sampled_from(["f8", "f8", "f8", "f8", "i8", "f4", "c16", "U5", "O", "?"]))
        with np.errstate(all="ignore"):
            arrays[key] = a.astype(kind) if kind != "U5" else a.astype(str)
    return arrays, draw(st.sampled_from(["npz", "npz", "npz", "pickle", "garbage", "truncated", "missing", "dir"]))


def write_data(path: Path, arrays: dict, how: str) -> None:
    if how == "missing":
        return
    if how == "dir":
        path.mkdir()
        return
    if how == "garbage":
        path.write_bytes(b"PK\x03\x04 not really a zip" * 3)
        return
    np.savez(path, **arrays)  # object arrays are pickled: must be refused on reading
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    if how == "pickle":
        np.savez(path, **{**arrays, "A": np.array([{"a": 1}], dtype=object)})


@FUZZ
@given(npz_contents(), st.sampled_from(["softmax", "exp", "rescaled_cosh", "sinh", "softmax_xent"]), methods)
def test_solve_data_files(capsys, tmp_path_factory, contents, member, method):
    drawn("cli: solve --data")
    folder = tmp_path_factory.mktemp("data")
    arrays, how = contents
    data = folder / "d.npz"
    write_data(data, arrays, how)
    argv = ["solve", member, "--data", data, "--maxiter", "20", "--json", folder / "r.json"]
    if method is not None:
        argv += ["--method", method]
    code, out, err = run_cli(capsys, argv, folder)
    if code in (0, 1):
        payload = json.loads((folder / "r.json").read_text(), parse_constant=lambda c: pytest.fail(c))
        assert payload["success"] is (code == 0)


def test_overflowing_start_is_exit_1_with_a_message(capsys, tmp_path):
    drawn("cli: solve --data")
    data = tmp_path / "d.npz"
    np.savez(data, A=np.ones((5, 2)) * 400, b=np.ones(5), x0=np.ones(2) * 10)
    code, out, err = run_cli(capsys, ["solve", "exp", "--data", data, "--json", tmp_path / "r.json"], tmp_path)
    assert code == 1
    payload = json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert payload["success"] is False and payload["status"] == 3


def test_plot_failure_leaves_no_json(capsys, tmp_path, monkeypatch):
    drawn("cli: output paths")
    import softsym.app.plots as plots

    def broken(*args, **kwargs):
        raise RuntimeError("plot backend exploded")

    monkeypatch.setattr(plots, "convergence_plot", broken)
    with pytest.raises(RuntimeError):
        main(["solve", "softmax", "--synthetic", "30,3", "--json", str(tmp_path / "r.json"),
              "--plot", str(tmp_path / "p.png")])
    assert list(tmp_path.iterdir()) == []


@FUZZ
@given(st.lists(st.sampled_from(["--R", "1", "-1", "nan", "--n", "2", "0", "-3", "--b-norm", "0", "inf", "--w-max",
                                 "-1", "--region", "cube", "simplex", "--seed", "-4", "x", "--restarts", "0"]),
                max_size=6),
       st.sampled_from(["softmax", "exp", "attention", "nope"]))
def test_bounds(capsys, work, args, member):
    drawn("cli: bounds")
    run_cli(capsys, ["bounds", member, *args], work)


def test_certify_shows_progress_and_warns_about_cost(capsys, work, monkeypatch):
    drawn("cli: bounds")
    import softsym.theory.certify as certify_module

    seen = []
    real = certify_module.certify

    def fake(name, **kw):  # the real search at n = 1000 runs for hours: record the call, search tiny sizes
        seen.append(kw)
        return real(name, R=(1.0,), n=(2,), quantities=kw.get("quantities", ("C",)), restarts=1, maxfev=5)

    monkeypatch.setattr(certify_module, "certify", fake)
    code, out, err = run_cli(capsys, ["bounds", "softmax", "--certify", "--R", "1"], work)
    assert code in (0, 1) and "warning" in err and "certify softmax" in err and seen


@FUZZ
@given(st.sampled_from(["verify", "formulas", "catalogue", "demo", "generate", "nope"]),
       st.lists(st.sampled_from(["softmax", "nope", "--seed", "-1", "12", "--latex", "--bogus"]), max_size=3))
def test_other_commands_bad_arguments(capsys, work, command, args):
    if command in ("demo", "verify") and not ("--bogus" in args or "-1" in args or "nope" in args):
        return  # the real demo/verify runs take minutes; their bad-argument paths are what is fuzzed here
    if command == "generate":
        args = [*args, "--out", str(DEFAULT_OUT)]
    drawn("cli: other commands")
    run_cli(capsys, [command, *args], work)


# -- generate and load_kernels ------------------------------------------------------------
SPEC_BODIES = ["import sys\nsys.exit(0)\n", "import sys\nsys.exit(3)\n", "SPECS = 5\n", "SPECS = None\n",
               "SPECS = 'softmax'\n", "SPECS = [1, 2]\n", "SPECS = []\n", "raise KeyError('x')\n", "def broken(:\n",
               "x = 1\n",
               "from sympy import exp\nfrom softsym.derive.spec import NormalizedSpec, alpha, b, u\n"
               "SPECS = [NormalizedSpec(name={name!r}, doc='d', paper='-', phi=exp(u), ell=(exp(u) / alpha - b) ** 2,"
               " shift_invariant=True)]\n"]
BAD_NAMES = ["quart\n", "Quart", "1x", "", "a-b", "a b"]
GOOD = "fuzz_ok"


@FUZZ
@given(st.sampled_from(range(len(SPEC_BODIES))), st.sampled_from(BAD_NAMES + [GOOD]),
       st.sampled_from(["new", "empty", "foreign", "file", "builtin", "builtin-dots", "builtin-sub", "builtin-rel",
                        "ours"]))
def test_generate(capsys, tmp_path_factory, body, name, out_kind):
    folder = tmp_path_factory.mktemp("gen")
    spec_ok = body == len(SPEC_BODIES) - 1 and name == GOOD
    out_ok = out_kind in ("new", "empty", "ours")
    if spec_ok and out_ok:
        out_kind = "foreign"  # a real derivation takes a minute: the fuzz keeps one side invalid
    drawn("cli: generate")
    spec = folder / "spec.py"
    spec.write_text(SPEC_BODIES[body].format(name=name))
    out = {"new": folder / "new", "empty": folder / "empty", "foreign": folder / "foreign", "file": spec,
           "builtin": DEFAULT_OUT, "builtin-dots": DEFAULT_OUT / ".." / DEFAULT_OUT.name,
           "builtin-sub": DEFAULT_OUT / "sub",
           "builtin-rel": Path(os.path.relpath(DEFAULT_OUT, Path.cwd())), "ours": folder / "ours"}[out_kind]
    (folder / "empty").mkdir()
    (folder / "foreign").mkdir()
    (folder / "foreign" / "manifest.json").write_text('{"members": {}}')
    (folder / "foreign" / "keep.py").write_text("x = 1\n")
    (folder / "ours").mkdir()
    (folder / "ours" / "manifest.json").write_text('{"generator": "softsym.derive", "members": {}}')
    builtin_before = listing(DEFAULT_OUT)
    code, _, err = run_cli(capsys, ["generate", spec, "--out", out], folder)
    assert code == 2, err
    assert listing(DEFAULT_OUT) == builtin_before


MANIFESTS = ["", "{", "[]", "null", '{"members": 5}', '{"members": {"a\\n": {}}}', '{"members": {"x": 3}}',
             '{"members": {"x": {"family": "normalized"}}}',
             '{"members": {"Bad": {"family": "f", "doc": "", "paper": "", "spec_hash": "", "proof": []}}}',
             '{"members": {"softmax": {"family": "normalized", "doc": "", "paper": "", "spec_hash": "", "proof": []}}}']


@FUZZ
@given(st.sampled_from(MANIFESTS), st.booleans(), st.binary(max_size=40))
def test_load_kernels_refuses_malformed_folders(tmp_path_factory, manifest, with_init, junk):
    drawn("api: load_kernels")
    folder = tmp_path_factory.mktemp("kernels")
    if manifest or junk:
        (folder / "manifest.json").write_bytes(manifest.encode() if manifest else junk)
    if with_init:
        (folder / "__init__.py").write_text("MEMBERS = ()\n")
    with pytest.raises(ValidationError) as info:
        load_kernels(folder)
    assert str(folder) in str(info.value) or "manifest" in str(info.value)


def test_load_kernels_import_failure_is_reported(tmp_path):
    drawn("api: load_kernels")
    (tmp_path / "manifest.json").write_text('{"generator": "softsym.derive", "members": {}}')
    (tmp_path / "__init__.py").write_text("import sys\nsys.exit(0)\n")
    with pytest.raises(ValidationError, match="failed to import"):
        load_kernels(tmp_path)


def test_jsonable_is_strict():
    drawn("cli: output paths")
    text = json.dumps(jsonable({"a": np.array([1.0, np.inf, np.nan]), "b": (np.float32(2), np.int64(3)),
                                "c": float("-inf"), "d": np.bool_(True), "e": object}), allow_nan=False)
    assert json.loads(text)["a"] == [1.0, None, None]


# -- Dask ------------------------------------------------------------------------------------
dask_array = pytest.importorskip("dask.array")


@FUZZ
@given(st.integers(1, 3), st.sampled_from(["ok", "longer", "shorter", "wide", "int", "missing", "garbage", "meta",
                                           "meta-dtype", "object"]))
def test_dask_chunks_checked(tmp_path_factory, bad_chunk, damage):
    drawn("api: dask chunk files")
    from softsym.backends.dask.storage import open_npy_chunks, save_npy_chunks

    folder = tmp_path_factory.mktemp("chunks")
    A = np.random.default_rng(0).standard_normal((12, 3))
    save_npy_chunks(folder, dask_array.from_array(A, chunks=(4, 3)))
    path = folder / f"{bad_chunk - 1:06d}.npy"
    if damage == "longer":
        np.save(path, np.zeros((5, 3)))
    elif damage == "shorter":
        np.save(path, np.zeros((3, 3)))
    elif damage == "wide":
        np.save(path, np.zeros((4, 4)))
    elif damage == "int":
        np.save(path, np.zeros((4, 3), dtype=np.int64))
    elif damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"\x93NUMPY garbage")
    elif damage == "meta":
        (folder / "chunks.json").write_text('{"rows": [4, 4], "d": "3"}')
    elif damage == "meta-dtype":
        (folder / "chunks.json").write_text('{"rows": [4, 4, 4], "d": 3, "dtype": "float32"}')
    elif damage == "object":
        np.save(path, np.array([None] * 4, dtype=object), allow_pickle=True)
    if damage == "ok":
        assert np.array_equal(open_npy_chunks(folder).compute(), A)
        return
    with pytest.raises(ValidationError):
        open_npy_chunks(folder).compute()


def test_zo_on_dask_is_refused_at_the_boundary():
    drawn("api: dask chunk files")
    import softsym

    rng = np.random.default_rng(0)
    obj = softsym.objective("softmax", dask_array.from_array(rng.standard_normal((20, 3)), chunks=(10, 3)),
                            rng.random(20))
    with pytest.raises(ValidationError, match="Dask"):
        softsym.minimize(obj, method="zo", maxiter=3)
    with pytest.raises(ValidationError, match="Dask"):
        softsym.estimators.zeroth_order.estimate(obj, np.zeros(3))


@FUZZ
@given(st.sampled_from(MANIFESTS + ['{"generator": "softsym.derive", "members": {}}']),
       st.sampled_from(["catalogue", "solve"]), st.booleans())
def test_cli_kernels_folders(capsys, tmp_path_factory, manifest, command, before):
    drawn("cli: --kernels folders")
    folder = tmp_path_factory.mktemp("kfold")
    kdir = folder / "k"
    kdir.mkdir()
    (kdir / "manifest.json").write_text(manifest)
    (kdir / "__init__.py").write_text("import sys\nsys.exit(0)\n")  # importing must not end the process
    args = [command] + (["softmax", "--synthetic", "20,2", "--maxiter", "5"] if command == "solve" else [])
    argv = ["--kernels", str(kdir), *args] if before else [*args, "--kernels", str(kdir)]
    code, _, _ = run_cli(capsys, argv, folder)
    assert code == 2
