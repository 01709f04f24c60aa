"""PNG plots (matplotlib, Agg backend; the ``plot`` extra)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'softsym[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, out: Path, name: str) -> str:
    """Lay out ``fig``, write it to ``out / name`` (80 dpi, the docs' figure size) and close it; returns ``name``."""
    fig.tight_layout()
    fig.savefig(out / name, dpi=80)
    _pyplot().close(fig)
    return name


def convergence_plot(histories: Mapping[str, Mapping[str, list[float]]], path: str | Path, title: str = "",
                     key: str = "grad_norm", ylabel: str = "||grad L(x_t)|| / ||grad L(x_0)||") -> Path:
    """Relative ``key`` against iteration and against time, one line per method; returns the path."""
    plt = _pyplot()
    fig, (ax_it, ax_t) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for label, h in histories.items():
        vals = [max(v / h[key][0], 1e-300) if h[key][0] else 0.0 for v in h[key]]
        ax_it.semilogy(range(len(vals)), vals, marker=".", label=label)
        ax_t.semilogy(h["time"], vals, marker=".", label=label)
    ax_it.set_xlabel("iteration")
    ax_t.set_xlabel("time [s]")
    for ax in (ax_it, ax_t):
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
