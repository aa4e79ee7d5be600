"""Cap the threads of numpy's OpenBLAS at run time (no threadpoolctl dependency).

Why: OpenBLAS threads spin while waiting for work. With the many mid-sized matmuls of a
small transformer, interleaved with single-threaded numpy element-wise code, two BLAS
threads burned ~3x the CPU of one for the same embeddings on a 2-core box, and collapsed
when other processes (or our own stage threads) competed for the cores. One BLAS thread
per caller, with parallelism across texts instead, is both faster and predictable.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def _candidate_libraries() -> list[str]:
    paths: list[str] = []
    maps = Path("/proc/self/maps")
    if maps.exists():
        for line in maps.read_text().splitlines():
            path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
            if "openblas" in path.lower() and path not in paths:
                paths.append(path)
    root = Path(np.__file__).resolve().parent
    for folder in (root.parent / "numpy.libs", root / ".dylibs"):
        if folder.is_dir():
            paths += [str(p) for p in sorted(folder.glob("*openblas*")) if str(p) not in paths]
    return paths


def limit_blas_threads(n: int = 1) -> bool:
    """Set numpy's OpenBLAS to ``n`` threads, process-wide; False if no OpenBLAS was found
    (another BLAS, e.g. Accelerate or MKL: then ``OPENBLAS_NUM_THREADS``-style env vars
    of that library apply)."""
    np.dot(np.ones((2, 2)), np.ones((2, 2)))  # make sure the library is loaded
    for path in _candidate_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter.argtypes = [ctypes.c_int]
                setter.restype = None
                setter(int(n))
                log.debug("OpenBLAS threads set to %d via %s in %s", n, name, path)
                return True
    log.info("no OpenBLAS found to limit; BLAS threading left as configured")
    return False
