"""The contract fuzz suite's bookkeeping: inputs drawn per category, printed after the run."""

from __future__ import annotations

from collections import Counter

import pytest

#: category -> number of inputs drawn (every hypothesis example and every fixed case counts once)
DRAWN: Counter[str] = Counter()


def drawn(category: str) -> None:
    """Count one input of ``category``."""
    DRAWN[category] += 1


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter) -> None:
    if not DRAWN:
        return
    terminalreporter.section("error-contract fuzz: inputs drawn per category")
    for category, n in sorted(DRAWN.items()):
        terminalreporter.write_line(f"{category:<36} {n:6d}")
    terminalreporter.write_line(f"{'total':<36} {sum(DRAWN.values()):6d}")
