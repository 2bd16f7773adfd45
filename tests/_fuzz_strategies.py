"""Hypothesis strategies over wide input spaces for every public function of rankref,
rankref_gpu and rankref.torch.

Each ``cases_<function>`` strategy returns :class:`_fuzz_specs.Case` objects.  Inputs mix a
*valid* part (small problems an exact rational oracle can check: heavy ties, sub-resolution
ties, huge spreads, every delta regime) and a *wild* part (every dtype, 0-d / empty / 3-D
shapes, NaN, +-inf, -0.0, subnormals, +-1e308, huge Python ints, bools, strings, None, lists,
non-contiguous and read-only views).
"""
import importlib.util
import math
from fractions import Fraction

import numpy as np
from hypothesis import strategies as st

from _fuzz_specs import (
    Arr,
    Case,
    Counts,
    DictSpec,
    ModuleSpec,
    NpScalar,
    RegistrySpec,
    Rng,
    SeqSpec,
    Tensor,
    Val,
)

NAN, INF = float("nan"), float("inf")
FMAX = 1.7976931348623157e308

INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
FLOAT_DTYPES = ("float16", "float32", "float64")
ALL_DTYPES = ("bool",) + INT_DTYPES + FLOAT_DTYPES + (
    "longdouble", "complex64", "complex128", "object", "<U3", "S3", "M8[s]", "m8[s]")

LAYOUTS_ND = ("c", "c", "c", "ro", "strided", "rev", "T", "F", "list", "torch", "dlpack",
              "arrayobj")
LAYOUTS_0D = ("c", "ro", "list", "item", "npscalar", "torch", "arrayobj")

DELTA_GOOD = (0.0, 0.5, 1.0, 0.25, 2.0, 5e-324, 1e-300, 1e-10, 1e300, 1.7e308, FMAX, -0.0,
              1e-5, 3.0, 1e17, 2.2250738585072014e-308, 1e-320, 4.9e-300, 1e200)
DELTA_BAD = (-1.0, NAN, INF, -INF, -5e-324, -1e308)


def weird_scalars():
    """Scalars of the wrong kind or out of every range: huge ints, bools, strings, None, lists,
    0-d arrays, complex, NumPy scalars."""
    return st.sampled_from([
        Val(10**400), Val(-(10**400)), Val(2**63), Val(2**64), Val(True), Val(False),
        Val("0.5"), Val("a"), Val(None), Val([0.5]), Val([]), Val(complex(0.5, 0.0)),
        Val(complex(0.5, 1.0)), Val(Fraction(1, 3)), NpScalar("float32", 0.5),
        NpScalar("float16", 6e-8), NpScalar("int64", 2), NpScalar("uint64", 2**64 - 1),
        NpScalar("bool_", True), NpScalar("complex128", 1.0), NpScalar("longdouble", "1e4000"),
        NpScalar("longdouble", "1e-4000"), Arr([0.5], "float64", ()), Arr([0.5, 1.0],
                                                                          "float64", (2,)),
        Val(NAN), Val(INF), Val(-INF), Val(-1), Val(-5e-324),
    ])


def _choice(draw, weighted):
    """Draw from ``[(weight, strategy_or_value), ...]``."""
    total = sum(w for w, _ in weighted)
    r = draw(st.integers(0, total - 1))
    for w, s in weighted:
        if r < w:
            return draw(s) if isinstance(s, st.SearchStrategy) else s
        r -= w
    raise AssertionError


@st.composite
def deltas(draw, p_bad=0.15):
    """delta: every regime (0, subnormal, below the logits' resolution, huge, float max),
    invalid values and wrong types."""
    k = draw(st.integers(0, 99))
    if k < 100 * p_bad / 2:
        return Val(draw(st.sampled_from(DELTA_BAD)))
    if k < 100 * p_bad:
        return draw(weird_scalars())
    if k < 70:
        return Val(draw(st.sampled_from(DELTA_GOOD)))
    if k < 80:
        return Val(draw(st.integers(0, 5)))
    return Val(draw(st.floats(0.0, 1e3, allow_nan=False, allow_infinity=False)))


@st.composite
def flags(draw, p_bad=0.1):
    """A boolean flag, sometimes of a wrong type."""
    if draw(st.integers(0, 99)) < 100 * p_bad:
        return draw(st.sampled_from([Val("False"), Val(None), Val([True]), Val(2), Val(0.5),
                                     Arr([True, False], "bool", (2,)), Val("yes"),
                                     NpScalar("bool_", False), Val(1), Val(0)]))
    return Val(draw(st.booleans()))


def methods(valid, p_bad=0.1):
    bad = [Val("fast"), Val(None), Val(3), Val(["dense"]), Val("DENSE"), Val(""),
           Val("brs"), Val("exact")]
    return _methods(valid, bad, p_bad)


@st.composite
def _methods(draw, valid, bad, p_bad):
    if draw(st.integers(0, 99)) < 100 * p_bad:
        return draw(st.sampled_from(bad))
    return Val(draw(st.sampled_from(valid)))


# ------------------------------------------------------------------------------ shapes, values

@st.composite
def shapes(draw, max_size=12, min_size=0, ndims=(0, 1, 1, 1, 2, 2, 3)):
    nd = draw(st.sampled_from(ndims))
    if nd == 0:
        return ()
    while True:
        dims = tuple(draw(st.integers(0 if min_size == 0 else 1, max(1, max_size)))
                     for _ in range(nd))
        size = math.prod(dims)
        if min_size <= size <= max_size:
            return dims
        if nd == 1:
            return (max(min_size, min(dims[0], max_size)),)


def float_specials(dtype):
    fi = np.finfo(dtype)
    vals = [0.0, -0.0, 1.0, -1.0, 0.5, float(fi.max), -float(fi.max), float(fi.tiny),
            float(fi.smallest_subnormal), -float(fi.smallest_subnormal), float(fi.eps),
            1.0 + float(fi.eps), 2.0, 3.0, -3.0, 1e-10, 1e6, 1e17, 2.0**53, 2.0**53 + 2,
            1e300, -1e300, 1e308, -1e308, 1e-300]
    out = []
    for v in vals:
        with np.errstate(over="ignore", under="ignore"):
            c = float(np.dtype(dtype).type(v))
        if math.isfinite(c):
            out.append(c)
    return out


def int_specials(dtype):
    ii = np.iinfo(dtype)
    vals = [0, 1, 2, 3, -1, -2, int(ii.max), int(ii.min), int(ii.max) - 1, 2**53, 2**53 + 1,
            2**31, 2**32 + 1, 2**63 - 1, 2**63, 2**63 + 1, 2**64 - 1, 255, 127, -128]
    return [v for v in vals if ii.min <= v <= ii.max]


@st.composite
def elements(draw, dtype, finite=False, lo=None, hi=None):
    """One value for an array of ``dtype`` (a Python value the dtype represents exactly)."""
    dt = np.dtype(dtype)
    k = dt.kind
    if k == "b":
        return draw(st.booleans())
    if k in "iu":
        ii = np.iinfo(dt)
        a = ii.min if lo is None else max(ii.min, lo)
        b = ii.max if hi is None else min(ii.max, hi)
        return draw(st.one_of(
            st.sampled_from([v for v in int_specials(dt) if a <= v <= b] or [a]),
            st.integers(max(a, -3), min(b, 3)) if max(a, -3) <= min(b, 3) else st.just(a),
            st.integers(a, b)))
    if k == "f" and dt.itemsize > 8:
        return draw(st.sampled_from(["1e4000", "-1e4000", "1.0000000000000000001", "1",
                                     "0", "-0.0", "nan", "inf", "1e-4000", "0.5",
                                     "1.7976931348623157e308", "2.5"]))
    if k == "f":
        width = dt.itemsize * 8
        specials = float_specials(dt)
        if not finite:
            specials = specials + [NAN, INF, -INF]
        v = draw(st.one_of(st.sampled_from(specials),
                           st.integers(-3, 3).map(float),
                           st.floats(width=width, allow_nan=not finite,
                                     allow_infinity=not finite)))
        if lo is not None:
            v = max(v, lo)
        if hi is not None:
            v = min(v, hi)
        return float(dt.type(v))
    if k == "c":
        width = dt.itemsize * 4
        re = draw(st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5, NAN, INF]),
                            st.floats(width=width)))
        im = draw(st.sampled_from([0.0, 0.0, 1.0, -0.5, NAN]))
        return complex(re, im)
    if k == "O":
        return draw(st.sampled_from([1, 0, -1, 0.5, 10**400, 2**64, None, "a", NAN, 1.0,
                                     Fraction(1, 3), complex(1, 1), True]))
    if k in "US":
        return draw(st.sampled_from(["a", "1", "0.5", "", "nan", "-1"]))
    if k in "Mm":
        return draw(st.integers(-5, 5))
    raise AssertionError(dtype)


@st.composite
def wild_arrays(draw, max_size=10, dtypes=ALL_DTYPES, shape=None, finite=False, layouts=None):
    """Any dtype, any shape (0-d, empty, 3-D), any values, any layout."""
    dtype = draw(st.sampled_from(dtypes))
    shp = draw(shapes(max_size)) if shape is None else shape
    n = math.prod(shp)
    vals = [draw(elements(dtype, finite=finite)) for _ in range(n)]
    lay = draw(st.sampled_from(layouts or (LAYOUTS_0D if not shp else LAYOUTS_ND)))
    return Arr(vals, dtype, shp, lay)


