"""A dependency-free progress bar for the CLI (stderr; a bar on terminals, plain lines otherwise)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], label: str, total: int | None = None, stream=None,
             describe=str) -> Iterator[T]:
    """Yield ``items`` while showing ``label [####....] k/total item`` on ``stream`` (stderr).

    ``describe(item)`` gives the text shown for an item.
    """
    stream = stream or sys.stderr
    items = list(items)
    total = total or len(items)
    tty = hasattr(stream, "isatty") and stream.isatty()
    t0 = time.perf_counter()
    for k, item in enumerate(items):
        what = describe(item)[:40]
        if tty:
            filled = int(30 * k / max(total, 1))
            stream.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {k}/{total} {what:<40}")
        else:
            stream.write(f"{label} {k + 1}/{total}: {what}\n")
        stream.flush()
        yield item
    if tty:
        stream.write(f"\r{label} [{'#' * 30}] {total}/{total} done in {time.perf_counter() - t0:.1f} s{' ' * 30}\n")
        stream.flush()
