"""Objectives on Dask arrays: data chunked by rows, beyond one machine's memory.

``softsym.objective(name, A, b, w)`` returns a :class:`DaskObjective` when ``A`` is a
``dask.array.Array`` (chunked by rows; ``b`` and ``w`` may be NumPy or Dask arrays).  It has
the interface of :class:`softsym.objective.Objective`, so every solver runs on it unchanged::

    from distributed import Client
    import softsym, softsym.dask
    client = Client("tcp://scheduler:8786")           # or Client(LocalCluster(...))
    A = softsym.dask.open_npy_chunks("/shared/A")      # or da.from_zarr(...), da.from_array(...)
    obj = softsym.objective("softmax", A, b)           # a DaskObjective
    res = softsym.minimize(obj, method="newton")

Every evaluation is a graph of the member's generated per-chunk partial kernels
(``softsym.kernels.<member>``: ``alpha_partial``, ``alpha_combine``, ``sums_partial``,
``grad_partial``, ``hess_partial``, ``rank2_partial``, ``hessp_partial``) joined by a
fixed-order pairwise tree of sums, so results are reproducible bit for bit:

1. ``u_c = A_c x`` per chunk, kept on the workers (``n`` floats) for all work at this ``x``;
2. per chunk the local shift and ``sum phi(u - m_c)``, combined with the derived rescale
   factor into the global ``(m, alpha)`` (max-shifted sums: no overflow, as in memory);
3. per chunk ``(L_c, S_c, T_c)``, summed;
4. one pass over ``A`` per derivative: ``A_c^T g_c`` (gradient), ``A_c^T diag(beta_c) A_c``
   with ``A_c^T p_c, A_c^T q_c`` (Hessian; the rank-2 part and symmetrisation run locally
   in ``hess_combine``), ``A_c^T diag(beta_c) A_c v`` (Hessian-vector product).

Once a Hessian has been requested, a later gradient at a new ``x`` fetches the Hessian
parts in the same pass over ``A`` (Newton needs both at every iterate), so Newton reads
``A`` about twice per iteration.  Workers need softsym installed; ``A``'s chunks are loaded
(from disk, for out-of-core data) on the workers and never gathered.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask import delayed

from ._validate import as_array, count, positive
from .errors import OverflowDetected, ValidationError
from .objective import Pieces, kernels, member

__all__ = ["DaskObjective", "DiskInstance", "open_npy_chunks", "save_npy_chunks", "synthetic_on_disk",
           "demo_section"]


# ----------------------------------------------------------------------------------------
# Tasks (module level, so worker processes unpickle them by reference)

def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _t_matvec(a, x):
    return _f64(a) @ x


def _t_alpha(name, u):
    return kernels(name).alpha_partial(u)


def _t_alpha_combine(name, parts):
    ms = np.array([p[0] for p in parts], dtype=np.float64)
    alphas = np.array([p[1] for p in parts], dtype=np.float64)
    return kernels(name).alpha_combine(ms, alphas)


def _t_sums(name, u, b, w, ma):
    return kernels(name).sums_partial(u, b, w, ma[0], ma[1])


def _t_grad(name, a, u, b, w, m, alpha, S):
    return kernels(name).grad_partial(_f64(a), u, b, w, m, alpha, S)


def _t_hess(name, a, u, b, w, m, alpha, S):
    return kernels(name).hess_partial(_f64(a), u, b, w, m, alpha, S)


def _t_rank2(name, a, u, b, w, m, alpha, S):
    return kernels(name).rank2_partial(_f64(a), u, b, w, m, alpha, S)


def _t_hessp(name, a, u, b, w, m, alpha, S, v):
    return kernels(name).hessp_partial(_f64(a), u, b, w, m, alpha, S, v)


def _t_pieces(name, u, b, w, m, alpha, S):
    return kernels(name).pieces_at(u, b, w, m, alpha, S)


def _add(x, y):
    if isinstance(x, tuple):
        return tuple(map(operator.add, x, y))
    return x + y


def _tree_sum(items: list) -> Any:
    """Delayed sum of ``items`` by a fixed pairwise tree (same order, same bits, every run)."""
    items = list(items)
    while len(items) > 1:
        items = [delayed(_add, pure=True)(items[i], items[i + 1]) if i + 1 < len(items) else items[i]
                 for i in range(0, len(items), 2)]
    return items[0]


# ----------------------------------------------------------------------------------------
# The objective

def _dask_vector(name: str, value, n: int, row_chunks: tuple[int, ...]) -> da.Array:
    """``value`` (NumPy or Dask, length n) as a float64 Dask vector chunked like A's rows."""
    if isinstance(value, da.Array):
        if value.dtype.kind not in "iuf":
            raise ValidationError(f"{name} must hold real numbers (float or int), got dtype {value.dtype}")
        if value.shape != (n,):
            raise ValidationError(f"{name} must have shape ({n},), got {value.shape}")
        return value.astype(np.float64).rechunk((row_chunks,))
    return da.from_array(as_array(name, value, 1, (n,)), chunks=(row_chunks,))


