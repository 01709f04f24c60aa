"""``python -m softsym.derive [--check] [--out DIR] [--spec FILE ...]``: regenerate kernels or check they are in sync.

Without ``--spec`` the built-in catalogue is generated into ``generated/``; with it, the
specs of the given files (``--out`` is then required).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .catalogue import CATALOGUE
from .pipeline import DEFAULT_OUT, build, check_out_dir, is_builtin_out, stale_files, write
from .proof import ProofError
from .spec import SpecError
from .userspec import load_spec_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m softsym.derive", description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="derive and prove everything, write nothing; exit 1 naming each stale file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--spec", type=Path, action="append", default=[],
                        help="generate the specs of this Python file instead of the catalogue (repeatable)")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.spec and is_builtin_out(args.out):
        print(f"error: --spec needs --out DIR outside the built-in {DEFAULT_OUT} (it holds the built-in "
              "catalogue only)", file=sys.stderr)
        return 2
    args.out = args.out.resolve()
    if not args.check:
        try:
            check_out_dir(args.out)  # before the (slow) derivation
        except SpecError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    def progress(name: str) -> None:
        if not args.quiet:
            print(f"  derive + prove {name}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    try:
        specs = [s for path in args.spec for s in load_spec_file(path)] if args.spec else CATALOGUE
        files = build(specs, progress)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ProofError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.check:
        stale = stale_files(files, args.out)
        if stale:
            print(f"stale generated files in {args.out} (run `make generate`):", file=sys.stderr)
            for name in stale:
                print(f"  {name}", file=sys.stderr)
            return 1
        print(f"generated code in sync: {len(files)} files, {time.perf_counter() - t0:.1f} s")
        return 0
    changed = write(files, args.out)
    print(f"wrote {len(changed)} of {len(files)} files into {args.out} ({time.perf_counter() - t0:.1f} s)")
    for name in changed:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
