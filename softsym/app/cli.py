"""The ``softsym`` command line.

Exit codes: 0 success; 1 a verification, proof or solve failed; 2 bad input (unknown
member, unreadable or malformed data, bad arguments) — in that case nothing is written.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ValidationError
from .report import table


class InputError(Exception):
    """Bad command-line input: reported on stderr with exit code 2."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (InputError, ValidationError) as exc:
        print(f"softsym {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # `softsym ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softsym", description="derived, proven and fast softmax objectives")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="reproduce each paper's claim: verify, solve, tables, plots, report")
    p.add_argument("--out", type=Path, default=Path("softsym-report"), help="report folder (default ./softsym-report)")
    p.set_defaults(func=_demo)

    p = sub.add_parser("catalogue", help="list the catalogue members")
    p.set_defaults(func=_catalogue)

    p = sub.add_parser("verify", help="run the verification ladder (exact proof, finite differences)")
    p.add_argument("members", nargs="*", metavar="MEMBER", help="members to verify (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_verify)

    p = sub.add_parser("solve", help="solve a member on your data (.npz with A, b[, w, x0]) or a synthetic instance")
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
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic instance and of randomized methods")
    p.add_argument("--tol", type=float, default=None, help="relative gradient tolerance (default 1e-10; attention 1e-8)")
    p.add_argument("--maxiter", type=int, default=None)
    p.add_argument("--plot", type=Path, metavar="OUT.png", help="write a convergence plot")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="write the result as JSON")
    p.set_defaults(func=_solve)

    p = sub.add_parser("bounds", help="derived convexity/smoothness/Lipschitz/perturbation bounds of a member")
    p.add_argument("member", metavar="MEMBER")
    p.add_argument("--R", type=float, nargs="+", default=[1.0, 2.0, 4.0],
                   help="shorthand for --R-A with --R-x equal to it: ||A|| <= R, ||x|| <= R")
    p.add_argument("--R-A", dest="R_A", type=float, nargs="+", metavar="R_A",
                   help="radii for A: ||A||_2 <= R_A (one row each; replaces --R)")
    p.add_argument("--R-x", dest="R_x", type=float, metavar="R_x",
                   help="radius for x: ||x||_2 <= R_x (default: equal to R_A in each row)")
    p.add_argument("--n", type=int, nargs="+", default=[1000], help="number of rows")
    p.add_argument("--b-norm", type=float, default=1.0, help="||b||_2 bound (region ball)")
    p.add_argument("--w-max", type=float, default=0.0, help="largest regularizer weight")
    p.add_argument("--region", choices=("ball", "simplex"), default="ball", help="b in the ball or on the simplex")
    p.add_argument("--certify", action="store_true",
                   help="also search adversarially for violations (n from --n, small sizes recommended)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--restarts", type=int, default=4)
    p.set_defaults(func=_bounds)

    p = sub.add_parser("formulas", help="print a member's derived formulas")
    p.add_argument("member", metavar="MEMBER")
    p.add_argument("--latex", action="store_true", help="only the LaTeX equations")
    p.set_defaults(func=_formulas)

    p = sub.add_parser("generate", help="derive, prove and emit kernels for your own spec file")
    p.add_argument("spec", type=Path, metavar="SPEC.py")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if DIR is stale")
    p.set_defaults(func=_generate)
    return parser


def _option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> (key, value): VALUE as JSON (numbers, true/false, null) when it parses, else text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a Python name, got {text!r}")
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

    return run_verify(args.members, seed=args.seed)


def _bounds(args) -> int:
    from ..registry import member
    from ..theory.bounds import QUANTITIES, bounds
    from ..theory.certify import certify

    info = member(args.member, family="normalized")
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
    cert = certify(info.name, R=tuple(R_As), n=tuple(args.n), b_norm=args.b_norm, region=args.region,
                   seed=args.seed, restarts=args.restarts, R_x=args.R_x)
    print()
    print(cert.table())
    if cert.violations:
        print(f"{len(cert.violations)} bound(s) VIOLATED")
        return 1
    print("no violation found")
    return 0


def _generate(args) -> int:
    from ..derive.__main__ import main as derive_main

    argv = ["--spec", str(args.spec), "--out", str(args.out)] + (["--check"] if args.check else [])
    return derive_main(argv)


def _formulas(args) -> int:
    from ..registry import member

    info = member(args.member)
    if info.package != "softsym.kernels":
        raise InputError(f"{args.member} is a user member; its page is in its kernel directory")
    from importlib import resources

    page = resources.files("softsym.kernels").joinpath(f"{info.name}.md").read_text("utf-8")
    if not args.latex:
        print(page, end="")
        return 0
    import re

    for line in page.splitlines():
        if line.startswith("$$"):
            print(line.strip("$").strip())
        elif line.startswith("| $"):
            cells = re.findall(r"\$([^$]+)\$", line)
            if len(cells) == 2:
                print(f"{cells[0]} = {cells[1]}")
    return 0


def _output_path(path: Path | None, suffix: str) -> Path | None:
    if path is None:
        return None
    if path.suffix.lower() != suffix:
        raise InputError(f"{path} must end in {suffix}")
    if not path.parent.resolve().is_dir():
        raise InputError(f"folder {path.parent} does not exist")
    return path


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


def _synthetic_size(text: str) -> tuple[int, int]:
    try:
        n, d = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--synthetic takes N,D (two integers), got {text!r}") from None
    return n, d


def _normalized_problem(info, args, options: dict):
    """(problem, x0, source, planted rows) for a normalized member from ``--data`` or ``--synthetic``."""
    from ..problems.normalized import Objective, synthetic

    if args.data is not None:
        arrays = _load_npz(args.data, ("A", "b"))
        obj = Objective(info.name, arrays["A"], arrays["b"], arrays.get("w"))
        return obj, arrays.get("x0"), str(args.data), f"{obj.n} x {obj.d}", lambda res: []
    n, d = _synthetic_size(args.synthetic)
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
    n, d = _synthetic_size(args.synthetic)
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
    plot, out_json = _output_path(args.plot, ".png"), _output_path(args.json, ".json")
    options = dict(args.option)
    problem, x0, source, size, planted_rows = _PROBLEMS[info.family](info, args, options)
    if "seed" in inspect.signature(solver).parameters:
        options.setdefault("seed", args.seed)
    res = minimize(problem, x0, method=method, tol=args.tol, maxiter=args.maxiter, **options)
    return _report(res, info.name, source, size, method, planted_rows(res), plot, out_json)


def _report(res, name: str, source: str, size: str, method: str, extra: list, plot, out_json) -> int:
    """Print the result table, write the JSON and the plot if asked; exit code 0 iff converged."""
    rows = [("member", name), ("data", source), ("n x d", size), ("method", method),
            ("success", res.success), ("message", res.message), ("iterations", res.nit),
            ("loss", f"{res.fun:.6e}"), ("relative gradient norm", f"{res.rel_grad_norm:.2e}"),
            ("time", f"{res.history['time'][-1]:.3f} s"), *extra]
    print(table(rows, ("field", "value")))
    if out_json is not None:
        payload = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in res.items()}
        payload.update(member=name, data=source)
        out_json.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    if plot is not None:
        from .plots import convergence_plot

        convergence_plot({method: res.history}, plot, title=f"{name}: {source}")
    return 0 if res.success else 1


if __name__ == "__main__":
    sys.exit(main())