class DaskObjective:
    """A normalized-family objective ``L(x)`` on Dask arrays ``A`` (n, d), ``b``, ``w`` (n,).

    Same interface as :class:`softsym.objective.Objective`: ``fun, jac, hess, hessp,
    fun_and_jac, pieces``, attributes ``A, b, w, n, d, name`` and counters ``nfev, njev,
    nhev``; results are memoized at the last ``x``.  ``A`` is rechunked to one chunk of
    columns and never loaded whole; ``b`` and ``w`` are persisted on the cluster.  The
    current Dask scheduler runs the work (a ``distributed.Client`` when one is active).

    ``check_finite`` costs one pass over ``A`` at construction.  ``fuse_hess`` (default: on
    after the first Hessian request) makes gradients at new points fetch the Hessian parts
    in the same pass over ``A``.  Raises ``ValidationError`` for bad input and
    ``OverflowDetected`` instead of returning non-finite values.
    """

    def __init__(self, name: str, A, b, w=None, *, check_finite: bool = True, fuse_hess: bool | None = None):
        self.info = member(name, family="normalized")
        self.name = self.info.name
        if not isinstance(A, da.Array):
            raise ValidationError(f"A must be a dask.array.Array for DaskObjective, got {type(A).__name__}")
        if A.dtype.kind not in "iuf":
            raise ValidationError(f"A must hold real numbers (float or int), got dtype {A.dtype}")
        if A.ndim != 2:
            raise ValidationError(f"A must be 2-dimensional, got shape {A.shape}")
        if any(np.isnan(s) for s in A.shape):
            raise ValidationError("A has unknown chunk sizes; call A.compute_chunk_sizes() first")
        if A.size == 0:
            raise ValidationError(f"A is empty (shape {A.shape})")
        self.A = A.astype(np.float64).rechunk({1: -1})
        self.n, self.d = (int(s) for s in self.A.shape)
        rows = self.A.chunks[0]
        self.b = _dask_vector("b", b, self.n, rows)
        self.w = da.zeros(self.n, chunks=(rows,)) if w is None else _dask_vector("w", w, self.n, rows)
        if check_finite:
            ok = dask.compute(*(da.isfinite(v).all() for v in (self.A, self.b, self.w)))
            for what, good in zip("Abw", ok):
                if not good:
                    raise ValidationError(f"{what} has non-finite entries (NaN or inf)")
        self.b = self.b.persist()
        if w is not None:  # zeros stay lazy: each task makes its own chunk
            self.w = self.w.persist()
        self._A_blocks = list(self.A.to_delayed().ravel())
        self._b_blocks = list(self.b.to_delayed().ravel())
        self._w_blocks = list(self.w.to_delayed().ravel())
        self.nchunks = len(self._A_blocks)
        self._k = kernels(self.name)
        self._fuse = fuse_hess
        self.nfev = self.njev = self.nhev = 0
        self._x: np.ndarray | None = None
        self._cache: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"DaskObjective({self.name!r}, n={self.n}, d={self.d}, chunks={self.nchunks})"

    # -- evaluation at x ------------------------------------------------------------------
    def _point(self, x) -> dict[str, Any]:
        x = as_array("x", x, 1, (self.d,))
        if self._x is None or not np.array_equal(x, self._x):
            self._x = x.copy()
            xd = delayed(self._x, pure=True)
            u = [delayed(_t_matvec, pure=True)(a, xd) for a in self._A_blocks]
            self._cache = {"u": list(dask.persist(*u))}
        return self._cache

    def _check(self, what: str, *values) -> None:
        for v in values:
            if not np.all(np.isfinite(v)):
                hint = "" if self.info.shift_invariant else (
                    "; this member is not shift invariant, so exp/cosh/sinh overflow once |Ax| exceeds ~709:"
                    " rescale A or start closer to 0")
                raise OverflowDetected(f"{self.name}: non-finite {what} at this x (chunked evaluation){hint}")

    def _chunks(self, c: dict[str, Any]):
        return zip(self._A_blocks, c["u"], self._b_blocks, self._w_blocks)

    def _globals(self, c: dict[str, Any]) -> None:
        """(m, alpha) by max-shifted chunk sums, then (L, S, T): one round trip on u."""
        if "loss" in c:
            return
        parts = [delayed(_t_alpha, pure=True)(self.name, u) for u in c["u"]]
        ma = delayed(_t_alpha_combine, pure=True)(self.name, parts)
        sums = _tree_sum([delayed(_t_sums, pure=True)(self.name, u, b, w, ma)
                          for _, u, b, w in self._chunks(c)])
        (m, alpha), (loss, S, T) = dask.compute(ma, sums)
        self._check("loss", loss, S, T, alpha)
        c.update(m=float(m), alpha=float(alpha), loss=float(loss), S=float(S), T=float(T))

    def _reduce(self, c: dict[str, Any], task, *extra) -> Any:
        """Tree sum over chunks of ``task(name, A_c, u_c, b_c, w_c, m, alpha, S, *extra)``."""
        self._globals(c)
        g = (c["m"], c["alpha"], c["S"])
        parts = [delayed(task, pure=True)(self.name, a, u, b, w, *g, *extra) for a, u, b, w in self._chunks(c)]
        return _tree_sum(parts)

    def _hess_parts(self, c: dict[str, Any]) -> None:
        if "H0" not in c:
            ag, H0, ap, aq = dask.compute(self._reduce(c, _t_hess))[0]
            self._check("Hessian", ag, H0, ap, aq)
            c.update(jac=ag, H0=H0, ap=ap, aq=aq)

    def fun(self, x) -> float:
        """L(x)."""
        c = self._point(x)
        if "loss" not in c:
            self._globals(c)
            self.nfev += 1
        return c["loss"]

    def jac(self, x) -> np.ndarray:
        """grad L(x) = sum_c A_c^T g_c (a new array)."""
        c = self._point(x)
        if "jac" not in c:
            if self._fuse:
                self._hess_parts(c)
            else:
                jac = dask.compute(self._reduce(c, _t_grad))[0]
                self._check("gradient", jac)
                c["jac"] = jac
            self.njev += 1
        return c["jac"].copy()

    def fun_and_jac(self, x) -> tuple[float, np.ndarray]:
        """(L(x), grad L(x))."""
        g = self.jac(x)
        return self.fun(x), g

    def _count_hess(self, c: dict[str, Any]) -> None:
        if not c.get("hess_counted"):
            c["hess_counted"] = True
            self.nhev += 1

    def hess(self, x) -> np.ndarray:
        """hess L(x), a new symmetric (d, d) array: chunk Gram sums plus the local rank-2 part."""
        c = self._point(x)
        if "hess" not in c:
            self._hess_parts(c)
            c["hess"] = self._k.hess_combine(c["H0"], c["ap"], c["aq"], c["T"])
            self._count_hess(c)
            if self._fuse is None:
                self._fuse = True
        return c["hess"].copy()

    def hessp(self, x, p) -> np.ndarray:
        """hess L(x) @ p: one pass over A (locally from the Hessian parts when they are known)."""
        c = self._point(x)
        v = as_array("p", p, 1, (self.d,))
        if "H0" in c:
            hv = c["H0"] @ v
        else:
            todo = [self._reduce(c, _t_hessp, delayed(v, pure=True))]
            if "ap" not in c:
                todo.append(self._reduce(c, _t_rank2))
            out = dask.compute(*todo)
            hv = out[0]
            if len(out) > 1:
                c["ap"], c["aq"] = out[1]
            self._check("Hessian-vector product", hv, c["ap"], c["aq"])
        self._count_hess(c)
        return self._k.hessp_combine(hv, c["ap"], c["aq"], c["T"], v)

    def pieces(self, x) -> Pieces:
        """The structured derivatives in u-space, with ``u, g, beta, p, q`` as lazy Dask vectors."""
        c = self._point(x)
        self._globals(c)
        if "pieces" not in c:
            rows = self.A.chunks[0]
            cols: list[list[da.Array]] = [[], [], [], []]
            for (_, u, b, w), nc in zip(self._chunks(c), rows):
                t = delayed(_t_pieces, pure=True, nout=4)(self.name, u, b, w, c["m"], c["alpha"], c["S"])
                for j in range(4):
                    cols[j].append(da.from_delayed(t[j], (nc,), dtype=np.float64))
            u = da.concatenate([da.from_delayed(u, (nc,), dtype=np.float64) for u, nc in zip(c["u"], rows)])
            g, beta, p, q = (da.concatenate(col) for col in cols)
            c["pieces"] = Pieces(u=u, loss=c["loss"], g=g, beta=beta, p=p, q=q, T=c["T"])
            self._count_hess(c)
        return c["pieces"]

    __call__ = fun


