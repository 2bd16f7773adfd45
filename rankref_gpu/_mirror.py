"""Give a rankref_gpu function the docstring of its rankref twin."""

_NOTE = (
    "\n\n    .. note:: rankref_gpu mirror of :func:`rankref.{name}`: same signature, defaults, "
    "return type and errors.\n       It runs on CuPy arrays on the GPU and on NumPy arrays on "
    "the CPU, with array primitives only.\n"
)


def mirror(original):
    def wrap(func):
        func.__doc__ = (original.__doc__ or "") + _NOTE.format(name=original.__name__)
        return func
    return wrap
