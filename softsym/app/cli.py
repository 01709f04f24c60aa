"""The ``softsym`` command line (reference: docs/cli.md).

Exit codes: 0 success; 1 a verification, proof, certification or solve failed; 2 bad input
(unknown member, a member of the wrong family, unreadable or malformed data, a bad kernel
directory, bad arguments) -- in that case nothing is written.  Errors are one line on
stderr, never a traceback (a start or data whose values overflow is exit 1).  Output files
(``--json``, ``--plot``) are checked before any work and written atomically (a temporary
file in the same folder, then ``os.replace``): either every requested file is written
completely or none is.  JSON is strict: non-finite numbers are written as ``null``.

``--kernels DIR`` (repeatable; before or after the subcommand) loads the members generated into
``DIR`` by ``softsym generate SPEC.py --out DIR`` so every subcommand sees them.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .._validate import MEMORY_FRACTION, SEED_LIMIT, count, memory_limit, positive
from ..errors import OverflowDetected, ValidationError
from .report import table


class InputError(Exception):
    """Bad command-line input: reported on stderr with exit code 2."""


#: ``-o KEY=VALUE`` keys that are named arguments of ``softsym.minimize`` (set them with their own flags)
RESERVED_OPTIONS = {"maxiter": "--maxiter", "tol": "--tol", "method": "--method", "callback": None,
                    "x0": "--data FILE.npz with x0", "problem": None, "certify_start": None}
#: ``bounds --certify`` warns about its cost above this many rows
CERTIFY_WARN_N = 8


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``softsym COMMAND: error: ...``), exit code 2."""

    def error(self, message: str):
        _say(f"{self.prog}: error: {message} (see {self.prog} --help)")
        raise SystemExit(2)


