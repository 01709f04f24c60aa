"""Plain-text/Markdown tables for the CLI, the demo and the benchmarks; the demo's section results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """A table that reads well in a terminal and is valid Markdown."""
    cells = [tuple(str(c) for c in r) for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    fmt = "| " + " | ".join(f"{{:{w}}}" for w in widths) + " |"
    lines = [fmt.format(*headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [fmt.format(*r) for r in cells]
    return "\n".join(lines)


#: the three verdicts a paper section of the demo can reach
OUTCOMES = ("reproduced", "partly reproduced", "not reproduced here")


@dataclass(frozen=True)
class Verdict:
    """Whether a paper's claim reproduced in the demo, and the numbers that say so."""

    outcome: str
    evidence: str

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")

    def line(self) -> str:
        """The closing line of a paper section: ``**Verdict: <outcome>.** <evidence>``."""
        return f"**Verdict: {self.outcome}.** {self.evidence}"


@dataclass(frozen=True)
class SectionResult:
    """What a demo section returns: its Markdown body, its verdict (paper sections) and whether
    every check it ran passed (a failed check makes ``softsym demo`` exit 1)."""

    markdown: str
    verdict: Verdict | None = None
    passed: bool = True
