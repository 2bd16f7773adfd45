"""Loading the audited callable: ``MODULE:CALLABLE`` or ``path/to/file.py:NAME``."""
import contextlib
import difflib
import hashlib
import importlib
import importlib.util
import os
import sys
import types

def _public_callables(obj):
    names = []
    for name in dir(obj):
        if name.startswith("_"):
            continue
        try:
            value = getattr(obj, name)
        except Exception:  # a property that raises: not a callable we can offer
            continue
        if callable(value) and not isinstance(value, types.ModuleType):
            names.append(name)
    return sorted(names)


def _missing_name(owner, owner_name, attr):
    names = _public_callables(owner)
    close = difflib.get_close_matches(attr, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(names) if names else "none"
    return ValueError(f"{owner_name} has no attribute {attr!r}.{hint} Its callables: {listing}.")


@contextlib.contextmanager
def _folder_first(folder):
    """Put ``folder`` first on ``sys.path`` for the duration (unless it is there already)."""
    present = folder in sys.path or (folder == os.getcwd() and "" in sys.path)
    if not present:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if not present and folder in sys.path:
            sys.path.remove(folder)


def _is_path(module_part):
    return (module_part.endswith(".py") or os.sep in module_part
            or (os.altsep is not None and os.altsep in module_part))


def _search_folder(spec):
    """The folder an import of ``spec`` starts from: the file's own, or the current one."""
    module_part = spec.rpartition(":")[0] if isinstance(spec, str) else ""
    if module_part and _is_path(module_part):
        return os.path.dirname(os.path.abspath(module_part))
    return os.getcwd()


def _import_file(path):
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path}")
    name = os.path.splitext(os.path.basename(path))[0]
    known = sys.modules.get(name)
    if known is not None and os.path.abspath(getattr(known, "__file__", "") or "") != path:
        digest = hashlib.sha1(path.encode()).hexdigest()[:8]
        name = f"_crosscheck_{digest}_{name}"  # never shadow another module of that name
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load {path} as a Python module (expected a .py file).")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _folder_first(os.path.dirname(path)):  # as `python file.py`: siblings importable
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module, os.path.basename(path)


def _import_module(module_name):
    cwd = os.getcwd()
    importlib.invalidate_caches()
    try:
        with _folder_first(cwd):  # resolve from the current folder, as `python -m` does
            return importlib.import_module(module_name), f"module {module_name!r}"
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ValueError(
                f"no module named {missing!r} (looked in the current folder {cwd} and on "
                f"sys.path). Run from the folder that holds the package, or name a file: "
                f"path/to/file.py:NAME.") from None
        raise ValueError(f"importing {module_name!r} failed: {exc} (a module it imports is "
                         f"not installed).") from None


def load_callable(spec):
    """The object named by ``spec``: ``"package.module:NAME"`` or ``"path/to/file.py:NAME"``.

    ``MODULE`` is imported with the current folder first on the path, as ``python -m`` does, so
    ``rankref crosscheck mypkg.losses:RankSort`` works next to ``mypkg/``.  A path (ending in
    ``.py`` or containing a path separator) is loaded as a file, its folder first on the path.
    ``NAME`` may be dotted (``RankSort.apply``).  ``sys.path`` is restored afterwards (the
    command keeps the folder on it while the audit runs, for imports made at call time).

    Parameters
    ----------
    spec : str

    Returns
    -------
    object
        The callable (or class) named.

    Raises
    ------
    ValueError
        A malformed spec, a missing file or module (naming where it looked), or a missing name
        (listing the callables the module does have).

    Examples
    --------
    >>> from rankref.crosscheck import load_callable
    >>> load_callable("rankref:rank_sort_loss").__name__
    'rank_sort_loss'
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string MODULE:CALLABLE, got {type(spec).__name__}.")
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected MODULE:CALLABLE (e.g. mypkg.losses:RankSort) or "
                         f"path/to/file.py:NAME, got {spec!r}.")
    if _is_path(module_name):
        module, owner_name = _import_file(module_name)
    else:
        module, owner_name = _import_module(module_name)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise _missing_name(obj, owner_name, part)
        obj = getattr(obj, part)
        owner_name = part
    return obj


