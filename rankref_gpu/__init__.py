"""rankref_gpu: the rankref API on CuPy arrays (GPU-scale N).

Not implemented yet: this package is importable so that installs and imports are stable, and it
exports nothing until its own issue lands.  Use :mod:`rankref` (NumPy) meanwhile.
"""
__all__ = []
