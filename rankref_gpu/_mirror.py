"""Give a rankref_gpu function the docstring of its rankref twin, with a note on where it runs."""

_NOTE = (
    "\n\n    .. note:: rankref_gpu mirror of :func:`rankref.{name}`: same signature, defaults, "
    "return type and errors.\n"
    "       It runs on the library and device of its array inputs: NumPy arrays on the CPU, "
    "CuPy arrays on\n"
    "       their GPU, torch tensors on their device (CPU or CUDA), with array primitives only; "
    "array results\n"
    "       come back in that library, on that device (see :mod:`rankref_gpu`).{extra}\n"
)


def mirror(original, extra=""):
    """Decorator: the docstring of ``original`` plus the rankref_gpu note (and ``extra``)."""
    def wrap(func):
        more = f"\n       {extra}" if extra else ""
        func.__doc__ = (original.__doc__ or "") + _NOTE.format(name=original.__name__,
                                                               extra=more)
        return func
    return wrap

LOSS_VALUES = ("Loss values are Python floats for NumPy inputs and 0-d float64 arrays on the "
               "device otherwise (``float()`` copies one).")