# ------------------------------------------------------------------------------ ranking inputs

NEAR_BASES = (0.0, 1.0, 1e6, 1e17, -1e300, 1e300, 1e-300, 2.0**53, -7.5, 1e16, 1e308)


def _cast(vals, dtype, finite=True):
    """Cast Python floats to ``dtype`` (saturating at the dtype's range when finite)."""
    dt = np.dtype(dtype)
    out = []
    for v in vals:
        if dt.kind == "f":
            with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                c = float(dt.type(v))
            if finite and not math.isfinite(c) and math.isfinite(v):
                c = math.copysign(float(np.finfo(dt).max), v)
            out.append(c)
        elif dt.kind in "iu":
            ii = np.iinfo(dt)
            if not math.isfinite(v):
                v = 0.0
            out.append(int(min(max(math.floor(v) if abs(v) < 2**1000 else
                                   math.copysign(2**1000, v), ii.min), ii.max)))
        elif dt.kind == "b":
            out.append(bool(v > 0))
        else:
            out.append(v)
    return out


@st.composite
def logit_values(draw, n, dtype="float64", finite=True):
    """n logits with a drawn style: integer grid (heavy ties), values one ulp apart around a
    base (ties below delta's resolution), a small pool of extreme values (huge spreads), or
    random floats."""
    style = draw(st.sampled_from(["grid", "grid", "near", "pool", "spread", "random", "ints"]))
    dt = np.dtype(dtype)
    if dt.kind in "iu" and style in ("near", "spread"):
        ii = np.iinfo(dt)
        base = draw(st.sampled_from([0, 2**53, int(ii.max) - 3, int(ii.min) + 3, 2**62, 100]))
        base = min(max(base, int(ii.min) + 3), int(ii.max) - 3)
        return [base + draw(st.integers(-3, 3)) if style == "near" else
                draw(st.sampled_from([int(ii.min), int(ii.max), 0, 1, base]))
                for _ in range(n)]
    if style == "grid":
        vals = [float(draw(st.integers(-3, 3))) for _ in range(n)]
    elif style == "ints":
        vals = [float(draw(st.integers(-50, 50))) * 0.25 for _ in range(n)]
    elif style == "near":
        base = draw(st.sampled_from(NEAR_BASES))
        if dt.kind == "f" and dt.itemsize < 8:
            base = float(np.clip(base, -1e4, 1e4))
        vals = []
        for _ in range(n):
            k = draw(st.integers(-2, 2))
            v = base
            for _ in range(abs(k)):
                v = math.nextafter(v, INF if k > 0 else -INF)
            vals.append(v)
    elif style == "pool":
        pool = draw(st.lists(st.one_of(st.sampled_from(float_specials("float64")),
                                       st.floats(-1e3, 1e3)), min_size=1, max_size=4))
        vals = [draw(st.sampled_from(pool)) for _ in range(n)]
    elif style == "spread":
        vals = [draw(st.sampled_from([FMAX, -FMAX, 1e308, -1e308, 0.0, 1.0, -1.0, 5e-324,
                                      1e300, -1e300, 1e154])) for _ in range(n)]
    else:
        vals = [draw(st.floats(-1e6, 1e6)) for _ in range(n)]
    if not finite and n and draw(st.integers(0, 3)) == 0:
        i = draw(st.integers(0, n - 1))
        vals[i] = draw(st.sampled_from([NAN, INF, -INF]))
    return _cast(vals, dtype, finite)


IOU_POOL = (1.0, 0.5, 0.7, 0.9, 0.1, 5e-324, 1e-300, 0.9999999999999999, 0.3, 0.25, 1.0, 0.5)
RS_TARGET_BAD = (2.0, 1.0000000000000002, NAN, INF, -INF, 1e308, 255.0)
RS_TARGET_ODD = (-0.0, -2.0, -1e308, -5e-324, -0.5)


@st.composite
def target_values(draw, n, binary, dtype, wild):
    """Targets: -1 ignored, 0 negative, IoU (or 1) positive; wild adds invalid values."""
    vals = []
    p_pos = draw(st.sampled_from([0.3, 0.5, 0.2, 0.8, 0.0, 1.0, 0.5]))
    for _ in range(n):
        r = draw(st.integers(0, 99))
        if wild and r < 8:
            v = draw(st.sampled_from((0.5, 2.0, NAN, -2.0, -0.0) if binary else
                                     RS_TARGET_BAD + RS_TARGET_ODD))
        elif r < 15:
            v = -1.0
        elif r < 15 + 85 * p_pos:
            v = 1.0 if binary else draw(st.sampled_from(IOU_POOL))
        else:
            v = 0.0
        vals.append(v)
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        out = []
        for v in vals:
            if not math.isfinite(v):
                out.append(int(np.iinfo(dt).max))
            elif v > 1:
                out.append(int(min(v, np.iinfo(dt).max)))
            elif v > 0:
                out.append(1)
            elif v < 0:
                out.append(-1 if dt.kind == "i" else int(np.iinfo(dt).max))
            else:
                out.append(0)
        return out
    if dt.kind == "b":
        return [bool(v > 0) for v in vals]
    return _cast(vals, dtype, finite=False)


TARGET_DTYPES = ("float64", "float64", "float32", "int8", "int64", "bool", "uint8", "int16",
                 "float16", "int32", "uint64")
LOGIT_DTYPES = ("float64", "float64", "float64", "float32", "float16", "int64", "int32",
                "uint64", "uint8", "int8", "longdouble")


@st.composite
def ranking_pair(draw, binary=False, max_n=12):
    """(logits, targets) specs: mostly a valid small problem, sometimes wild."""
    wild = draw(st.integers(0, 99)) < 25
    if wild and draw(st.booleans()):
        # anything at all
        x = draw(wild_arrays(max_n))
        shp = x.shape if draw(st.integers(0, 4)) else draw(shapes(max_n))
        if draw(st.integers(0, 2)) == 0:
            t = draw(wild_arrays(max_n, shape=shp))
        else:
            tdt = draw(st.sampled_from(TARGET_DTYPES))
            t = Arr(draw(target_values(math.prod(shp), binary, tdt, True)), tdt, shp,
                    draw(st.sampled_from(LAYOUTS_0D if not shp else LAYOUTS_ND)))
        return x, t
    big = draw(st.integers(0, 9)) == 0
    shp = draw(shapes(64 if big else max_n, min_size=0 if wild else 1,
                      ndims=(0, 1, 1, 1, 1, 2, 2, 3)))
    n = math.prod(shp)
    xdt = draw(st.sampled_from(LOGIT_DTYPES if wild or draw(st.booleans()) else ("float64",)))
    if np.dtype(xdt).kind == "f" and np.dtype(xdt).itemsize > 8:
        xv = [repr(v) for v in draw(logit_values(n, "float64", finite=not wild))]
        if n and draw(st.booleans()):
            xv[0] = draw(st.sampled_from(["1.0000000000000000001", "1e4000", "-1e-4000"]))
    else:
        xv = draw(logit_values(n, xdt, finite=not wild))
    tdt = draw(st.sampled_from(TARGET_DTYPES)) if draw(st.booleans()) else "float64"
    tv = draw(target_values(n, binary, tdt, wild))
    if not wild and xdt in ("float64", "float32") and draw(st.integers(0, 4)) == 0:
        xv = draw(trained_logits(tv, xdt))
    else:
        xv = _adversarial_ties(draw, xv, tv, xdt)
    lay = LAYOUTS_0D if not shp else LAYOUTS_ND
    return (Arr(xv, xdt, shp, draw(st.sampled_from(lay))),
            Arr(tv, tdt, shp, draw(st.sampled_from(lay))))


# gaps between the positives and the negatives just below them, for the default deltas (1 for
# AP, 0.5 for RS): the negatives sit a hair inside the positives' ramps, so the losses are tiny
TRAINED_GAPS = (0.999999999, 1.0 - 2.0 ** -52, 1.0 - 2.0 ** -30, 0.4999999999,
                0.5 - 2.0 ** -53, 0.9999, 1.9999999, 0.99999999999)


@st.composite
def trained_logits(draw, tv, dtype):
    """A trained detector's logits: the positives clustered high, every negative just below
    the lowest positive's ramp or far below (losses of 1e-10 and less, where only relative
    accuracy means anything)."""
    base = draw(st.sampled_from([0.0, 3.0, -7.25, 1e3, 0.1]))
    gap = draw(st.sampled_from(TRAINED_GAPS))
    xv = []
    for t in tv:
        if not isinstance(t, str) and t > 0:
            xv.append(base + draw(st.sampled_from([0.0, 0.0, 0.25, 1.0, 2.0**-40])))
        elif draw(st.integers(0, 2)) == 0:
            xv.append(base - draw(st.sampled_from([10.0, 1e6, 3.0])))
        else:
            xv.append(base - gap - draw(st.sampled_from([0.0, 0.0, 2.0 ** -44, 1e-12])))
    return _cast(xv, dtype) if dtype == "float32" else xv