# ----------------------------------------------------------------------------------------
# Chunked .npy storage (out-of-core data): one .npy per row chunk plus chunks.json

_META = "chunks.json"


def _t_save(block, path: str) -> int:
    np.save(path, _f64(block), allow_pickle=False)
    return int(block.shape[0])


def _t_load(path: str) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def _chunk_path(directory: Path, i: int) -> Path:
    return directory / f"{i:06d}.npy"


def _write_meta(directory: Path, rows: list[int], d: int) -> None:
    meta = {"rows": rows, "d": d, "dtype": "float64", "format": "softsym npy chunks v1"}
    (directory / _META).write_text(json.dumps(meta), encoding="utf-8")


def save_npy_chunks(directory, A) -> Path:
    """Store the rows chunks of Dask array ``A`` as ``directory/000000.npy, ...`` (float64).

    The writes run on the workers, chunk by chunk (the directory must be visible to them).
    Returns the directory; :func:`open_npy_chunks` opens it again.
    """
    if not isinstance(A, da.Array) or A.ndim != 2:
        raise ValidationError("A must be a 2-dimensional dask.array.Array")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    A = A.rechunk({1: -1})
    blocks = A.to_delayed().ravel()
    rows = dask.compute(*(delayed(_t_save)(blk, str(_chunk_path(directory, i))) for i, blk in enumerate(blocks)))
    _write_meta(directory, list(rows), int(A.shape[1]))
    return directory


