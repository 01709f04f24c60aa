"""The Dask backend: normalized-family objectives on row-chunked Dask arrays (see :mod:`.objective`)."""

from .objective import DaskObjective, DaskRows
from .storage import DiskInstance, open_npy_chunks, save_npy_chunks, synthetic_on_disk

__all__ = ["DaskObjective", "DaskRows", "DiskInstance", "open_npy_chunks", "save_npy_chunks", "synthetic_on_disk"]
