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
fixed-order tree of sums, so results are reproducible bit for bit:

1. ``u_c = A_c x`` per chunk, kept on the workers (``n`` floats) for all work at this ``x``,
   with the chunk's local shift ``m_c`` and ``sum phi(u - m_c)``; these combine with the
   derived rescale factor into the global ``(m, alpha)`` (max-shifted sums: no overflow);
2. per chunk ``(L_c, S_c, T_c)``, summed;
3. one pass over ``A`` per derivative: ``A_c^T g_c`` (gradient), ``A_c^T diag(beta_c) A_c``
   with ``A_c^T p_c, A_c^T q_c`` (Hessian; the rank-2 part and symmetrisation run locally
   in ``hess_combine``), ``A_c^T diag(beta_c) A_c v`` (Hessian-vector product).

Once a Hessian has been requested, a later gradient at a new ``x`` fetches the Hessian
parts in the same pass over ``A`` (Newton needs both at every iterate), so Newton reads
``A`` about twice per iteration.  Workers need softsym installed; ``A``'s chunks are loaded
(from disk, for out-of-core data) on the workers and never gathered.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import scipy.sparse
from dask import delayed

from ._validate import as_array, count, positive
from .errors import OverflowDetected, ValidationError
from .objective import Pieces, kernels, member

__all__ = ["DaskObjective", "DaskRows", "DiskInstance", "open_npy_chunks", "save_npy_chunks", "synthetic_on_disk",
           "demo_section"]


# ----------------------------------------------------------------------------------------
# Block functions (module level, so worker processes unpickle them by reference).  They run
# through da.blockwise, so the task that loads a chunk of A (from_array, zarr, npy chunks)
# is fused into the task that uses it: no chunk of A is ever held, spilled or sent alone.

def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _b_u(a, x):
    return _f64(a) @ x


def _b_alpha(u, name):
    return np.array(kernels(name).alpha_partial(u))


def _combine_alpha(name, parts):
    parts = parts.reshape(-1, 2)
    return np.array(kernels(name).alpha_combine(np.ascontiguousarray(parts[:, 0]), np.ascontiguousarray(parts[:, 1])))


def _b_sums(u, b, w, ma, name):
    return np.array(kernels(name).sums_partial(u, b, w, ma[0], ma[1]))


def _b_apply(a, u, b, w, func, name, *args):
    """``func(a, u, b, w, name, m, alpha, S, *extra)``; args are (m, alpha, S, *extra) or, when the
    globals are computed in the same graph, ((m, alpha), (L, S, T), *extra)."""
    if isinstance(args[0], np.ndarray):
        (m, alpha), (_, S, _), *extra = args
        args = (m, alpha, S, *extra)
    return func(a, u, b, w, name, *args)


def _b_grad(a, u, b, w, name, m, alpha, S):
    return kernels(name).grad_partial(_f64(a), u, b, w, m, alpha, S)[None, :]


def _b_hess(a, u, b, w, name, m, alpha, S):
    ag, H0, ap, aq = kernels(name).hess_partial(_f64(a), u, b, w, m, alpha, S)
    return np.concatenate((H0, ag[:, None], ap[:, None], aq[:, None]), axis=1)[None]


def _b_hessp(a, u, b, w, name, m, alpha, S, v, rank2):
    a = _f64(a)
    out = [kernels(name).hessp_partial(a, u, b, w, m, alpha, S, v)]
    if rank2:
        out += kernels(name).rank2_partial(a, u, b, w, m, alpha, S)
    return np.stack(out)[None]


def _b_pieces(u, b, w, name, m, alpha, S):
    return np.stack(kernels(name).pieces_at(u, b, w, m, alpha, S))


def _b_rmatmat(a, V):
    return (_f64(a).T @ V)[None]


def _b_take(a, idx, offset):
    return _f64(a)[idx - offset]


def _b_countsketch(a, scale, bucket, k):
    S = scipy.sparse.csr_matrix((scale, (bucket, np.arange(bucket.size))), shape=(k, bucket.size))
    return np.asarray(S @ _f64(a))[None]