def open_npy_chunks(directory) -> da.Array:
    """A lazy (n, d) Dask array over the chunk files written by :func:`save_npy_chunks`.

    Each chunk is read from disk by the task that needs it and released after use, so the
    array may be far larger than any worker's memory.
    """
    directory = Path(directory)
    try:
        meta = json.loads((directory / _META).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"{directory} holds no {_META}; write it with save_npy_chunks") from None
    d = int(meta["d"])
    parts = [da.from_delayed(delayed(_t_load, pure=True)(str(_chunk_path(directory, i))), (int(r), d),
                             dtype=np.float64) for i, r in enumerate(meta["rows"])]
    return da.concatenate(parts, axis=0)


@dataclass(frozen=True)
class DiskInstance:
    """A planted instance whose ``A`` lives in chunk files; ``b``, ``w``, ``x_star`` in memory."""

    name: str
    directory: Path
    A: da.Array
    b: np.ndarray
    w: np.ndarray
    x_star: np.ndarray

    def objective(self, **options: Any) -> DaskObjective:
        return DaskObjective(self.name, self.A, self.b, self.w, **options)


def _t_random_block(seed: int, i: int, rows: int, d: int, path: str) -> int:
    np.save(path, np.random.default_rng([seed, i]).standard_normal((rows, d)), allow_pickle=False)
    return rows


def synthetic_on_disk(directory, name: str, n: int, d: int, chunk_rows: int, seed: int = 0,
                      radius: float = 0.5, w: float = 0.0) -> DiskInstance:
    """A planted instance (as :func:`softsym.datasets.synthetic`) with ``A`` written chunk by chunk.

    Chunk ``i`` of ``A`` holds i.i.d. N(0, 1) entries from ``default_rng([seed, i])``, generated
    and written on the workers, so ``A`` never exists whole in any process.  ``b`` is the
    planted target at ``u = A x_star`` (one pass over the files).  Same arguments, same bits.
    """
    n, d, chunk_rows = count("n", n, 1), count("d", d, 1), count("chunk_rows", chunk_rows, 1)
    radius = positive("radius", radius)
    w = positive("w", w, allow_zero=True)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = [min(chunk_rows, n - s) for s in range(0, n, chunk_rows)]
    dask.compute(*(delayed(_t_random_block)(seed, i, r, d, str(_chunk_path(directory, i)))
                   for i, r in enumerate(rows)))
    _write_meta(directory, rows, d)
    x_star = np.random.default_rng(seed).standard_normal(d)
    x_star *= radius / np.linalg.norm(x_star)
    A = open_npy_chunks(directory)
    u = (A @ x_star).compute()
    b = kernels(member(name).name).target_u(u)
    return DiskInstance(name=member(name).name, directory=directory, A=A, b=b, w=np.full(n, w), x_star=x_star)
