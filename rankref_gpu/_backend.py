"""Array-module dispatch: CuPy arrays stay on the GPU, everything else is NumPy."""
import numpy as np

# Largest number of elements a dense or ragged temporary may hold (chunks keep memory bounded).
CHUNK = 1 << 24


def array_module(*arrays):
    """``cupy`` if any argument is a CuPy array, else ``numpy``."""
    for a in arrays:
        if type(a).__module__.split(".")[0] == "cupy":
            import cupy

            return cupy
    return np


def to_host(a):
    """A NumPy copy of a NumPy or CuPy array (or scalar)."""
    if type(a).__module__.split(".")[0] == "cupy":
        return a.get()
    return np.asarray(a)


def chunks(total_rows, cols, budget=CHUNK):
    """Row ranges ``(i0, i1)`` such that ``(i1 - i0) * cols <= budget`` (at least one row)."""
    step = max(1, budget // max(int(cols), 1))
    for i0 in range(0, int(total_rows), step):
        yield i0, min(int(total_rows), i0 + step)