def _b_sq_row_norms(a, Z):
    P = _f64(a) @ Z
    return np.einsum("ij,ij->i", P, P)


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
        with warnings.catch_warnings():  # NumPy b, w travel to the workers once, inside the graph
            warnings.filterwarnings("ignore", message="Sending large graph")
            self.b = self.b.persist()
            if w is not None:  # zeros stay lazy: each task makes its own chunk
                self.w = self.w.persist()
        self.nchunks = len(rows)
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
            u = self.A.map_blocks(_b_u, self._x, drop_axis=1, dtype=np.float64, meta=np.empty((0,)))
            self._cache = {"u": u.persist()}
        return self._cache

    def _check(self, what: str, *values) -> None:
        for v in values:
            if not np.all(np.isfinite(v)):
                hint = "" if self.info.shift_invariant else (
                    "; this member is not shift invariant, so exp/cosh/sinh overflow once |Ax| exceeds ~709:"
                    " rescale A or start closer to 0")
                raise OverflowDetected(f"{self.name}: non-finite {what} at this x (chunked evaluation){hint}")

    def _lazy_globals(self, c: dict[str, Any]) -> tuple[Any, Any]:
        """Delayed (m, alpha) from max-shifted chunk sums, and (L, S, T) from chunk sums."""
        parts = c["u"].map_blocks(_b_alpha, self.name, chunks=(2,), dtype=np.float64, meta=np.empty((0,)))
        ma = delayed(_combine_alpha, pure=True)(self.name, parts)
        sums = da.blockwise(_b_sums, "i", c["u"], "i", self.b, "i", self.w, "i", ma, None, self.name, None,
                            adjust_chunks={"i": 3}, dtype=np.float64, meta=np.empty((0,)))
        return ma, sums.reshape(-1, 3).sum(axis=0).to_delayed().ravel()[0]

    def _compute(self, c: dict[str, Any], *lazy) -> tuple:
        """Compute ``lazy`` together with the global sums when they are not known yet (one round trip)."""
        if "loss" in c:
            return dask.compute(*lazy)
        (m, alpha), (loss, S, T), *out = dask.compute(*self._lazy_globals(c), *lazy)
        self._check("loss", loss, S, T, alpha)
        c.update(m=float(m), alpha=float(alpha), loss=float(loss), S=float(S), T=float(T))
        return tuple(out)

    def _reduce(self, c: dict[str, Any], func, out: str, new: dict[str, int], *extra) -> da.Array:
        """Lazy sum over row chunks of ``func(A_c, u_c, b_c, w_c, name, m, alpha, S, *extra)``."""
        if "loss" in c:
            consts = [func, self.name, c["m"], c["alpha"], c["S"], *extra]
        else:  # the globals are computed in the same graph
            consts = [func, self.name, *self._lazy_globals(c), *extra]
        parts = da.blockwise(_b_apply, out, self.A, "ij", c["u"], "i", self.b, "i", self.w, "i",
                             *(z for k in consts for z in (k, None)), adjust_chunks={"i": 1}, new_axes=new,
                             dtype=np.float64, meta=np.empty((0,) * len(out)))
        return parts.sum(axis=0)

    def _hess_parts(self, c: dict[str, Any]) -> None:
        if "H0" not in c:
            d = self.d
            parts = self._compute(c, self._reduce(c, _b_hess, "ijk", {"k": d + 3}))[0]
            self._check("Hessian", parts)
            c.update(H0=np.ascontiguousarray(parts[:, :d]), jac=parts[:, d].copy(),
                     ap=parts[:, d + 1].copy(), aq=parts[:, d + 2].copy())

    def fun(self, x) -> float:
        """L(x)."""
        c = self._point(x)
        if "loss" not in c:
            self._compute(c)
            self.nfev += 1
        return c["loss"]

    def jac(self, x) -> np.ndarray:
        """grad L(x) = sum_c A_c^T g_c (a new array)."""
        c = self._point(x)
        if "jac" not in c:
            if self._fuse:
                self._hess_parts(c)
            else:
                jac = self._compute(c, self._reduce(c, _b_grad, "ij", {}))[0]
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
            rank2 = "ap" not in c
            out = self._compute(c, self._reduce(c, _b_hessp, "ikj", {"k": 3 if rank2 else 1}, v, rank2))[0]
            self._check("Hessian-vector product", out)
            hv = out[0]
            if rank2:
                c["ap"], c["aq"] = out[1], out[2]
        self._count_hess(c)
        return self._k.hessp_combine(hv, c["ap"], c["aq"], c["T"], v)

    def pieces(self, x) -> Pieces:
        """The structured derivatives in u-space; ``u, g, beta, p, q`` are Dask vectors persisted on the
        workers (``np.asarray`` gathers one)."""
        c = self._point(x)
        if "loss" not in c:
            self._compute(c)
        if "pieces" not in c:
            P = da.blockwise(_b_pieces, "ki", c["u"], "i", self.b, "i", self.w, "i", self.name, None,
                             c["m"], None, c["alpha"], None, c["S"], None, new_axes={"k": 4},
                             dtype=np.float64, meta=np.empty((0, 0))).persist()
            c["pieces"] = Pieces(u=c["u"], loss=c["loss"], g=P[0], beta=P[1], p=P[2], q=P[3], T=c["T"])
            self._count_hess(c)
        return c["pieces"]

    def row_access(self) -> DaskRows:
        """Row access to ``A`` for sketching solvers (approximate Newton): see :class:`DaskRows`."""
        return DaskRows(self.A)

    __call__ = fun