def _adversarial_ties(draw, xv, tv, dtype):
    """Negatives tied with a positive, or one ulp away from one (the cases where the exact
    answer counts H(0) = 1/2 and float breakpoints x_i -+ delta collapse onto x_i)."""
    pos = [i for i, t in enumerate(tv) if not isinstance(t, str) and t > 0]
    neg = [i for i, t in enumerate(tv) if not isinstance(t, str) and t == 0]
    mode = draw(st.sampled_from(["none", "copy", "copy", "ulp"]))
    if mode == "none" or not pos or not neg:
        return xv
    xv = list(xv)
    for j in neg:
        if draw(st.booleans()):
            v = xv[draw(st.sampled_from(pos))]
            if mode == "ulp" and isinstance(v, float) and math.isfinite(v) and \
                    np.dtype(dtype) == np.float64:
                v = math.nextafter(v, draw(st.sampled_from([INF, -INF])))
            xv[j] = v
    return xv


@st.composite
def related_deltas(draw, x):
    """A delta tied to the logits: a difference of two logits (x_i +- delta lands exactly on
    another logit), half of one, or a fraction of a logit's ulp (delta below the resolution)."""
    vals = [float(np.longdouble(v)) if isinstance(v, str) else float(v) for v in x.values] \
        if isinstance(x, Arr) and np.dtype(x.dtype).kind in "fiu" else []
    vals = [v for v in vals if math.isfinite(v)]
    if len(vals) < 2:
        return draw(deltas())
    a, b = draw(st.sampled_from(vals)), draw(st.sampled_from(vals))
    kind = draw(st.sampled_from(["diff", "half", "ulp", "ulp"]))
    with np.errstate(over="ignore"):
        if kind == "diff":
            d = abs(a - b)
        elif kind == "half":
            d = abs(a - b) / 2
        else:
            d = math.ulp(a) * draw(st.sampled_from([0.25, 0.5, 0.75, 1.0, 2.0]))
    return Val(d if math.isfinite(d) else FMAX)


def _delta_for(draw, x):
    return draw(related_deltas(x)) if draw(st.integers(0, 4)) == 0 else draw(deltas())


def _maybe_kw(draw, kwargs, name, strategy, p_omit=0.3):
    if draw(st.integers(0, 99)) >= 100 * p_omit:
        kwargs[name] = draw(strategy)


@st.composite
def cases_heaviside(draw):
    if draw(st.booleans()):
        u = draw(wild_arrays(10))
    else:
        shp = draw(shapes(10))
        u = Arr(draw(logit_values(math.prod(shp), "float64", finite=False)), "float64", shp,
                draw(st.sampled_from(LAYOUTS_0D if not shp else LAYOUTS_ND)))
    return Case("heaviside", [u, draw(deltas())])


@st.composite
def cases_sort_scores(draw):
    if draw(st.integers(0, 2)) == 0:
        x = draw(wild_arrays(12))
    else:
        shp = draw(shapes(12))
        dt = draw(st.sampled_from(LOGIT_DTYPES[:-1]))
        x = Arr(draw(logit_values(math.prod(shp), dt, finite=draw(st.booleans()))), dt, shp,
                draw(st.sampled_from(LAYOUTS_0D if not shp else LAYOUTS_ND)))
    kw = {}
    _maybe_kw(draw, kw, "descending", flags())
    return Case("sort_scores", [x], kw)


@st.composite
def cases_relaxed_ranks(draw):
    x, t = draw(ranking_pair())
    kw = {}
    _maybe_kw(draw, kw, "delta", st.just(_delta_for(draw, x)))
    return Case("relaxed_ranks", [x, t], kw)


@st.composite
def cases_make_buckets(draw):
    x, t = draw(ranking_pair())
    kw = {}
    _maybe_kw(draw, kw, "delta", st.just(_delta_for(draw, x)))
    _maybe_kw(draw, kw, "kind", _methods(("exact", "brs"), [Val("dense"), Val(None), Val(1),
                                                          Val("EXACT")], 0.1))
    return Case("make_buckets", [x, t], kw)


@st.composite
def cases_average_precision(draw):
    x, t = draw(ranking_pair(binary=True))
    kw = {}
    _maybe_kw(draw, kw, "interpolate", flags())
    return Case("average_precision", [x, t], kw)


@st.composite
def cases_rank_sort_loss(draw):
    x, t = draw(ranking_pair())
    kw = {}
    _maybe_kw(draw, kw, "delta", st.just(_delta_for(draw, x)))
    _maybe_kw(draw, kw, "method", methods(("bucketed", "dense", "brs")))
    _maybe_kw(draw, kw, "compute_grad", flags(), p_omit=0.6)
    return Case("rank_sort_loss", [x, t], kw)


@st.composite
def cases_ap_loss(draw):
    x, t = draw(ranking_pair(binary=True))
    kw = {}
    _maybe_kw(draw, kw, "delta", st.just(_delta_for(draw, x)))
    _maybe_kw(draw, kw, "interpolate", flags())
    _maybe_kw(draw, kw, "method", methods(("bucketed", "dense")))
    _maybe_kw(draw, kw, "compute_grad", flags(), p_omit=0.6)
    return Case("ap_loss", [x, t], kw)


# ------------------------------------------------------------------------------ GAP

@st.composite
def nonneg_reals(draw, p_bad=0.15, good=(0.0, 1.0, 0.5, 2.0, 5e-324, 1e-300, 1e300, FMAX,
                                           1e-10, 3.0, 10.0, 1e17)):
    k = draw(st.integers(0, 99))
    if k < 100 * p_bad / 2:
        return Val(draw(st.sampled_from([-1.0, NAN, INF, -INF, -5e-324])))
    if k < 100 * p_bad:
        return draw(weird_scalars())
    if k < 75:
        return Val(draw(st.sampled_from(good)))
    return Val(draw(st.floats(0.0, 10.0)))


@st.composite
def count_arrays(draw, C, wild):
    if wild and draw(st.integers(0, 3)) == 0:
        return draw(wild_arrays(6, shape=draw(st.sampled_from([(C,), (C + 1,), (), (C, 1)]))))
    dt = draw(st.sampled_from(("float64", "int64", "float32", "uint64", "int8", "float16")))
    vals = [draw(st.sampled_from([0, 1, 2, 5, 100, 1e308, 5e-324, 0.5, 2**53 + 1, 1e30]))
            for _ in range(C)]
    return Arr(_cast([float(v) for v in vals], dt), dt, (C,),
               draw(st.sampled_from(("c", "ro", "list", "strided"))))


@st.composite
def weight_arrays(draw, C, wild):
    if wild and draw(st.integers(0, 2)) == 0:
        return draw(st.one_of(wild_arrays(6, shape=draw(st.sampled_from([(C,), (C + 1,), ()]))),
                              st.sampled_from([Val(["a"] * C), Val([None] * C),
                                               Val([complex(1, 5)] * C), Val(1.0)])))
    dt = draw(st.sampled_from(("float64", "float32", "int64", "float16")))
    vals = [draw(st.sampled_from([1.0, 0.0, 0.5, 2.0, 1e308, 1e300, 5e-324, 1e-300, 3.0]))
            for _ in range(C)]
    return Arr(_cast(vals, dt), dt, (C,), draw(st.sampled_from(("c", "ro", "list"))))