def _say(message: str) -> None:
    """One line on stderr."""
    print(" ".join(str(message).split()), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already reported on one line)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        _load_kernel_dirs([*args.kernels, *args.sub_kernels])
        return args.func(args)
    except (InputError, ValidationError) as exc:
        _say(f"softsym {args.command}: error: {exc}")
        return 2
    except OverflowDetected as exc:
        _say(f"softsym {args.command}: failed: {exc}")
        return 1
    except MemoryError:
        _say(f"softsym {args.command}: failed: out of memory")
        return 1
    except BrokenPipeError:   # `softsym ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _seed(text: str) -> int:
    """A ``--seed`` value: an integer in [0, 2**63)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer in [0, 2**63), got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"seed must be an integer in [0, 2**63), got {text!r}")
    return value


def _load_kernel_dirs(dirs: list[Path]) -> None:
    """``registry.load_kernels`` for each ``--kernels DIR``; a bad directory is bad input (exit 2)."""
    from ..registry import load_kernels

    for directory in dict.fromkeys(dirs):       # each once, in order
        if not directory.is_dir():
            raise InputError(f"--kernels {directory}: no such directory")
        load_kernels(directory)


_KERNELS_HELP = ("load the members generated into DIR by `softsym generate SPEC.py --out DIR` "
                 "(repeatable)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="softsym", description="derived, proven and fast softmax objectives",
                                     epilog="exit codes: 0 success, 1 a check/proof/solve failed, 2 bad input")
    parser.add_argument("--kernels", type=Path, action="append", default=[], metavar="DIR", help=_KERNELS_HELP)
    # the same option after the subcommand; its own dest so the subparser cannot reset the top-level list
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kernels", dest="sub_kernels", type=Path, action="append", default=[], metavar="DIR",
                        help=_KERNELS_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kw)

    p = add("demo", help="reproduce each paper's claim: verify, solve, tables, plots, report")
    p.add_argument("--out", type=Path, default=Path("softsym-report"), help="report folder (default ./softsym-report)")
    p.set_defaults(func=_demo)

    p = add("catalogue", help="list the catalogue members")
    p.set_defaults(func=_catalogue)

    p = add("verify", help="run the verification ladder (exact proof, finite differences, bounds)",
                       description="For every family: exact (re-derive, re-prove, emission byte-identical; "
                                   "built-in members), numeric (finite differences) and bounds (small adversarial "
                                   "search; members with derived bounds). The exact rung re-runs SymPy: seconds "
                                   "for most members, minutes for attention; all members take several minutes.")
    p.add_argument("members", nargs="*", metavar="MEMBER",
                   help="members to verify, of any family (default: all, including --kernels members)")
    p.add_argument("--rungs", type=_rungs, default=RUNGS_DEFAULT, metavar="R1,R2",
                   help="comma-separated rungs to run, of exact, numeric, bounds (default: all three)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the random instances and points (default 0)")
    p.set_defaults(func=_verify)

    p = add("solve", help="solve a member on your data (.npz with A, b[, w, x0]) or a synthetic instance")
    p.add_argument("member", metavar="MEMBER", help="a normalized member, or attention")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, metavar="FILE.npz",
                     help="arrays A (n, d), b (n,), optional w (n,), x0 (d,); for attention A1, A2, A3, B (n, d), "
                          "optional X0, Y0 (d, d)")
    src.add_argument("--synthetic", metavar="N,D", help="planted instance of size N x D")
    p.add_argument("--method", default=None, help="a solver (default newton; for attention newton-cg)")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE", type=_option,
                   help="a solver option, e.g. -o eps0=0.1 -o mode=paper (approx-newton); for attention also "
                        "reg_x, reg_y (problem) and reduced; VALUE is read as JSON when it parses, else as text")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the synthetic instance and of randomized methods")
    p.add_argument("--tol", type=float, default=None, help="relative gradient tolerance (default 1e-10; attention 1e-8)")
    p.add_argument("--maxiter", type=int, default=None)
    p.add_argument("--plot", type=Path, metavar="OUT.png", help="write a convergence plot")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="write the result as JSON")
    p.set_defaults(func=_solve)

    p = add("bounds", help="derived convexity/smoothness/Lipschitz/perturbation bounds of a member",
                       description="Evaluate the derived bounds of a member that has them (the normalized "
                                   "family) on a grid of R and n. --certify adds an adversarial search: "
                                   "5 quantities x len(R) x len(n) cells, each restarts x (16 draws + up to "
                                   "maxfev Powell evaluations); about 0.1-1 s per cell at n <= 5 with the "
                                   "defaults, growing with n (keep n small: n = 1000 takes tens of minutes).")
    p.add_argument("member", metavar="MEMBER", help="a member with derived bounds (normalized family)")
    p.add_argument("--R", type=float, nargs="+", default=[1.0, 2.0, 4.0],
                   help="shorthand for --R-A with --R-x equal to it: ||A|| <= R, ||x|| <= R")
    p.add_argument("--R-A", dest="R_A", type=float, nargs="+", metavar="R_A",
                   help="normalized members: radii for A, ||A||_2 <= R_A (one row each; replaces --R)")
    p.add_argument("--R-x", dest="R_x", type=float, metavar="R_x",
                   help="normalized members: radius for x, ||x||_2 <= R_x (default: equal to R_A in each row)")
    p.add_argument("--n", type=int, nargs="+", default=[1000], help="number of rows")
    p.add_argument("--b-norm", type=float, default=1.0, help="||b||_2 bound (region ball)")
    p.add_argument("--w-max", type=float, default=0.0, help="largest regularizer weight")
    p.add_argument("--region", choices=("ball", "simplex"), default="ball", help="b in the ball or on the simplex")
    p.add_argument("--certify", action="store_true",
                   help="also search adversarially for violations (n from --n; cost grows with n and restarts: "
                        "use n <= 10); shows progress on stderr; exit 1 on a violation")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the --certify search (default 0)")
    p.add_argument("--restarts", type=int, default=4, help="--certify restarts per cell (default 4)")
    p.add_argument("--maxfev", type=int, default=300, help="--certify Powell evaluations per restart (default 300)")
    p.add_argument("--reg-y", type=float, default=1.0, help="attention: reg_y for the reduced-function bound C_phi")
    p.add_argument("--B", type=float, nargs="+", default=[1.0, 2.0, 4.0],
                   help="two-layer members: |<w_r, x_i>| <= B (pre-activation bound)")
    p.add_argument("--m", type=int, nargs="+", default=[64, 1024, 4096], help="two-layer members: width")
    p.add_argument("--kappa", type=float, default=None, help="two-layer members: output scale (default the member's)")
    p.add_argument("--lam0", type=float, default=1.0, help="two-layer members: lambda_min(H(W0))")
    p.add_argument("--rho0", type=float, default=1.0, help="two-layer members: initial residual norm")
    p.add_argument("--outputs", type=int, default=1,
                   help="two-layer members: number of outputs c (a in R^{m x c}; default 1)")
    p.set_defaults(func=_bounds)

    p = add("formulas", help="print a member's derived formulas")
    p.add_argument("member", metavar="MEMBER")
    p.add_argument("--latex", action="store_true",
                   help="only the derived equations, one `lhs = rhs` per line, then the derived bounds "
                        "`quantity <= rhs  (region)` where the member has them")
    p.set_defaults(func=_formulas)

    p = add("generate", help="derive, prove and emit kernels for your own spec file")
    p.add_argument("spec", type=Path, metavar="SPEC.py")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if DIR is stale")
    p.set_defaults(func=_generate)
    return parser


RUNGS_DEFAULT = ("exact", "numeric", "bounds")


def _rungs(text: str) -> tuple[str, ...]:
    """``exact,numeric`` -> ("exact", "numeric"); unknown names are a usage error."""
    rungs = tuple(r.strip() for r in text.split(",") if r.strip())
    bad = [r for r in rungs if r not in RUNGS_DEFAULT]
    if bad or not rungs:
        raise argparse.ArgumentTypeError(f"rungs are a comma-separated subset of {','.join(RUNGS_DEFAULT)}, "
                                         f"got {text!r}")
    return rungs


def _option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> (key, value): VALUE as JSON (numbers, true/false, null) when it parses, else text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a Python name, got {text!r}")
    if key in RESERVED_OPTIONS:
        flag = RESERVED_OPTIONS[key]
        raise argparse.ArgumentTypeError(f"{key} is not a solver option" + (f"; use {flag}" if flag else
                                         " (not settable from the command line)"))
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


# -- commands ------------------------------------------------------------------------------

def _demo(args) -> int:
    from .demo import run_demo

    return run_demo(args.out)


def _catalogue(args) -> int:
    from ..registry import catalogue

    rows = [(m.name, m.family, m.paper, m.doc) for m in catalogue()]
    print(table(rows, ("member", "family", "paper", "description")))
    return 0


def _verify(args) -> int:
    from .verify import run_verify

    return run_verify(args.members, seed=args.seed, rungs=args.rungs)


def _bounds(args) -> int:
    from ..registry import catalogue, member
    from ..theory.bounds import QUANTITIES, bounds
    from ..theory.certify import certify
    from .progress import progress

    if member(args.member).family == "attention":
        return _bounds_attention(args)
    if member(args.member).family == "two_layer":
        return _bounds_two_layer(args)
    info = member(args.member)
    if not info.has_bounds:
        with_bounds = sorted({m.family for m in catalogue() if m.has_bounds})
        raise InputError(f"{info.name} ({info.family} family) has no derived bounds; members of the "
                         f"{', '.join(with_bounds)} families have them")
    rows = []
    R_As = args.R_A or args.R
    for R_A in R_As:
        R_x = R_A if args.R_x is None else args.R_x
        for n in args.n:
            bd = bounds(info.name, n=n, b_norm=args.b_norm, w_max=args.w_max, region=args.region, R_A=R_A, R_x=R_x)
            rows.append((f"{R_A:g}", f"{R_x:g}", n, *(f"{getattr(bd, q):.4g}" if bd.finite[q] else "no finite bound"
                                                     for q in QUANTITIES)))
    print(f"{info.name}: {bd.assumptions}")
    print(table(rows, ("R_A", "R_x", "n", *QUANTITIES)))
    if not args.certify:
        return 0
    if max(args.n) > CERTIFY_WARN_N:
        _say(f"softsym bounds: warning: --certify searches over n x n matrices and n*d-dimensional data; at "
             f"n = {max(args.n)} one cell takes minutes to hours (the search is meant for small n, e.g. --n 2 3 5)")
    # one quantity at a time (the search seeds each cell by its quantity, R and n indices, so this is
    # the same certificate as one call) to report progress
    parts = [certify(info.name, R=tuple(R_As), n=tuple(args.n), b_norm=args.b_norm, region=args.region,
                     quantities=(q,), seed=args.seed, restarts=args.restarts, maxfev=args.maxfev, R_x=args.R_x)
             for q in progress(QUANTITIES, f"certify {info.name}")]
    cert = dataclasses.replace(parts[0], rows=tuple(r for p in parts for r in p.rows))
    return _report_certificate(cert)


def _report_certificate(cert) -> int:
    """Print a certificate's table and verdict; exit code 1 on a violation."""
    print()
    print(cert.table())
    if cert.violations:
        print(f"{len(cert.violations)} bound(s) VIOLATED")
        return 1
    print("no violation found")
    return 0