class DaskRows:
    """Row access to a row-chunked Dask ``A`` for sketching solvers (``softsym.sketch.RowAccess``).

    ``rmatmat(V)`` = ``A^T V`` (V an (n, k) numpy array, shipped chunk by chunk),
    ``take(idx)`` = ``A[idx]`` (sorted indices; only the chunks holding them are read),
    ``countsketch(scale, bucket, k)`` = ``S diag(scale) A`` (``S[bucket[i], i] = 1``) and
    ``sq_row_norms(Z)`` = ``||(A Z)_i||^2``: each one pass over ``A`` with per-chunk partial
    results summed on the cluster; results are numpy arrays.
    """

    def __init__(self, A: da.Array):
        self.A = A
        self.n, self.d = (int(s) for s in A.shape)
        self._rows = A.chunks[0]
        self._starts = np.cumsum((0,) + self._rows)

    def _vector(self, v: np.ndarray, name: str) -> da.Array:
        v = np.ascontiguousarray(v)
        if v.shape[0] != self.n:
            raise ValidationError(f"{name} must have {self.n} rows, got shape {v.shape}")
        return da.from_array(v, chunks=(self._rows,) + v.shape[1:])

    def rmatmat(self, V: np.ndarray) -> np.ndarray:
        V = self._vector(np.asarray(V, dtype=np.float64), "V")
        return da.blockwise(_b_rmatmat, "ijk", self.A, "ij", V, "ik", adjust_chunks={"i": 1},
                            dtype=np.float64, meta=np.empty((0, 0, 0))).sum(axis=0).compute()

    def take(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        cut = np.searchsorted(idx, self._starts)
        parts = [delayed(_b_take, pure=True)(blk, idx[cut[c]:cut[c + 1]], int(self._starts[c]))
                 for c, blk in enumerate(self.A.to_delayed().ravel()) if cut[c + 1] > cut[c]]
        out = dask.compute(*parts)
        return np.concatenate(out) if out else np.empty((0, self.d))

    def countsketch(self, scale: np.ndarray, bucket: np.ndarray, k: int) -> np.ndarray:
        scale = self._vector(np.asarray(scale, dtype=np.float64), "scale")
        bucket = self._vector(np.asarray(bucket, dtype=np.int64), "bucket")
        return da.blockwise(_b_countsketch, "ikj", self.A, "ij", scale, "i", bucket, "i", k, None,
                            adjust_chunks={"i": 1}, new_axes={"k": k}, dtype=np.float64,
                            meta=np.empty((0, 0, 0))).sum(axis=0).compute()

    def sq_row_norms(self, Z: np.ndarray) -> np.ndarray:
        Z = np.ascontiguousarray(Z, dtype=np.float64)
        return self.A.map_blocks(_b_sq_row_norms, Z, drop_axis=1, dtype=np.float64,
                                 meta=np.empty((0,))).compute()


# ----------------------------------------------------------------------------------------
# Chunked .npy storage (out-of-core data): one .npy per row chunk plus chunks.json

_META = "chunks.json"


def _t_save(block, path: str) -> int:
    np.save(path, _f64(block), allow_pickle=False)
    return int(block.shape[0])


def _load_block(directory: str, block_id=None) -> np.ndarray:
    return np.load(_chunk_path(Path(directory), block_id[0]), mmap_mode="r", allow_pickle=False)


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
    rows = tuple(int(r) for r in meta["rows"])
    return da.map_blocks(_load_block, str(directory), chunks=(rows, (int(meta["d"]),)), dtype=np.float64,
                         meta=np.empty((0, 0)), name=f"npy-chunks-{dask.base.tokenize(str(directory.resolve()), meta)}")


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
        """The :class:`DaskObjective`; the finiteness pass over ``A`` is skipped (written finite)."""
        return DaskObjective(self.name, self.A, self.b, self.w, **{"check_finite": False, **options})


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


# ----------------------------------------------------------------------------------------
# Demo hook (softsym demo)

def demo_section(out_dir: Path) -> str:
    """Markdown section for ``softsym demo``: Newton on a row-chunked Dask objective vs in memory.

    A planted softmax instance (n = 20000, d = 8) in 4 row chunks on a 2-worker threaded
    ``LocalCluster``; writes ``dask_newton.png`` into ``out_dir``.
    """
    import logging

    from distributed import Client, LocalCluster

    from ._report import table
    from .datasets import synthetic
    from .plots import convergence_plot
    from .solvers import minimize

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inst = synthetic("softmax", 20_000, 8, seed=0, radius=2.0)
    mem = inst.objective()

    def rel(a, b) -> str:
        return f"{float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b))):.1e}"

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster):
        obj = DaskObjective("softmax", da.from_array(inst.A, chunks=(5000, 8)), inst.b, inst.w)
        x0 = 0.5 * inst.x_star
        v = np.ones(8)
        checks = [("loss", rel(obj.fun(x0), mem.fun(x0))), ("gradient", rel(obj.jac(x0), mem.jac(x0))),
                  ("Hessian-vector product", rel(obj.hessp(x0, v), mem.hessp(x0, v))),
                  ("Hessian", rel(obj.hess(x0), mem.hess(x0)))]
        its: dict[str, list[np.ndarray]] = {"in memory": [], "dask": []}
        r_mem = minimize(mem, method="newton", callback=lambda r: its["in memory"].append(r.x))
        r_dsk = minimize(obj, method="newton", callback=lambda r: its["dask"].append(r.x))
    diff = max(float(np.linalg.norm(a - b) / np.linalg.norm(b)) for a, b in zip(its["dask"], its["in memory"]))
    convergence_plot({"in memory (Objective)": r_mem.history, "Dask, 4 row chunks (DaskObjective)": r_dsk.history},
                     out_dir / "dask_newton.png", title="Newton on softmax regression, n=20000, d=8")
    rows = [(label, r.nit, f"{r.fun:.6e}", f"{r.rel_grad_norm:.1e}", f"{r.history['time'][-1]:.2f}")
            for label, r in (("in memory", r_mem), ("Dask (2 workers, 4 chunks)", r_dsk))]
    return "\n".join([
        "## Data beyond one machine: Dask-backed objectives", "",
        "`softsym.objective(name, A, b, w)` with a row-chunked Dask `A` evaluates the same generated "
        "kernels per chunk (max-shifted partial sums for alpha, then S and T, then A_c^T g_c and "
        "A_c^T diag(beta_c) A_c) and reduces them on the cluster; the d x d work is local.", "",
        "Agreement with the in-memory objective at x0 = x*/2 (max relative difference):", "",
        table(checks, ("quantity", "relative difference")), "",
        table(rows, ("Newton", "iterations", "final loss", "rel. grad", "time [s]")), "",
        f"Largest relative difference between the two Newton iterate sequences: {diff:.1e}.", "",
        "![Newton in memory vs on Dask](dask_newton.png)", ""])