@st.composite
def gap_inputs(draw, max_cells=12):
    """(scores, labels, C, wild) for gap_loss: [n, C] scores, labels in [-1, C]."""
    wild = draw(st.integers(0, 99)) < 25
    C = draw(st.integers(1, 4))
    n = draw(st.integers(0 if wild else 1, max(1, max_cells // C)))
    if draw(st.integers(0, 9)) == 0:
        n = draw(st.integers(1, 12))  # a larger problem for the dense comparison
    sdt = draw(st.sampled_from(("float64", "float64", "float32", "float16", "int64", "uint8")))
    sv = draw(logit_values(n * C, sdt, finite=not wild))
    shape = (n, C)
    if wild and draw(st.integers(0, 3)) == 0:
        shape = draw(st.sampled_from([(n * C,), (n, C, 1), ()])) if n * C == 1 else (n * C,)
    scores = Arr(sv, sdt, shape, draw(st.sampled_from(LAYOUTS_ND if shape else LAYOUTS_0D)))
    if wild and draw(st.integers(0, 2)) == 0:
        labels = draw(wild_arrays(6, shape=draw(st.sampled_from([(n,), (n + 1,), ()]))))
    else:
        ldt = draw(st.sampled_from(("int64", "int64", "int32", "int8", "uint8", "uint64",
                                    "int16")))
        lv = []
        for _ in range(n):
            r = draw(st.integers(0, 99))
            if wild and r < 8:
                lv.append(draw(st.sampled_from([C + 1, -2, 2**64 - 1, 2**63, 255, -128])))
            elif r < 15:
                lv.append(-1)
            elif r < 30:
                lv.append(C)
            else:
                lv.append(draw(st.integers(0, C - 1)))
        ii = np.iinfo(ldt)
        lv = [v if ii.min <= v <= ii.max else (int(ii.max) if v > 0 else
                                               (int(ii.max) if ldt[0] == "u" else int(ii.min)))
              for v in lv]
        labels = Arr(lv, ldt, (n,), draw(st.sampled_from(("c", "ro", "list", "strided",
                                                          "rev"))))
        if not wild and sdt == "float64" and shape == (n, C) and draw(st.integers(0, 4)) == 0:
            # trained: each row's own class high, the rest a hair inside the ramps or far below
            flat_t = [1.0 if 0 <= lv[e // C] < C and e % C == lv[e // C] else 0.0
                      for e in range(n * C)]
            scores = Arr(draw(trained_logits(flat_t, "float64")), sdt, shape, scores.layout)
    return scores, labels, C, wild


@st.composite
def gap_counts(draw, C, wild):
    k = draw(st.integers(0, 9))
    if k < 4:
        vals = [draw(st.sampled_from([0, 1, 3, 100, 1e308, 0.5])) for _ in range(C)]
        return Counts(C if not (wild and k == 0) else C + 1, vals,
                      foreign=draw(st.integers(0, 4)) == 0)
    if k < 8:
        return draw(count_arrays(C, wild))
    if k < 9:
        return Val(None)
    return draw(st.sampled_from([Val("counts"), Val(3), Val([1] * C), Val([-1] * C),
                                 Val([NAN] * C), DictSpec({"counts": Val([1] * C)})]))


@st.composite
def cases_gap_loss(draw):
    scores, labels, C, wild = draw(gap_inputs())
    counts = draw(gap_counts(C, wild))
    kw = {}
    _maybe_kw(draw, kw, "delta", st.just(_delta_for(draw, scores)))
    _maybe_kw(draw, kw, "gamma", nonneg_reals())
    _maybe_kw(draw, kw, "method", methods(("bucketed", "dense")))
    _maybe_kw(draw, kw, "exclude_foreground", flags())
    _maybe_kw(draw, kw, "weights", weight_arrays(C, wild), p_omit=0.6)
    _maybe_kw(draw, kw, "compute_grad", flags(), p_omit=0.6)
    return Case("gap_loss", [scores, labels, counts], kw)


# ------------------------------------------------------------------------------ ClassCounts

@st.composite
def num_classes_values(draw):
    if draw(st.integers(0, 9)) < 8:
        return Val(draw(st.integers(1, 5)))
    return draw(st.sampled_from([Val(0), Val(-1), Val(2**63), Val(10**400), Val(2**31),
                                 Val(True), Val(2.0), Val("3"), Val(None), NpScalar("int64", 3),
                                 NpScalar("uint64", 2**64 - 1), Val(2**40),
                                 NpScalar("int8", 2)]))


@st.composite
def label_arrays(draw, C, wild, max_n=10):
    if wild and draw(st.integers(0, 2)) == 0:
        return draw(wild_arrays(max_n))
    dt = draw(st.sampled_from(("int64", "int32", "int8", "uint8", "uint64", "int16", "uint32")))
    shp = draw(shapes(max_n, ndims=(0, 1, 1, 1, 2)))
    vals = []
    for _ in range(math.prod(shp)):
        r = draw(st.integers(0, 99))
        if wild and r < 10:
            vals.append(draw(st.sampled_from([C + 1, -2, 2**64 - 1, 2**63, 2**32, 255, -128])))
        else:
            vals.append(draw(st.integers(-1, C)))
    ii = np.iinfo(dt)
    vals = [v if ii.min <= v <= ii.max else (int(ii.max) if v > 0 or dt[0] == "u"
                                             else int(ii.min)) for v in vals]
    return Arr(vals, dt, shp, draw(st.sampled_from(LAYOUTS_0D if not shp else LAYOUTS_ND)))


@st.composite
def state_dicts(draw, C):
    k = draw(st.integers(0, 9))
    counts = [draw(st.sampled_from([0.0, 1.0, 7.0, 1e308, 2.0**53 + 2])) for _ in range(C)]
    if k < 4:
        return DictSpec({"num_classes": Val(C), "counts": Arr(counts, "float64", (C,))})
    bad = [
        DictSpec({"counts": Arr(counts, "float64", (C,))}),
        DictSpec({"num_classes": Val(C)}),
        DictSpec({"num_classes": Val(C + 0.5), "counts": Arr(counts, "float64", (C,))}),
        DictSpec({"num_classes": Val(str(C)), "counts": Arr(counts, "float64", (C,))}),
        DictSpec({"num_classes": Val(f"{C}.7"), "counts": Arr(counts, "float64", (C,))}),
        DictSpec({"num_classes": Val(None), "counts": Arr(counts, "float64", (C,))}),
        DictSpec({"num_classes": Val(C), "counts": Arr([complex(1, 2)] * C, "complex128",
                                                         (C,))}),
        DictSpec({"num_classes": Val(C), "counts": Val(["a"] * C)}),
        DictSpec({"num_classes": Val(C), "counts": Val([None] * C)}),
        DictSpec({"num_classes": Val(C), "counts": Arr([-1.0] * C, "float64", (C,))}),
        DictSpec({"num_classes": Val(C), "counts": Arr([NAN] * C, "float64", (C,))}),
        DictSpec({"num_classes": Val(C), "counts": Arr([1.0] * (C + 1), "float64",
                                                         (C + 1,))}),
        DictSpec({"num_classes": Val(C), "counts": Arr([2**64 - 1] * C, "uint64", (C,))}),
        DictSpec({"num_classes": Val(C), "counts": Arr([True] * C, "bool", (C,))}),
        DictSpec({"num_classes": Val(C), "counts": Arr([0.5] * C, "float64", (C,))}),
        DictSpec({"num_classes": Val(C), "counts": Val(1.0)}),
        DictSpec({"num_classes": Val(10**400), "counts": Arr(counts, "float64", (C,))}),
        DictSpec({"num_classes": Val(C), "counts": Arr(counts, "float64", (C,)),
                  "extra": Val(1)}),
        Val(None), Val([C, counts]), Val("state"),
    ]
    return draw(st.sampled_from(bad))


@st.composite
def cases_class_counts(draw):
    """A constructor call, then a random sequence of method calls on the object."""
    nc = draw(num_classes_values())
    C = nc.value if isinstance(nc, Val) and isinstance(nc.value, int) and \
        not isinstance(nc.value, bool) and 1 <= nc.value <= 5 else 2
    wild = draw(st.integers(0, 99)) < 30
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["update", "update", "weights", "merge", "add", "state_dict",
                                   "load_state_dict", "reset"]))
        if op == "update":
            steps.append(("update", [draw(label_arrays(C, wild))]))
        elif op == "weights":
            steps.append(("weights", [draw(nonneg_reals())] if draw(st.booleans()) else []))
        elif op in ("merge", "add"):
            if draw(st.integers(0, 4)) == 0:
                other = draw(st.sampled_from([Val(3), Val(None), Val("x"),
                                              Arr([1.0] * C, "float64", (C,))]))
            else:
                cvals = [draw(st.sampled_from([0.0, 1.0, 5.0, 1e308, 2.0**53]))
                         for _ in range(C)]
                other = Counts(C if draw(st.integers(0, 5)) else C + 1, cvals,
                               foreign=draw(st.integers(0, 4)) == 0)
            steps.append((op, [other]))
        elif op == "load_state_dict":
            steps.append(("load_state_dict", [draw(state_dicts(C))]))
        else:
            steps.append((op, []))
    return Case("ClassCounts", [nc], meta={"steps": steps})


# ------------------------------------------------------------------------------ sampling

@st.composite
def count_args(draw, good_max=12, p_bad=0.15):
    k = draw(st.integers(0, 99))
    if k < 100 * p_bad:
        return draw(st.sampled_from([Val(-1), Val(10**400), Val(2**63), Val(2**64),
                                     Val(True), Val(2.0), Val(None), Val("3"),
                                     NpScalar("int64", 3), NpScalar("uint64", 2**64 - 1),
                                     NpScalar("uint8", 2), NpScalar("int64", -2**63),
                                     Val(10**12), NpScalar("float64", 2.0)]))
    return Val(draw(st.integers(0, good_max)))


@st.composite
def iou_arrays(draw, max_n=12):
    if draw(st.integers(0, 99)) < 20:
        return draw(wild_arrays(max_n))
    n = draw(st.integers(0, max_n))
    dt = draw(st.sampled_from(("float64", "float64", "float32", "float16", "int64", "uint8")))
    pool = [0.0, 0.1, 0.2, 0.3, 1 / 3, 2 / 3, 0.5, 0.9, 1.0, -1.0, 5e-324, 0.0999999,
            0.49999999999999994, -0.0, 0.25]
    vals = [draw(st.one_of(st.sampled_from(pool), st.floats(0.0, 1.0))) for _ in range(n)]
    if draw(st.integers(0, 9)) == 0 and n:
        vals[draw(st.integers(0, n - 1))] = draw(st.sampled_from([1.5, -1.5, NAN, INF]))
    return Arr(_cast(vals, dt, finite=False), dt, (n,),
               draw(st.sampled_from(("c", "ro", "strided", "rev", "list"))))


def _real_arg(good, bad=(NAN, INF, -INF), p_bad=0.15):
    @st.composite
    def strat(draw):
        k = draw(st.integers(0, 99))
        if k < 100 * p_bad / 2:
            return Val(draw(st.sampled_from(list(bad))))
        if k < 100 * p_bad:
            return draw(weird_scalars())
        if k < 80:
            return Val(draw(st.sampled_from(list(good))))
        return Val(draw(st.floats(min(good), max(good))))
    return strat()


@st.composite
def rngs(draw, torch_ok=False):
    k = draw(st.integers(0, 19))
    if k == 0:
        return Rng(draw(st.sampled_from(["legacy", "int", "none"])), 3)
    # rankref and rankref_gpu take a torch.Generator too (where torch is installed)
    if k < (6 if torch_ok else 3) and importlib.util.find_spec("torch") is not None:
        return Rng("torch", draw(st.integers(0, 2**32)))
    return Rng("np", draw(st.integers(0, 2**32)))


def _iou_kwargs(draw):
    kw = {}
    _maybe_kw(draw, kw, "num_bins", count_args(good_max=5), p_omit=0.3)
    _maybe_kw(draw, kw, "floor_thr", _real_arg((-1.0, 0.0, 0.5, 0.1, 0.99, 0.9999999999999999),
                                               (NAN, INF, 1.0, -0.5, -1.0000000000000002)))
    _maybe_kw(draw, kw, "floor_fraction", _real_arg((0.0, 0.5, 1.0, 0.25, 5e-324),
                                                    (NAN, INF, -0.1, 1.1)))
    if draw(st.booleans()):
        kw["max_iou"] = draw(st.one_of(
            st.just(Val(None)),
            _real_arg((1.0, 0.5, 0.0, 1e308, -1e308, 5e-324, 0.3333, 2.0, -1.0),
                      (NAN, INF, -INF))))
    return kw


@st.composite
def cases_iou_balanced_neg_sample(draw, torch_ok=False):
    kw = _iou_kwargs(draw)
    kw["rng"] = draw(rngs(torch_ok))
    return Case("iou_balanced_neg_sample", [draw(iou_arrays()), draw(count_args())], kw)


@st.composite
def cases_iou_balanced_neg_probabilities(draw):
    return Case("iou_balanced_neg_probabilities", [draw(iou_arrays()), draw(count_args())],
                _iou_kwargs(draw))


@st.composite
def gt_arrays(draw, n, wild):
    if wild and draw(st.integers(0, 2)) == 0:
        return draw(wild_arrays(12, shape=draw(st.sampled_from([(n,), (n, 1), (), (n + 1,)]))))
    dt = draw(st.sampled_from(("int64", "int64", "int32", "int8", "uint8", "uint64", "int16",
                               "uint32")))
    vals = []
    for _ in range(n):
        r = draw(st.integers(0, 99))
        if wild and r < 12:
            vals.append(draw(st.sampled_from([2**63 + 1, 2**64 - 1, 2**63 - 1, -2**63, 2**32 + 1,
                                              -2, 255, 2**31, -129])))
        else:
            vals.append(draw(st.integers(-1, 4)))
    ii = np.iinfo(dt)
    vals = [v if ii.min <= v <= ii.max else (int(ii.max) if v > 0 or dt[0] == "u" else
                                             int(ii.min)) for v in vals]
    return Arr(vals, dt, (n,), draw(st.sampled_from(("c", "ro", "strided", "rev", "list"))))


@st.composite
def cases_instance_balanced_pos_sample(draw, torch_ok=False):
    wild = draw(st.integers(0, 99)) < 30
    n = draw(st.integers(0, 14))
    return Case("instance_balanced_pos_sample", [draw(gt_arrays(n, wild)),
                                                 draw(count_args(good_max=10))],
                {"rng": draw(rngs(torch_ok))})


@st.composite
def cases_class_balanced_pos_sample(draw, torch_ok=False):
    wild = draw(st.integers(0, 99)) < 30
    n = draw(st.integers(0, 14))
    m = n if not wild or draw(st.integers(0, 3)) else n + 1
    return Case("class_balanced_pos_sample", [draw(gt_arrays(m, wild)), draw(gt_arrays(n, wild)),
                                              draw(count_args(good_max=10))],
                {"rng": draw(rngs(torch_ok))})


# ------------------------------------------------------------------------------ re-weighting

POS_GOOD = (0.5, 1.5, 1.0, 1e-3, 1e-300, 5e-324, 1e300, FMAX, 10.0, 0.1, 3.0, 1e-10)
POS_BAD = (0.0, -0.0, -1.0, NAN, INF, -INF)

REG_VALUES = (0.0, -0.0, 1.0, -1.0, 0.5, 0.999999, 1.0000001, 2.0, 1e308, -1e308, 5e-324,
              1e-300, 1e300, 3.0, -2.5, FMAX, -FMAX, 1e-10, 1e150)


@st.composite
def real_arrays(draw, shape, values, dtypes=("float64", "float64", "float32", "float16",
                                              "int64", "int8", "uint64"), p_wild=0.15):
    if draw(st.integers(0, 99)) < 100 * p_wild:
        return draw(wild_arrays(8, shape=shape))
    dt = draw(st.sampled_from(dtypes))
    n = math.prod(shape)
    vals = [draw(st.one_of(st.sampled_from(values), st.floats(-10, 10))) for _ in range(n)]
    return Arr(_cast(vals, dt), dt, shape, draw(st.sampled_from(
        LAYOUTS_0D if not shape else LAYOUTS_ND)))


@st.composite
def cases_balanced_l1_loss(draw):
    shp = draw(shapes(8))
    shp2 = shp if draw(st.integers(0, 9)) else draw(st.sampled_from(
        [(), (1,), shp + (1,), (2,) + shp]))
    kw = {}
    _maybe_kw(draw, kw, "alpha", _real_arg(POS_GOOD, POS_BAD))
    _maybe_kw(draw, kw, "gamma", _real_arg(POS_GOOD, POS_BAD))
    _maybe_kw(draw, kw, "beta", _real_arg(POS_GOOD, POS_BAD))
    return Case("balanced_l1_loss", [draw(real_arrays(shp, REG_VALUES)),
                                     draw(real_arrays(shp2, REG_VALUES))], kw)


@st.composite
def cases_lgr_weights(draw):
    shp = draw(shapes(8))
    kw = {}
    _maybe_kw(draw, kw, "alpha", _real_arg(POS_GOOD, POS_BAD))
    _maybe_kw(draw, kw, "gamma", _real_arg(POS_GOOD, POS_BAD))
    vals = (0.0, -0.0, 0.5, 1.0, 0.999999, 1e-300, 5e-324, 1e308, 2.0, 1e-10, 0.1, FMAX)
    return Case("lgr_weights", [draw(real_arrays(shp, vals))], kw)


@st.composite
def cases_lgr_cross_entropy(draw):
    wild = draw(st.integers(0, 99)) < 20
    n = draw(st.integers(0, 5))
    K = draw(st.integers(1 if not wild else 0, 4))
    shape = (n, K) if not wild or draw(st.booleans()) else draw(st.sampled_from(
        [(n,), (), (n, K, 1)]))
    logits = draw(real_arrays(shape, REG_VALUES + (30.0, -30.0, 700.0, -745.0, 1e5),
                              p_wild=0.1 if wild else 0.0))
    if wild and draw(st.integers(0, 2)) == 0:
        labels = draw(wild_arrays(6, shape=draw(st.sampled_from([(n,), (n + 1,), ()]))))
    else:
        dt = draw(st.sampled_from(("int64", "int32", "int8", "uint8", "uint64")))
        vals = [draw(st.integers(-1, K - 1)) if not wild or draw(st.integers(0, 4)) else
                draw(st.sampled_from([K, K + 1, -2, 2**63, 2**64 - 1])) for _ in range(n)]
        ii = np.iinfo(dt)
        vals = [v if ii.min <= v <= ii.max else (int(ii.max) if v > 0 or dt[0] == "u" else
                                                 int(ii.min)) for v in vals]
        labels = Arr(vals, dt, (n,), draw(st.sampled_from(("c", "ro", "list", "rev"))))
    kw = {}
    _maybe_kw(draw, kw, "alpha", _real_arg(POS_GOOD, POS_BAD))
    _maybe_kw(draw, kw, "gamma", _real_arg(POS_GOOD, POS_BAD))
    return Case("lgr_cross_entropy", [logits, labels], kw)


@st.composite
def cases_bucketed_class_weights(draw):
    C = draw(st.integers(0, 8))
    shape = (C,) if draw(st.integers(0, 9)) else draw(st.sampled_from([(), (C, 1), (1, C)]))
    vals = (1.0, 10.0, 1000.0, 5e-324, 1e308, FMAX, 0.5, 2.0, 1e-300, 3.0, 7.0)
    freqs = draw(real_arrays(shape, vals, dtypes=("float64", "int64", "float32", "uint64",
                                                  "float16")))
    kw = {}
    _maybe_kw(draw, kw, "num_buckets", count_args(good_max=12))
    _maybe_kw(draw, kw, "a", _real_arg((0.5, 0.0, 1.0, -1.0, 1e308, -1e308, 0.25, 5e-324)))
    _maybe_kw(draw, kw, "t", _real_arg((0.025, 1.0, 5e-324, 1e-300, 1e308, 0.5), POS_BAD))
    return Case("bucketed_class_weights", [freqs], kw)


@st.composite
def cases_class_reweighted_targets(draw):
    C = draw(st.integers(0, 4))
    wild = draw(st.integers(0, 99)) < 25
    w = draw(real_arrays((C,) if not wild or draw(st.booleans()) else (C, 1),
                         (0.0, 1.0, 0.5, 1e308, -1.0, 5e-324, 2.0)))
    n = draw(st.integers(0, 6))
    if wild and draw(st.integers(0, 2)) == 0:
        labels = draw(wild_arrays(6))
    else:
        dt = draw(st.sampled_from(("int64", "int32", "int8", "uint8", "uint64")))
        vals = [draw(st.integers(-1, C)) if not wild or draw(st.integers(0, 4)) else
                draw(st.sampled_from([C + 1, -2, 2**63, 2**64 - 1])) for _ in range(n)]
        ii = np.iinfo(dt)
        vals = [v if ii.min <= v <= ii.max else (int(ii.max) if v > 0 or dt[0] == "u" else
                                                 int(ii.min)) for v in vals]
        labels = Arr(vals, dt, (n,), draw(st.sampled_from(("c", "ro", "list", "rev"))))
    return Case("class_reweighted_targets", [labels, w])


# ------------------------------------------------------------------------------ sampling-free

@st.composite
def count_reals(draw):
    k = draw(st.integers(0, 99))
    if k < 12:
        return draw(weird_scalars())
    if k < 20:
        return Val(draw(st.sampled_from([-1.0, NAN, INF, -1])))
    if k < 60:
        return Val(draw(st.sampled_from([0, 1, 2, 10, 100, 10**5, 2**53 + 1, 10**20, 10**300,
                                         10**400])))
    return Val(draw(st.sampled_from([0.0, 1.0, 1e-300, 5e-324, 1e300, 1e308, FMAX, 0.5,
                                     1e10, 3.0, 1e-10])))


@st.composite
def cases_optimal_bias(draw):
    kw = {}
    _maybe_kw(draw, kw, "num_classes", count_args(good_max=80))
    return Case("optimal_bias", [draw(count_reals()), draw(count_reals())], kw)


@st.composite
def cases_foreground_prior(draw):
    k = draw(st.integers(0, 9))
    if k == 0:
        return Case("foreground_prior", [draw(st.sampled_from(
            [Val(5), Val(None), Val("abc"), Val(1.5), Arr([1, 0, -1], "int64", (3,)),
             Arr([[1, 0], [0, -1]], "int64", (2, 2)), Val([[1, 0], [2]]), Val([]),
             Arr([0.5], "float64", (1,)), SeqSpec([Val(None)])]))])
    batches = []
    wild = k == 1
    for _ in range(draw(st.integers(0, 4))):
        if wild and draw(st.booleans()):
            batches.append(draw(wild_arrays(6)))
        else:
            C = 3
            batches.append(draw(label_arrays(C, wild, max_n=8)))
    return Case("foreground_prior", [SeqSpec(batches, draw(st.sampled_from(
        ["list", "tuple", "gen"])))])


@st.composite
def loss_scalars(draw):
    k = draw(st.integers(0, 99))
    if k < 15:
        return draw(weird_scalars())
    if k < 25:
        return draw(wild_arrays(3, shape=draw(st.sampled_from([(), (1,), (2,), (1, 1)]))))
    return Val(draw(st.sampled_from([0.0, 1.0, 5e-324, 1e-300, 1e308, FMAX, 0.5, 2.0, 1e300,
                                     -0.0, 3.0, 1e-10, 7])))


@st.composite
def cases_guided_scale(draw):
    return Case("guided_scale", [draw(loss_scalars()), draw(loss_scalars())])


RANKREF_CASES = {
    "heaviside": cases_heaviside(),
    "sort_scores": cases_sort_scores(),
    "relaxed_ranks": cases_relaxed_ranks(),
    "make_buckets": cases_make_buckets(),
    "average_precision": cases_average_precision(),
    "rank_sort_loss": cases_rank_sort_loss(),
    "ap_loss": cases_ap_loss(),
    "gap_loss": cases_gap_loss(),
    "ClassCounts": cases_class_counts(),
    "iou_balanced_neg_sample": cases_iou_balanced_neg_sample(),
    "iou_balanced_neg_probabilities": cases_iou_balanced_neg_probabilities(),
    "instance_balanced_pos_sample": cases_instance_balanced_pos_sample(),
    "class_balanced_pos_sample": cases_class_balanced_pos_sample(),
    "bucketed_class_weights": cases_bucketed_class_weights(),
    "class_reweighted_targets": cases_class_reweighted_targets(),
    "balanced_l1_loss": cases_balanced_l1_loss(),
    "lgr_weights": cases_lgr_weights(),
    "lgr_cross_entropy": cases_lgr_cross_entropy(),
    "optimal_bias": cases_optimal_bias(),
    "foreground_prior": cases_foreground_prior(),
    "guided_scale": cases_guided_scale(),
}


# ------------------------------------------------------------------------------ torch

TORCH_FLOAT = ("float32", "float64", "float64", "float16", "bfloat16")


@st.composite
def tensors_from(draw, arr, float_only=False, p_wild=0.1, grad=True):
    """A tensor holding an Arr's values, in a float dtype (sometimes any dtype)."""
    if draw(st.integers(0, 99)) < 100 * p_wild:
        dt = draw(st.sampled_from(("int64", "int32", "bool", "uint8", "complex64", "int8")))
        if float_only:
            dt = "float64"
    else:
        dt = draw(st.sampled_from(TORCH_FLOAT))
    dev = "meta" if draw(st.integers(0, 49)) == 0 else "cpu"
    lay = draw(st.sampled_from(("c", "c", "strided", "T")))
    return Tensor(arr, dt, lay, requires_grad=grad and draw(st.integers(0, 4)) > 0, device=dev)


@st.composite
def torch_ranking_pair(draw, binary=False):
    x, t = draw(ranking_pair(binary=binary))
    if draw(st.integers(0, 29)) == 0:
        return x, t  # NumPy arrays instead of tensors
    xa = Arr([float(np.longdouble(v)) if isinstance(v, str) else v for v in x.values],
             x.dtype if np.dtype(x.dtype).itemsize <= 8 else "float64", x.shape) \
        if np.dtype(x.dtype).kind in "fiub" else x
    if np.dtype(xa.dtype).kind not in "fiub":
        return x, t
    ta = Arr(t.values, t.dtype, t.shape) if np.dtype(t.dtype).kind in "fiub" else t
    tt = Tensor(ta, draw(st.sampled_from(("float32", "float64", "int64", "bool", "float16",
                                          "int8"))) if binary else draw(
        st.sampled_from(("float32", "float64", "float16", "bfloat16"))),
        draw(st.sampled_from(("c", "strided", "T")))) if isinstance(ta, Arr) and \
        np.dtype(ta.dtype).kind in "fiub" else t
    return draw(tensors_from(xa)), tt


@st.composite
def gathers(draw):
    return draw(st.one_of(st.just(Val(False)), st.just(Val(True)), flags(0.2)))


@st.composite
def torch_cases_rank_sort_loss(draw):
    x, t = draw(torch_ranking_pair())
    kw = {}
    _maybe_kw(draw, kw, "delta", deltas())
    _maybe_kw(draw, kw, "method", methods(("bucketed", "dense", "brs")))
    _maybe_kw(draw, kw, "gather", gathers(), p_omit=0.7)
    return Case("rank_sort_loss", [x, t], kw)


@st.composite
def torch_cases_ap_loss(draw):
    x, t = draw(torch_ranking_pair(binary=True))
    kw = {}
    _maybe_kw(draw, kw, "delta", deltas())
    _maybe_kw(draw, kw, "interpolate", flags())
    _maybe_kw(draw, kw, "method", methods(("bucketed", "dense")))
    return Case("ap_loss", [x, t], kw)


def _tensorize_int(draw, arr):
    if isinstance(arr, Arr) and np.dtype(arr.dtype).kind in "iub":
        vals = [min(max(int(v), -2**63), 2**63 - 1) for v in arr.values]
        return Tensor(Arr(vals, "int64", arr.shape), draw(st.sampled_from(
            ("int64", "int64", "int32", "uint8", "float32"))), "c")
    return arr


@st.composite
def torch_cases_gap_loss(draw):
    scores, labels, C, wild = draw(gap_inputs())
    s = draw(tensors_from(Arr(scores.values, scores.dtype if scores.dtype != "uint8" else
                              "float64", scores.shape)))
    counts = draw(gap_counts(C, wild))
    if isinstance(counts, Arr) and np.dtype(counts.dtype).kind in "fiu" and \
            draw(st.booleans()):
        counts = Tensor(Arr([float(v) for v in counts.values], "float64", counts.shape),
                        "float64")
    kw = {}
    _maybe_kw(draw, kw, "delta", deltas())
    _maybe_kw(draw, kw, "gamma", nonneg_reals())
    _maybe_kw(draw, kw, "method", methods(("bucketed", "dense")))
    _maybe_kw(draw, kw, "exclude_foreground", flags())
    _maybe_kw(draw, kw, "weights", weight_arrays(C, wild), p_omit=0.7)
    return Case("gap_loss", [s, _tensorize_int(draw, labels), counts], kw)


@st.composite
def torch_cases_balanced_l1_loss(draw):
    c = draw(cases_balanced_l1_loss())
    args = []
    for a in c.args:
        if isinstance(a, Arr) and np.dtype(a.dtype).kind in "fiu" and a.layout not in (
                "item", "npscalar", "list"):
            args.append(draw(tensors_from(Arr([float(v) for v in a.values], "float64",
                                              a.shape))))
        else:
            args.append(a)
    return Case("balanced_l1_loss", args, c.kwargs)


@st.composite
def torch_cases_lgr_cross_entropy(draw):
    c = draw(cases_lgr_cross_entropy())
    z, y = c.args
    if isinstance(z, Arr) and np.dtype(z.dtype).kind in "fiu" and z.layout not in (
            "item", "npscalar", "list"):
        z = draw(tensors_from(Arr([float(v) for v in z.values], "float64", z.shape)))
    return Case("lgr_cross_entropy", [z, _tensorize_int(draw, y)], c.kwargs)


@st.composite
def torch_cases_iou_balanced_neg_sample(draw):
    c = draw(cases_iou_balanced_neg_sample(torch_ok=True))
    a = c.args[0]
    if isinstance(a, Arr) and np.dtype(a.dtype).kind in "fiu" and a.layout not in (
            "item", "npscalar", "list"):
        c.args[0] = Tensor(Arr([float(v) for v in a.values], "float64", a.shape),
                           draw(st.sampled_from(("float32", "float64", "float16"))))
    return c


@st.composite
def torch_cases_pos_sample(draw, name):
    c = draw(cases_instance_balanced_pos_sample(torch_ok=True) if name == "instance" else
             cases_class_balanced_pos_sample(torch_ok=True))
    c.args = [_tensorize_int(draw, a) if isinstance(a, Arr) and a.layout not in (
        "item", "npscalar", "list") else a for a in c.args]
    return c


@st.composite
def loss_weights(draw):
    return draw(st.one_of(st.sampled_from([Val(1.0), Val(0.1), Val(2.0), Val(0.0)]),
                          st.sampled_from([Val(NAN), Val(INF), Val(-1.0), Val("1"), Val(None),
                                           Val(10**400), Val(True), Val(1e308),
                                           Val([1.0])])))


@st.composite
def reductions(draw):
    return draw(st.sampled_from([Val("mean"), Val("sum"), Val("none"), Val("mean"),
                                 Val("avg"), Val(None)]))


@st.composite
def torch_cases_module(draw, name):
    """A module constructed with drawn arguments, then called rankref-style."""
    init = {}
    if name == "RankSortLoss":
        _maybe_kw(draw, init, "delta", deltas())
        _maybe_kw(draw, init, "method", methods(("bucketed", "dense", "brs")))
        _maybe_kw(draw, init, "loss_weight", loss_weights())
        x, t = draw(torch_ranking_pair())
        fwd = [x, t]
    elif name == "APLoss":
        _maybe_kw(draw, init, "delta", deltas())
        _maybe_kw(draw, init, "interpolate", flags())
        _maybe_kw(draw, init, "method", methods(("bucketed", "dense")))
        _maybe_kw(draw, init, "loss_weight", loss_weights())
        x, t = draw(torch_ranking_pair(binary=True))
        fwd = [x, t]
    elif name == "GAPLoss":
        c = draw(torch_cases_gap_loss())
        C = c.args[0].arr.shape[-1] if isinstance(c.args[0], Tensor) and c.args[0].arr.shape \
            else 2
        init["num_classes"] = Val(C) if draw(st.integers(0, 9)) else draw(num_classes_values())
        _maybe_kw(draw, init, "gamma", nonneg_reals())
        _maybe_kw(draw, init, "delta", deltas())
        if draw(st.booleans()):
            init[draw(st.sampled_from(["lam", "loss_weight"]))] = draw(loss_weights())
        _maybe_kw(draw, init, "method", methods(("bucketed", "dense")))
        _maybe_kw(draw, init, "exclude_foreground", flags())
        fwd = c.args[:2]
        if draw(st.integers(0, 4)) == 0 and isinstance(fwd[1], Tensor) and \
                len(fwd[1].arr.shape) == 1:
            # float labels (e.g. 0.7): must be refused without touching the counts
            fwd[1] = Tensor(Arr([0.7, 1.9][: fwd[1].arr.shape[0]] + [0.0] * max(
                0, fwd[1].arr.shape[0] - 2), "float64", fwd[1].arr.shape), "float32")
        return Case(name, [], init, meta={"forward": fwd, "calls": draw(st.integers(1, 2))})
    elif name == "BalancedL1Loss":
        for k in ("alpha", "gamma", "beta"):
            _maybe_kw(draw, init, k, _real_arg(POS_GOOD, POS_BAD))
        _maybe_kw(draw, init, "reduction", reductions())
        _maybe_kw(draw, init, "loss_weight", loss_weights())
        c = draw(torch_cases_balanced_l1_loss())
        fwd = c.args
    elif name == "LGRCrossEntropyLoss":
        for k in ("alpha", "gamma"):
            _maybe_kw(draw, init, k, _real_arg(POS_GOOD, POS_BAD))
        _maybe_kw(draw, init, "reduction", reductions())
        _maybe_kw(draw, init, "loss_weight", loss_weights())
        c = draw(torch_cases_lgr_cross_entropy())
        fwd = c.args
    else:
        raise AssertionError(name)
    return Case(name, [], init, meta={"forward": fwd})


@st.composite
def torch_cases_guided_loss_scaling(draw):
    vals = (0.0, 1.0, 0.5, 5e-324, 1e-300, 1e30, 1e308, FMAX, 3.0, -1.0, NAN, INF, 1e-10)

    def scal():
        return st.builds(lambda v, dt, g: Tensor(Arr([v], "float64", ()), dt,
                                                 requires_grad=g),
                         st.sampled_from(vals), st.sampled_from(("float32", "float64",
                                                                 "float16")),
                         st.booleans())
    loc = draw(st.one_of(scal(), st.sampled_from([Val(1.0), Val(None)])))
    cls = draw(scal())
    return Case("GuidedLossScaling", [], {}, meta={"forward": [loc, cls]})


@st.composite
def torch_cases_init_prior_bias(draw):
    mod = ModuleSpec(draw(st.sampled_from(["conv", "linear", "linear", "seq", "none"])),
                     bias=draw(st.integers(0, 5)) > 0,
                     dtype=draw(st.sampled_from(("float32", "float64", "float16", "bfloat16"))))
    prior = draw(st.one_of(
        st.sampled_from([Val(0.01), Val(0.5), Val(1e-300), Val(5e-324), Val(1 - 1e-16),
                         Val(0.9999999999999999), Val(1e-10), Val(1e-5)]),
        st.sampled_from([Val(0.0), Val(1.0), Val(NAN), Val(-0.1), Val(INF), Val("0.01"),
                         Val(None), Val(10**400), Val(True), Arr([0.01, 0.02], "float64",
                                                                 (2,))])))
    return Case("init_prior_bias_", [mod, prior])


@st.composite
def torch_cases_bfp(draw):
    init = {}
    if draw(st.integers(0, 4)):
        C = draw(st.integers(1, 3))
        L = draw(st.integers(1, 4))
        init["in_channels"] = Val(C)
        init["num_levels"] = Val(L)
        _maybe_kw(draw, init, "refine_level", st.builds(Val, st.integers(-1, L)))
        _maybe_kw(draw, init, "refine_type", st.sampled_from(
            [Val("non_local"), Val("conv"), Val(None), Val("gc"), Val(3)]))
    else:
        C, L = 2, 2
        init["in_channels"] = draw(st.sampled_from([Val(0), Val(-1), Val(2.5), Val(None),
                                                    Val(10**400), Val(2**40), Val("2"),
                                                    Val(True)]))
        init["num_levels"] = draw(st.sampled_from([Val(0), Val(-1), Val(2), Val(10**400),
                                                   Val(None), Val(2.0)]))
    levels = []
    nlev = L if draw(st.integers(0, 5)) else draw(st.integers(0, L + 1))
    size = draw(st.integers(1, 8))
    for i in range(nlev):
        h = max(1, size >> i) if draw(st.integers(0, 5)) else draw(st.integers(0, 3))
        ch = C if draw(st.integers(0, 7)) else C + 1
        vals = [draw(st.sampled_from([0.0, 1.0, -1.0, 0.5, 100.0, -2.0, 3.0]))
                for _ in range(ch * h * h)]
        levels.append(Tensor(Arr(vals, "float64", (1, ch, h, h)), draw(st.sampled_from(
            ("float32", "float32", "float64"))), requires_grad=draw(st.booleans())))
    fwd = SeqSpec(levels, draw(st.sampled_from(["list", "tuple"])))
    return Case("BalancedFeaturePyramid", [], init, meta={"forward": [fwd]})


# ------------------------------------------------------------------------------ mmdet calls

def _float_tensor(draw, vals, shape, grad=False):
    dt = draw(st.sampled_from(("float32", "float64", "float64", "float16", "bfloat16")))
    lay = draw(st.sampled_from(("c", "c", "strided", "T")))
    return Tensor(Arr(vals, "float64", shape), dt, lay, requires_grad=grad)


def _int_tensor(draw, vals, shape):
    return Tensor(Arr(vals, "int64", shape), draw(st.sampled_from(("int64", "int64", "int32",
                                                                    "uint8", "int8"))))


MMDET_LOGITS = (0.0, 1.0, -1.0, 2.5, -3.0, 0.5, 1e-300, 1e17, -1e17, 65504.0, 1e308, 5e-324)


@st.composite
def mmdet_weights(draw, n, C, binary=True):
    """None, one weight per anchor or per entry (0/1 for the ranking losses, any real for the
    elementwise ones), or a bad one (values, shape, type)."""
    kind = draw(st.sampled_from(("none", "none", "anchor", "anchor", "entry", "bad")))
    good = (0.0, 1.0) if binary else (0.0, 1.0, 0.5, 2.0, 1e30)
    if kind == "none":
        return Val(None)
    if kind in ("anchor", "entry"):
        shape = (n,) if kind == "anchor" else ((n, C) if C is not None else (n,))
        size = int(np.prod(shape))
        vals = [draw(st.sampled_from(good)) for _ in range(size)]
        return Tensor(Arr(vals, "float64", shape), draw(st.sampled_from(
            ("float32", "float32", "float64", "bool", "int64"))))
    return draw(st.sampled_from([
        Tensor(Arr([0.5] * n, "float64", (n,)), "float32"),
        Tensor(Arr([1.0] * (n + 1), "float64", (n + 1,)), "float32"),
        Tensor(Arr([NAN] * n, "float64", (n,)), "float32"),
        Val([1.0] * n), Val("1"),
        Tensor(Arr([1.0] * n, "float64", (n,)), "complex64"),
    ]))


@st.composite
def avg_factors(draw):
    return draw(st.sampled_from([
        Val(None), Val(None), Val(None), Val(5.0), Val(0.5), Val(1e-300), Val(3),
        Tensor(Arr([7.5], "float64", ()), "float32"), Tensor(Arr([2.0], "float64", (1,)),
                                                             "float64"),
        Val(0.0), Val(-1.0), Val(NAN), Val(INF), Val("2"), Val(True), Val(10**400),
        Tensor(Arr([1.0, 2.0], "float64", (2,)), "float32"),
        Tensor(Arr([0.0], "float64", ()), "float32"),
    ]))


@st.composite
def reduction_overrides(draw, elementwise):
    good = [Val(None), Val(None), Val("mean")] + ([Val("sum"), Val("none")] if elementwise
                                                  else [])
    return draw(st.sampled_from(good + [Val("avg"), Val(1), Val("sum") if not elementwise
                                        else Val("max")]))


@st.composite
def torch_cases_module_mmdet(draw, name):
    """A loss module called as mmdetection calls it: ``loss(pred, target, weight=,
    avg_factor=, reduction_override=)``."""
    init = {}
    n = draw(st.integers(0, 7))
    C = draw(st.integers(1, 4))
    wild = draw(st.integers(0, 9)) == 0
    pred_vals = [draw(st.sampled_from(MMDET_LOGITS)) if draw(st.integers(0, 5)) == 0 else
                 float(draw(st.integers(-3, 3))) for _ in range(n * C)]
    pred = _float_tensor(draw, pred_vals, (n, C), grad=draw(st.integers(0, 4)) > 0)
    if wild:
        pred = draw(st.sampled_from([
            Tensor(Arr(pred_vals, "float64", (n, C)), "int64"),
            Tensor(Arr(pred_vals, "float64", (n * C,)), "float32"),
            Tensor(Arr([NAN] + pred_vals[1:], "float64", (n, C)), "float32")
            if n * C else pred,
            Arr(pred_vals, "float64", (n, C))]))
    labels = [draw(st.integers(0, C)) for _ in range(n)]
    if wild and n:
        labels[0] = draw(st.sampled_from([-1, C + 1, 2**40]))
    lab = _int_tensor(draw, labels, (n,))
    fkw = {"weight": draw(mmdet_weights(n, None if name in ("GAPLoss", "LGRCrossEntropyLoss")
                                        else C, binary=name in ("RankSortLoss", "APLoss",
                                                                "GAPLoss"))),
           "avg_factor": draw(avg_factors())}
    elementwise = name in ("BalancedL1Loss", "LGRCrossEntropyLoss")
    fkw["reduction_override"] = draw(reduction_overrides(elementwise))
    if name == "RankSortLoss":
        _maybe_kw(draw, init, "delta", deltas())
        _maybe_kw(draw, init, "method", methods(("bucketed", "dense", "brs")))
        _maybe_kw(draw, init, "loss_weight", loss_weights())
        q = [draw(st.sampled_from((0.0, 0.3, 0.8, 1.0, 0.5, 5e-324))) if y < C else 0.0
             for y in labels]
        if wild and n:
            q[0] = draw(st.sampled_from([1.5, -0.1, NAN]))
        scores = _float_tensor(draw, q, (n,))
        target = SeqSpec([lab, scores], draw(st.sampled_from(["tuple", "tuple", "list"])))
        if wild and draw(st.booleans()):
            target = SeqSpec([lab], "tuple")
    elif name == "APLoss":
        _maybe_kw(draw, init, "delta", deltas())
        _maybe_kw(draw, init, "interpolate", flags())
        _maybe_kw(draw, init, "method", methods(("bucketed", "dense")))
        _maybe_kw(draw, init, "loss_weight", loss_weights())
        form = draw(st.sampled_from(["labels", "labels", "pair", "single"]))
        target = lab if form == "labels" else SeqSpec(
            [lab, _float_tensor(draw, [0.5] * n, (n,))] if form == "pair" else [lab], "tuple")
    elif name == "GAPLoss":
        init["num_classes"] = Val(C)
        _maybe_kw(draw, init, "delta", deltas())
        _maybe_kw(draw, init, "loss_weight", loss_weights())
        _maybe_kw(draw, init, "method", methods(("bucketed", "dense")))
        target = lab
    elif name == "BalancedL1Loss":
        for k in ("alpha", "gamma", "beta"):
            _maybe_kw(draw, init, k, _real_arg(POS_GOOD, POS_BAD))
        _maybe_kw(draw, init, "reduction", reductions())
        _maybe_kw(draw, init, "loss_weight", loss_weights())
        tv = [draw(st.sampled_from(REG_VALUES)) for _ in range(n * C)]
        target = _float_tensor(draw, tv, (n, C))
        fkw["weight"] = draw(mmdet_weights(n, C, binary=False))
        if isinstance(fkw["weight"], Tensor) and fkw["weight"].arr.shape == (n,):
            fkw["weight"] = Tensor(Arr(fkw["weight"].arr.values * C, "float64", (n, C)),
                                   fkw["weight"].dtype) if draw(st.booleans()) else Tensor(
                Arr(fkw["weight"].arr.values, "float64", (n, 1)), fkw["weight"].dtype)
    elif name == "LGRCrossEntropyLoss":
        for k in ("alpha", "gamma"):
            _maybe_kw(draw, init, k, _real_arg(POS_GOOD, POS_BAD))
        _maybe_kw(draw, init, "reduction", reductions())
        _maybe_kw(draw, init, "loss_weight", loss_weights())
        K = C + 1
        pv = [draw(st.sampled_from(MMDET_LOGITS)) if draw(st.integers(0, 5)) == 0 else
              float(draw(st.integers(-3, 3))) for _ in range(n * K)]
        pred = _float_tensor(draw, pv, (n, K), grad=draw(st.integers(0, 4)) > 0)
        target = lab
    else:
        raise AssertionError(name)
    fkw = {k: v for k, v in fkw.items() if not (isinstance(v, Val) and v.value is None
                                                 and draw(st.booleans()))}
    return Case(name, [], init, meta={"forward": [pred, target], "forward_kw": fkw,
                                      "mmdet": True})


@st.composite
def torch_cases_module_any(draw, name):
    """The rankref-style call or the mmdetection call of a loss module."""
    if draw(st.booleans()):
        return draw(torch_cases_module_mmdet(name))
    return draw(torch_cases_module(name))


@st.composite
def torch_cases_register_mmdet(draw):
    prefix = draw(st.sampled_from([Val("RankRef"), Val("RankRef"), Val(""), Val("My"),
                                   Val("1x"), Val("a b"), Val(5), Val(None)]))
    pv = prefix.value if isinstance(prefix.value, str) else "RankRef"
    reg = draw(st.sampled_from([RegistrySpec("fresh"), RegistrySpec("fresh"),
                                RegistrySpec("taken", pv), RegistrySpec("dict"),
                                RegistrySpec("int"), Val(None)]))
    kw = {"prefix": prefix} if draw(st.integers(0, 3)) else {}
    return Case("register_mmdet", [reg], kw, meta={"twice": draw(st.booleans())})


TORCH_CASES = {
    "rank_sort_loss": torch_cases_rank_sort_loss(),
    "ap_loss": torch_cases_ap_loss(),
    "gap_loss": torch_cases_gap_loss(),
    "balanced_l1_loss": torch_cases_balanced_l1_loss(),
    "lgr_cross_entropy": torch_cases_lgr_cross_entropy(),
    "iou_balanced_neg_sample": torch_cases_iou_balanced_neg_sample(),
    "instance_balanced_pos_sample": torch_cases_pos_sample("instance"),
    "class_balanced_pos_sample": torch_cases_pos_sample("class"),
    "RankSortLoss": torch_cases_module_any("RankSortLoss"),
    "APLoss": torch_cases_module_any("APLoss"),
    "GAPLoss": torch_cases_module_any("GAPLoss"),
    "BalancedL1Loss": torch_cases_module_any("BalancedL1Loss"),
    "LGRCrossEntropyLoss": torch_cases_module_any("LGRCrossEntropyLoss"),
    "register_mmdet": torch_cases_register_mmdet(),
    "GuidedLossScaling": torch_cases_guided_loss_scaling(),
    "init_prior_bias_": torch_cases_init_prior_bias(),
    "BalancedFeaturePyramid": torch_cases_bfp(),
}