def _bounds_attention(args) -> int:
    """``softsym bounds attention``: the derived bounds with every radius equal to R, optionally certified."""
    from ..theory.attention import attention_bounds, certify_attention

    cols = ("smooth_x", "C_x", "M_x", "smooth_y", "cross", "cross_res", "C_phi", "reg_x_threshold_phi")
    rows = []
    for R in args.R:
        for n in args.n:
            bd = attention_bounds(args.member, R, R, R, R, n, 0.0, args.reg_y).as_dict()
            rows.append((f"{R:g}", n, *(f"{bd[q]:.4g}" for q in cols)))
    print(f"{args.member}: R_A = R_X = R_Y = R_B = R, reg_y = {args.reg_y:g}; {attention_bounds(args.member).assumptions}")
    print(table(rows, ("R", "n", *cols)))
    if not args.certify:
        return 0
    cert = certify_attention(args.member, R=tuple(args.R), n=tuple(args.n), reg_y=args.reg_y, seed=args.seed,
                             restarts=args.restarts)
    return _report_certificate(cert)


def _bounds_two_layer(args) -> int:
    from ..theory import two_layer as tl

    rows, c = [], None
    for B in args.B:
        for m in args.m:
            for n in args.n:
                c = tl.bounds(args.member, B=B, m=m, n=n, kappa=args.kappa, lam0=args.lam0, rho0=args.rho0,
                              c=args.outputs)
                rows.append((f"{B:g}", m, n, f"{c.params['kappa']:.4g}", *(f"{v:.4g}" for v in c.values.values())))
    print(f"{c.name} ({c.kind}, c = {args.outputs}): {c.assumptions}")
    print(table(rows, ("B", "m", "n", "kappa", *c.values)))
    if not c.deterministic:
        print("no deterministic NTK perturbation constant (the activation's derivative jumps); margin-count bounds "
              "shown at D=0, N=0: see softsym.theory.two_layer.relu_perturbation")
    if not args.certify:
        return 0
    cert = tl.certify(args.member, seed=args.seed, restarts=args.restarts, outputs=args.outputs)
    return _report_certificate(cert)


