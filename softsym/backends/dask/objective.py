"""Objectives on Dask arrays: data chunked by rows, beyond one machine's memory.

``softsym.objective(name, A, b, w)`` returns a :class:`DaskObjective` when ``A`` is a
``dask.array.Array`` (chunked by rows; ``b`` and ``w`` may be NumPy or Dask arrays).  It has
the interface of :class:`softsym.problems.normalized.NormalizedObjective` (the objective protocol of
:mod:`softsym.problems.base`), so every solver runs on it unchanged::

    from distributed import Client
    import softsym
    from softsym.backends.dask import open_npy_chunks
    client = Client("tcp://scheduler:8786")           # or Client(LocalCluster(...))
    A = open_npy_chunks("/shared/A")      # or da.from_zarr(...), da.from_array(...)
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

import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np
import scipy.sparse
from dask import delayed

from ..._validate import as_array
from ...errors import ValidationError
from ...numerics.serial import serialized
from ...problems.base import MemoObjective
from ...problems.normalized import Pieces
from ...registry import kernels, member

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


class DaskObjective(MemoObjective):
    """A normalized-family objective ``L(x)`` on Dask arrays ``A`` (n, d), ``b``, ``w`` (n,).

    Same interface as :class:`softsym.problems.normalized.NormalizedObjective`: ``fun, jac, hess, hessp,
    fun_and_jac, pieces``, attributes ``A, b, w, n, d, name`` and counters ``nfev, njev,
    nhev``; results are memoized at the last ``x``.  ``A`` is rechunked to one chunk of
    columns and never loaded whole; ``b`` and ``w`` are persisted on the cluster.  The
    current Dask scheduler runs the work (a ``distributed.Client`` when one is active).

    ``check_finite`` costs one pass over ``A`` at construction.  ``fuse_hess`` (default: on
    after the first Hessian request) makes gradients at new points fetch the Hessian parts
    in the same pass over ``A``.  Raises ``ValidationError`` for bad input and
    ``OverflowDetected`` instead of returning non-finite values.
    """

    family = "normalized"

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
        self._grad_unit: float | None = None

    def __repr__(self) -> str:
        return f"DaskObjective({self.name!r}, n={self.n}, d={self.d}, chunks={self.nchunks})"

    @property
    def grad_unit(self) -> float:
        """``max_i ||A_i||`` as in :attr:`NormalizedObjective.grad_unit` (one pass over ``A`` on
        first use, then kept)."""
        if self._grad_unit is None:
            self._grad_unit = float(da.sqrt(da.max(da.sum(self.A * self.A, axis=1))).compute())
        return self._grad_unit

    # -- evaluation at x ------------------------------------------------------------------
    def _new_point(self, x: np.ndarray) -> dict[str, Any]:
        u = self.A.map_blocks(_b_u, x, drop_axis=1, dtype=np.float64, meta=np.empty((0,)))
        return {"u": u.persist()}

    def _overflow_hint(self, what: str) -> str:
        hint = "" if self.info.shift_invariant else (
            "; this member is not shift invariant, so exp/cosh/sinh overflow once |Ax| exceeds ~709:"
            " rescale A or start closer to 0")
        return f"{self.name}: non-finite {what} at this x (chunked evaluation){hint}"

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

    @serialized
    def u(self, x) -> np.ndarray:
        """u = A x as a NumPy array (gathers ``n`` floats from the workers)."""
        return np.asarray(self._at(x)["u"], dtype=np.float64)

    @serialized
    def fun(self, x) -> float:
        """L(x)."""
        c = self._at(x)
        if "loss" not in c:
            self._compute(c)
            self.nfev += 1
        return c["loss"]

    @serialized
    def jac(self, x) -> np.ndarray:
        """grad L(x) = sum_c A_c^T g_c (a new array)."""
        c = self._at(x)
        if "jac" not in c:
            if self._fuse:
                self._hess_parts(c)
            else:
                jac = self._compute(c, self._reduce(c, _b_grad, "ij", {}))[0]
                self._check("gradient", jac)
                c["jac"] = jac
            self.njev += 1
        return c["jac"].copy()

    def _count_hess(self, c: dict[str, Any]) -> None:
        if not c.get("hess_counted"):
            c["hess_counted"] = True
            self.nhev += 1

    @serialized
    def hess(self, x) -> np.ndarray:
        """hess L(x), a new symmetric (d, d) array: chunk Gram sums plus the local rank-2 part."""
        c = self._at(x)
        if "hess" not in c:
            self._hess_parts(c)
            c["hess"] = self._k.hess_combine(c["H0"], c["ap"], c["aq"], c["T"])
            self._count_hess(c)
            if self._fuse is None:
                self._fuse = True
        return c["hess"].copy()

    @serialized
    def hessp(self, x, p) -> np.ndarray:
        """hess L(x) @ p: one pass over A (locally from the Hessian parts when they are known)."""
        c = self._at(x)
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

    @serialized
    def pieces(self, x) -> Pieces:
        """The structured derivatives in u-space; ``u, g, beta, p, q`` are Dask vectors persisted on the
        workers (``np.asarray`` gathers one)."""
        c = self._at(x)
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


class DaskRows:
    """Row access to a row-chunked Dask ``A`` for sketching solvers (``softsym.numerics.sketch.RowAccess``).

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
