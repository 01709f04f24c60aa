"""The ``softsym`` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="softsym", description="derived, proven and fast softmax objectives")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="verify and solve every catalogue member on a synthetic instance")
    p_demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return args.func(args)


def _demo(args) -> int:
    from .demo import run_demo

    return run_demo()


if __name__ == "__main__":
    sys.exit(main())