def _generate(args) -> int:
    from ..derive.__main__ import main as derive_main

    argv = ["--spec", str(args.spec), "--out", str(args.out)] + (["--check"] if args.check else [])
    return derive_main(argv)


def _formulas(args) -> int:
    from ..registry import member, page

    info = member(args.member)
    if not args.latex:
        print(page(info), end="")
        return 0
    for lhs, rhs in info.formulas:
        print(f"{lhs} = {rhs}")
    rel = "=" if info.bound_relation == "=" else "\\le"
    for region, quantity, rhs in info.bound_formulas:
        print(f"{quantity} {rel} {rhs}  ({region})")
    return 0


def _output_path(path: Path | None, suffix: str) -> Path | None:
    """``path`` checked before any work: the right suffix, not a directory or special file, in
    an existing folder where a file can be created (probed with a temporary file)."""
    if path is None:
        return None
    if path.suffix.lower() != suffix:
        raise InputError(f"{path} must end in {suffix}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a file")
    if path.exists() and not path.is_file():
        raise InputError(f"{path} exists and is not a regular file")
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"folder {folder} does not exist" if not folder.exists() else f"{folder} is not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{path} is not writable")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write into folder {folder} ({exc.strerror or exc})") from None
    return path


def _write_atomically(outputs: list[tuple[Path, Callable[[Path], object]]]) -> None:
    """Write every ``(path, writer)``: each writer fills a temporary file in its target's
    folder; only when all succeeded are they moved into place (``os.replace``).  On any
    failure the temporary files are removed and no target is touched."""
    umask = os.umask(0)
    os.umask(umask)
    temps: list[tuple[Path, Path]] = []
    try:
        for path, writer in outputs:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
            os.close(fd)
            temps.append((Path(tmp), path))
            writer(Path(tmp))
            os.chmod(tmp, 0o666 & ~umask)
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise


