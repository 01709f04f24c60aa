"""Out-of-core data for the Dask backend: row chunks stored as ``.npy`` files plus ``chunks.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask import delayed

from ..._validate import count, positive
from ..._validate import seed as check_seed
from ...errors import ValidationError
from ...registry import kernels, member
from .objective import DaskObjective

_META = "chunks.json"


def _t_save(block, path: str) -> int:
    np.save(path, np.ascontiguousarray(block, dtype=np.float64), allow_pickle=False)
    return int(block.shape[0])


def _load_block(directory: str, rows: tuple[int, ...], d: int, block_id=None) -> np.ndarray:
    """Chunk ``block_id[0]``, checked again at read time against the shape chunks.json promises
    (a file replaced after :func:`open_npy_chunks` must not be read out of bounds or short)."""
    i = block_id[0]
    path = _chunk_path(Path(directory), i)
    block = np.load(path, mmap_mode="r", allow_pickle=False)
    if block.shape != (rows[i], d) or block.dtype != np.float64:
        raise ValidationError(f"chunk file {path} holds {block.dtype} {block.shape}; {_META} promises "
                              f"float64 {(rows[i], d)}")
    return block


def _read_meta(directory: Path) -> tuple[tuple[int, ...], int]:
    """(rows per chunk, d) from ``directory/chunks.json``, every field checked."""
    path = directory / _META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"{directory} holds no {_META}; write it with save_npy_chunks") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"{path} is not readable JSON ({type(exc).__name__}: {exc})") from None
    rows, d = (meta.get("rows"), meta.get("d")) if isinstance(meta, dict) else (None, None)

    def is_count(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    if not (isinstance(rows, list) and rows and all(is_count(r) for r in rows) and is_count(d)):
        raise ValidationError(f"{path} is malformed: expected {{\"rows\": [positive ints], \"d\": positive int, ...}}")
    if meta.get("dtype", "float64") != "float64":
        raise ValidationError(f"{path}: dtype {meta.get('dtype')!r} is not supported (float64 chunks only)")
    return tuple(rows), d


def _check_chunk_file(path: Path, shape: tuple[int, int]) -> None:
    """The .npy file ``path`` holds a float64 array of ``shape`` (only its header is read)."""
    try:
        block = np.load(path, mmap_mode="r", allow_pickle=False)  # maps the file: reads the header only
    except FileNotFoundError:
        raise ValidationError(f"chunk file {path} is missing") from None
    except (OSError, ValueError, EOFError) as exc:
        raise ValidationError(f"chunk file {path} is not a readable .npy file ({exc})") from None
    if not isinstance(block, np.ndarray) or block.shape != shape or block.dtype != np.float64:
        what = f"{block.dtype} {block.shape}" if isinstance(block, np.ndarray) else type(block).__name__
        raise ValidationError(f"chunk file {path} holds {what}; {_META} promises float64 {shape}")
    del block


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
    rows, d = _read_meta(directory)
    for i, r in enumerate(rows):  # headers only: a wrong chunk is refused here, not read out of bounds later
        _check_chunk_file(_chunk_path(directory, i), (r, d))
    meta = {"rows": rows, "d": d}
    return da.map_blocks(_load_block, str(directory), rows, d, chunks=(rows, (d,)), dtype=np.float64,
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
    """A planted instance (as :func:`softsym.problems.normalized.synthetic`) with ``A`` written chunk by chunk.

    Chunk ``i`` of ``A`` holds i.i.d. N(0, 1) entries from ``default_rng([seed, i])``, generated
    and written on the workers, so ``A`` never exists whole in any process.  ``b`` is the
    planted target at ``u = A x_star`` (one pass over the files).  Same arguments, same bits.
    """
    n, d, chunk_rows = count("n", n, 1), count("d", d, 1), count("chunk_rows", chunk_rows, 1)
    seed = check_seed("seed", seed, allow_generator=False)
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