def jsonable(value):
    """``value`` as strict JSON data: arrays as lists, numpy scalars as Python numbers, and
    non-finite floats (inf, NaN) as ``None`` (JSON ``null``); other objects as their ``str``."""
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _load_npz(path: Path, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise InputError(f"data file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path} is not a readable .npz file (np.savez archive expected)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:
        raise InputError(f"{path}: cannot read arrays without pickle ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - zipfile/OSError/...: anything unreadable is bad input
        raise InputError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise InputError(f"{path} lacks array(s) {', '.join(missing)} (has: {', '.join(sorted(arrays)) or 'none'})")
    return arrays


def _synthetic_size(text: str, family: str) -> tuple[int, int]:
    """``N,D`` of ``--synthetic``, both >= 1, refused before allocating when the instance and
    its solve would need more than :func:`softsym._validate.memory_limit` allows."""
    try:
        n, d = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--synthetic takes N,D (two integers), got {text!r}") from None
    if n < 1 or d < 1:
        raise InputError(f"--synthetic N,D needs N >= 1 and D >= 1, got {text!r}")
    need = synthetic_bytes(family, n, d)
    limit = memory_limit()
    if need > limit:
        raise InputError(f"--synthetic {n},{d} needs about {need / 2**30:.3g} GiB for the {family} instance and its "
                         f"solve; the limit is {limit / 2**30:.3g} GiB ({MEMORY_FRACTION:.0%} of this "
                         "machine's memory)")
    return n, d


def synthetic_bytes(family: str, n: int, d: int) -> int:
    """An estimate of the peak memory of a ``--synthetic N,D`` solve: float64 arrays of the
    instance (normalized: A, and about two more n x d temporaries in the Hessian assembly;
    attention: A1, A2, A3, B, the n x n softmax matrix, n x d^2 Jacobian blocks and the d^2 x d^2 Hessian)."""
    if family == "attention":
        return 8 * (5 * n * d + 3 * n * n + 2 * n * d * d + 4 * d**4)
    return 8 * (3 * n * d + 8 * n + 3 * d * d)


def _normalized_problem(info, args, options: dict):
    """(problem, x0, source, planted rows) for a normalized member from ``--data`` or ``--synthetic``."""
    from ..problems.normalized import NormalizedObjective, synthetic

    if args.data is not None:
        arrays = _load_npz(args.data, ("A", "b"))
        obj = NormalizedObjective(info.name, arrays["A"], arrays["b"], arrays.get("w"))
        return obj, arrays.get("x0"), str(args.data), f"{obj.n} x {obj.d}", lambda res: []
    n, d = _synthetic_size(args.synthetic, "normalized")
    inst = synthetic(info.name, n, d, seed=args.seed)
    obj = inst.objective()
    return (obj, None, f"synthetic {n}x{d}, seed {args.seed}", f"{obj.n} x {obj.d}",
            lambda res: [("||x - x_planted||", f"{np.linalg.norm(res.x - inst.x_star):.2e}")])


def _attention_problem(info, args, options: dict):
    """(problem, x0, source, planted rows) for attention; the options ``reg_x, reg_y`` go to the problem."""
    from ..problems.attention import AttentionRegression, planted

    regs = {k: options.pop(k) for k in ("reg_x", "reg_y") if k in options}
    if args.data is not None:
        arrays = _load_npz(args.data, ("A1", "A2", "A3", "B"))
        prob = AttentionRegression(arrays["A1"], arrays["A2"], arrays["A3"], arrays["B"], **regs)
        return (prob, (arrays.get("X0"), arrays.get("Y0")), str(args.data), f"{prob.n} x {prob.d}",
                lambda res: [("CG steps", res.cg_iters)])
    n, d = _synthetic_size(args.synthetic, "attention")
    inst = planted(n, d, seed=args.seed)
    prob = AttentionRegression(inst.A1, inst.A2, inst.A3, inst.B, **regs)
    source = f"planted {n}x{d}, seed {args.seed}; start X* + 50% noise (solve is local)"
    return (prob, (inst.perturbed_start(seed=args.seed + 1), None), source, f"{prob.n} x {prob.d}",
            lambda res: [("CG steps", res.cg_iters),
                         ("||X - X_planted||", f"{np.linalg.norm(res.X - inst.X_star):.2e}"),
                         ("||Y - Y_planted||", f"{np.linalg.norm(res.Y - inst.Y_star):.2e}")])


#: how the CLI builds a problem of each family that ``softsym.minimize`` can solve
_PROBLEMS = {"normalized": _normalized_problem, "attention": _attention_problem}


def _solve(args) -> int:
    from ..api import minimize
    from ..registry import member
    from ..solvers import DEFAULT_METHOD, solver_class

    info = member(args.member)
    if info.family not in _PROBLEMS:
        raise InputError(f"{info.name} ({info.family} family) has no solver; solvable families: "
                         f"{', '.join(sorted(_PROBLEMS))}")
    method = args.method or DEFAULT_METHOD[info.family]
    solver = solver_class(info.family, method)   # unknown method: ValidationError (exit 2)
    if args.tol is not None:
        positive("--tol", args.tol, allow_zero=True)
    if args.maxiter is not None:
        count("--maxiter", args.maxiter)
    plot, out_json = _output_path(args.plot, ".png"), _output_path(args.json, ".json")
    if plot is not None:
        try:
            import matplotlib  # noqa: F401  (checked before the solve: a late failure would waste it)
        except ImportError:
            raise InputError("--plot needs matplotlib: pip install 'softsym[plot]'") from None
    keys = [k for k, _ in args.option]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise InputError(f"option(s) {', '.join(repeated)} given more than once with -o")
    options = dict(args.option)
    problem, x0, source, size, planted_rows = _PROBLEMS[info.family](info, args, options)
    if "seed" in inspect.signature(solver).parameters:
        options.setdefault("seed", args.seed)
    res = minimize(problem, x0, method=method, tol=args.tol, maxiter=args.maxiter, **options)
    return _report(res, info.name, source, size, method, planted_rows(res), plot, out_json)


def _report(res, name: str, source: str, size: str, method: str, extra: list, plot, out_json) -> int:
    """Print the result table, write the JSON and the plot if asked (atomically, both or
    neither); exit code 0 iff converged."""
    times = res.history.get("time") or []
    rows = [("member", name), ("data", source), ("n x d", size), ("method", method),
            ("success", res.success), ("message", res.message), ("iterations", res.nit),
            ("loss", f"{res.fun:.6e}"), ("relative gradient norm", f"{res.rel_grad_norm:.2e}"),
            ("time", f"{times[-1]:.3f} s" if times else "-"), *extra]
    print(table(rows, ("field", "value")))
    outputs: list[tuple[Path, Callable[[Path], object]]] = []
    if out_json is not None:
        payload = jsonable({**res, "member": name, "data": source})
        text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
        outputs.append((out_json, lambda tmp: tmp.write_text(text, encoding="utf-8")))
    if plot is not None and res.history.get("grad_norm"):
        from .plots import convergence_plot

        outputs.append((plot, lambda tmp: convergence_plot({method: res.history}, tmp, title=f"{name}: {source}")))
    elif plot is not None:
        _say(f"softsym solve: no plot written to {plot}: the run has no iterations to plot")
    _write_atomically(outputs)
    if not res.success:
        _say(f"softsym solve: not converged (status {res.status}): {res.message}")
    return 0 if res.success else 1


if __name__ == "__main__":
    sys.exit(main())
