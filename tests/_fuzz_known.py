"""Explicit examples run first by every profile (hypothesis ``@example``): the reproducers of
issue 12 and the findings of the fuzz campaigns, so that CI checks each of them on every run.
"""
import numpy as np

from _fuzz_specs import (Arr, Case, Counts, DictSpec, NpScalar, RegistrySpec, Rng, SeqSpec,
                         Tensor, Val)

NAN, INF = float("nan"), float("inf")


def f64(vals, shape=None):
    vals = list(vals)
    return Arr(vals, "float64", shape if shape is not None else (len(vals),))


def i64(vals, shape=None):
    vals = list(vals)
    return Arr(vals, "int64", shape if shape is not None else (len(vals),))


def u64(vals):
    vals = list(vals)
    return Arr(vals, "uint64", (len(vals),))


def _spec(v):
    return v if hasattr(v, "build") else Val(v)


def rs(x, t, **kw):
    return Case("rank_sort_loss", [x, t], {k: _spec(v) for k, v in kw.items()})


def ap(x, t, **kw):
    return Case("ap_loss", [x, t], {k: _spec(v) for k, v in kw.items()})


def gap(s, y, counts, **kw):
    return Case("gap_loss", [s, y, counts], {k: (v if hasattr(v, "build") else Val(v))
                                             for k, v in kw.items()})


def cc(nc, *steps):
    return Case("ClassCounts", [Val(nc) if not hasattr(nc, "build") else nc],
                meta={"steps": list(steps)})


# ------------------------------------------------------------------------------ rankref(+_gpu)

KNOWN = {
    "rank_sort_loss": [
        # ties below the logits' resolution: the exact answer counts H(0) = 1/2
        rs(f64([1.0, 1.0]), f64([1.0, 0.0]), delta=1e-300),
        rs(f64([1e17, 1e17]), f64([1.0, 0.0]), delta=0.5),
        # extreme delta
        rs(f64([0.0, 1.0]), f64([1.0, 0.0]), delta=1e308),
        rs(f64([-1e308, 1e308, 0.0]), f64([1.0, 0.0, 0.0]), delta=1e300),
        rs(f64([0.0, 0.0, 0.0]), f64([1.0, 0.0, 0.0]), delta=5e-324),
        # huge spread: the bucketed sums lose the small offsets
        rs(Arr([-2147483648, 0, -2147483648, 1, -2147483648, 1, 2147483647, 2147483644],
               "int32", (8,)), Arr([0, 1, 1, 0, 1, 0, 0, 1], "int8", (8,)),
           delta=37.92845691774583),
        # integers beyond 2**53: rounded to float64 before ranking
        rs(Arr([2**63 + 1, 2**63], "uint64", (2,)), f64([1.0, 0.0]), delta=0.0),
        # x_i -+ delta not representable although delta is above the resolution
        rs(f64([1e16, 1e16 + 2]), f64([1.0, 0.0]), delta=3.0),
        # a flag of the wrong type is accepted silently
        rs(f64([1.0, 0.0]), f64([1.0, 0.0]), compute_grad="False"),
    ],
    "sort_scores": [Case("sort_scores", [f64([1.0, 2.0])], {"descending": Val("False")})],
    "average_precision": [
        Case("average_precision", [Arr([2**63 - 2, 2**63 - 1], "int64", (2,)), i64([0, 1])]),
        Case("average_precision", [f64([1.0, 2.0]), i64([1, 0])], {"interpolate": Val("yes")}),
    ],
    "relaxed_ranks": [
        Case("relaxed_ranks", [f64([1e6, 1e6]), f64([1.0, 0.0])], {"delta": Val(1e-10)}),
        Case("relaxed_ranks", [f64([1e308, 1e308]), f64([1.0, 0.0])], {"delta": Val(0.5)}),
        Case("relaxed_ranks", [f64([0.0, 1.0]), f64([1.0, 0.0])],
             {"delta": Val(1.7976931348623157e308)}),
    ],
    "ap_loss": [
        ap(f64([1e17, 1e17]), i64([1, 0]), delta=1.0),
        ap(f64([1e16, 1e16 + 2]), i64([1, 0]), delta=3.0),
        ap(f64([0.0, 0.0, 0.0]), f64([1.0, 0.0, 0.0]), delta=5e-324),
        ap(f64([2.0, -2.0, 0.0, 1.0]), f64([1.0, 0.0, 1.0, 0.0]), delta=1.7976931348623157e308),
    ],
    "gap_loss": [
        gap(f64([1e17] * 4, (2, 2)), i64([0, 1]), Val(None), delta=1.0,
            weights=f64([1.0, 1.0])),
        gap(f64([1.0] * 3, (1, 3)), i64([0]), Val(None), delta=1e308,
            weights=f64([1.0, 1.0, 1.0])),
        gap(f64([0.0] * 3, (1, 3)), i64([0]), Val(None), delta=5e-324,
            weights=f64([1.0, 1.0, 1.0])),
        gap(Arr([0.0] * 16, "float32", (4, 4)), i64([0, 1, 2, 3]), Val(None),
            weights=f64([1e308] * 4)),
        gap(f64([0.0] * 4, (2, 2)), u64([2**64 - 1, 0]), f64([1.0, 1.0])),
        gap(f64([0.0] * 4, (2, 2)), i64([0, 1]), Val(None),
            weights=Arr([complex(1, 5), 1], "complex128", (2,))),
        gap(f64([0.0] * 4, (2, 2)), i64([0, 1]), Val(None), weights=Val(["a", "b"])),
        gap(Arr([10000.0] * 7, "float16", (7, 1)), i64([0, -1, 0, 0, -1, 0, 1]), Val(None),
            delta=1.3642420526593924e-12, exclude_foreground=False, weights=f64([1.0])),
        gap(f64([0.0] * 4, (2, 2)), i64([0, 1]), Val("counts"), weights=f64([1.0, 1.0])),
        gap(f64([1.0, -2.0, 3.0, -3.0], (1, 4)), i64([2]), Val([0, 100, 2**63 - 1, 0]),
            delta=1e200, gamma=10.0, exclude_foreground=False),
    ],
    "make_buckets": [
        Case("make_buckets", [f64([255.0, 255.0]), f64([0.0, 1.0])], {"delta": Val(1e300)}),
        Case("make_buckets", [f64([-3.0, -3.0, 5.0]), f64([0.0, 0.0, 1.0])],
             {"delta": Val(1e200), "kind": Val("brs")}),
        Case("make_buckets", [f64([2.0, 2.0]), f64([1.0, 0.0])], {"delta": Val(1e-300)}),
        Case("make_buckets", [f64([5e-324, 5e-324, 0.0]), f64([0.0, 0.0, 1.0])]),
    ],
    "heaviside": [
        Case("heaviside", [Val(INF), Val(1e308)]),
        Case("heaviside", [f64([1.0]), Val(10**400)]),
    ],
    "balanced_l1_loss": [
        Case("balanced_l1_loss", [Val([1e308]), Val([-1e308])]),
        Case("balanced_l1_loss", [Val([0.0]), Val([1.0])], {"alpha": Val(1e-3)}),
        Case("balanced_l1_loss", [f64([2.0]), f64([3.0])],
             {"alpha": Val(1.0), "gamma": Val(1e-10)}),
        Case("balanced_l1_loss", [Val([0.0]), Val([0.0])],
             {"alpha": Val(1.0), "gamma": Val(1e-300)}),
        Case("balanced_l1_loss", [Val([1e-300]), Val([0.0])]),
    ],
    "lgr_cross_entropy": [
        Case("lgr_cross_entropy", [Val([[-1e308, 1e308]]), Val([0])]),
        Case("lgr_cross_entropy", [Val([[0.0, 1.0]]), Val([0])], {"alpha": Val(1e-3)}),
        Case("lgr_cross_entropy", [Val([[0.0, 1.0, 2.0]]), Val([3])]),
    ],
    "lgr_weights": [
        Case("lgr_weights", [Val([0.7])], {"alpha": Val(1e-300), "gamma": Val(1e300)}),
        Case("lgr_weights", [Val([0.5])], {"alpha": Val(1e-3)}),
        Case("lgr_weights", [Val([0.0])], {"alpha": Val(1.5), "gamma": Val(1e-10)}),
        Case("lgr_weights", [Val([1.1754943508222875e-38])]),
    ],
    "guided_scale": [Case("guided_scale", [Val(1.0), Val(5e-324)])],
    "optimal_bias": [
        Case("optimal_bias", [Val(1e-300), Val(1e10)]),
        Case("optimal_bias", [Val(1e300), Val(1e300), Val(10**10)]),
        Case("optimal_bias", [Val(10**400), Val(10**401)]),
    ],
    "ClassCounts": [
        cc(2, ("update", [u64([2**64 - 1])])),
        cc(2**63),
        cc(2, ("load_state_dict", [DictSpec({"counts": f64([1.0, 1.0])})])),
        cc(2, ("load_state_dict", [DictSpec({"num_classes": Val(2.5),
                                             "counts": f64([1.0, 1.0])})])),
        cc(2, ("load_state_dict", [DictSpec({"num_classes": Val(2),
                                             "counts": f64([1e308, 1e308])})]),
           ("merge", [Counts(2, [1e308, 1e308])])),
    ],
    "instance_balanced_pos_sample": [
        Case("instance_balanced_pos_sample", [u64([0, 2**63 + 1, 2**63 + 1, 1]), Val(3)],
             {"rng": Rng("np", 0)}),
    ],
    "iou_balanced_neg_sample": [
        Case("iou_balanced_neg_sample", [f64([0.1, 0.2]), Val(10**400)], {"rng": Rng("np", 0)}),
        Case("iou_balanced_neg_sample", [f64([i / 40 for i in range(40)]), Val(10)],
             {"num_bins": Val(10**9), "rng": Rng("np", 0)}),
    ],
    "foreground_prior": [Case("foreground_prior", [Val(5)])],
    "iou_balanced_neg_probabilities": [
        Case("iou_balanced_neg_probabilities", [f64([0.1, 0.2]), Val(10**400)]),
        Case("iou_balanced_neg_probabilities", [f64([0.1, 0.2, 0.3, 0.4]), Val(1)],
             {"floor_fraction": Val(-(10**400))}),
    ],
    "class_balanced_pos_sample": [
        Case("class_balanced_pos_sample", [u64([2**64 - 1]), u64([2**64 - 1]), Val(8)],
             {"rng": Rng("np", 0)}),
    ],
    "class_reweighted_targets": [
        Case("class_reweighted_targets", [u64([2**64 - 1]), Val([0.5])]),
    ],
    "bucketed_class_weights": [
        Case("bucketed_class_weights", [Val([1.0, 10.0])], {"a": Val(10**400)}),
        Case("bucketed_class_weights", [Val([1.0, 10.0])], {"t": Val(5e-324)}),
    ],
}


def ld(vals):
    """A long-double array (values as strings, exact beyond float64)."""
    vals = list(vals)
    return Arr(vals, "longdouble", (len(vals),))


MAX = 1.7976931348623157e308

# the second campaign (merged main): every root cause found, with the library's answers checked
# by the exact oracle (e.g. the relaxed ranks below are [1.72, 1.72, 2.83, 1.72], not 2 each)
_MORE = {
    "relaxed_ranks": [
        Case("relaxed_ranks", [f64([1e300, MAX, -1e300, -1e308, 1e300]), i64([1, 0, 1, 1, 1])],
             {"delta": Val(1.7976931248623157e308)}),
        Case("relaxed_ranks", [Arr([2**63 - 1, 0], "int64", (2,)), f64([1.0, 0.0])]),
    ],
    "rank_sort_loss": [
        rs(f64([1.0, 0.0]), f64([1.0, 0.0]), delta=NpScalar("longdouble", "1e-4000")),
        rs(f64([1.0, 0.0]), f64([1.0, 0.0]), compute_grad=Arr([1, 0], "bool", (2,))),
        rs(ld(["1", "1.0000000000000000000001"]), f64([1.0, 0.0])),
        rs(f64([1.0, 0.0]), ld(["1.0000000000000000000001", "0"])),
    ],
    "ap_loss": [ap(f64([1.0, 0.0]), f64([1.0, 0.0]), interpolate=None)],
    "gap_loss": [
        gap(f64([0.0] * 4, (2, 2)), i64([0, 1]), Val([float("nan"), 1.0]),
            weights=f64([1.0, 1.0])),
        gap(f64([0.0] * 4, (2, 2)), i64([0, 1]), Val(None), weights=f64([1.0, 1.0]),
            exclude_foreground=Val("False")),
        gap(Arr([0.0] * 4, "float32", (2, 2)), i64([0, 1]), Val(None),
            weights=f64([3.5e38, 1.0])),
    ],
    "make_buckets": [
        Case("make_buckets", [f64([-MAX, -MAX, MAX]), i64([0, 0, 0])]),
        Case("make_buckets", [f64([1e308, 1e308, 0.0]), f64([0.0, 0.0, 1.0])]),
        Case("make_buckets", [f64([-1.0000000000000003e300, -1.0000000000000002e300, -1e300,
                                   -1.0000000000000003e300, -9.999999999999999e299,
                                   -9.999999999999999e299, -1.0000000000000003e300,
                                   -1.0000000000000003e300, -1e300]),
                              f64([0.0, 0.0, 0.0, 0.0, -1.0, 0.7, 0.0, 0.7, 0.7])]),
        Case("make_buckets", [f64([0.0]), f64([-1.0])]),
    ],
    "sort_scores": [Case("sort_scores", [Arr([2**63 - 1, 2**63 - 2], "int64", (2,))],
                         {"descending": Val(None)})],
    "heaviside": [Case("heaviside", [f64([0.0]), NpScalar("longdouble", "1e-4000")])],
    "balanced_l1_loss": [
        Case("balanced_l1_loss", [Val([0.5]), Val([0.0])], {"alpha": Val(5e-324)}),
        Case("balanced_l1_loss", [Val([1e308]), Val([-1e308])], {"gamma": Val(0.1)}),
        Case("balanced_l1_loss", [f64([1e-320, 0.25, 3.0]), f64([0.0, 0.0, 0.0])],
             {"alpha": Val(1e300), "gamma": Val(1e-300), "beta": Val(0.3)}),
        Case("balanced_l1_loss", [f64([1e300]), f64([0.0])],
             {"alpha": Val(1e300), "gamma": Val(1e300), "beta": Val(1e300)}),
        Case("balanced_l1_loss", [f64([1e-10, 0.999]), f64([0.0, 0.0])],
             {"alpha": Val(1e-3), "gamma": Val(0.5), "beta": Val(7.0)}),
        Case("balanced_l1_loss", [Arr([0.0], "float64", ()), Arr([2.0], "float64", ())]),
    ],
    "lgr_weights": [
        Case("lgr_weights", [Val([0.0])], {"alpha": Val(1e-3)}),
        Case("lgr_weights", [Val([5e-324, 1e-320, 0.3])], {"alpha": Val(3.0),
                                                         "gamma": Val(1e300)}),
    ],
    "lgr_cross_entropy": [
        Case("lgr_cross_entropy", [Val([[-1e308, 1e308]]), Val([0])], {"gamma": Val(0.4)}),
        Case("lgr_cross_entropy", [Val([[0.0, -800.0]]), Val([0])],
             {"alpha": Val(1.7e308), "gamma": Val(1.7e308)}),
        Case("lgr_cross_entropy", [Val([[1e308, -1e308]]), Val([0])],
             {"alpha": Val(3.0), "gamma": Val(1e300)}),
        Case("lgr_cross_entropy", [Val([[0.0, 1.0]]), u64([2**64 - 1])]),
    ],
    "optimal_bias": [
        Case("optimal_bias", [Val(1), Val(10**400)]),
        Case("optimal_bias", [Val(100), Val(1e308), Val(3)]),
        Case("optimal_bias", [NpScalar("longdouble", "1e-4000"), Val(1.0)]),
    ],
    "guided_scale": [
        Case("guided_scale", [Val(2**64), Val(1.0)]),
        Case("guided_scale", [Val(1e308), Val(0.5)]),
        Case("guided_scale", [Arr([-5], "m8[s]", ()), Val(0.5)]),
    ],
    "ClassCounts": [
        cc(2**31),
        cc(2, ("load_state_dict", [Val(None)])),
        cc(2, ("load_state_dict", [DictSpec({"num_classes": Val("2"), "counts": f64([1.0, 1.0])})])),
        cc(2, ("load_state_dict", [DictSpec({"num_classes": Val(2), "counts": f64([1.0, 1.0]),
                                             "extra": Val(1)})])),
        cc(2, ("load_state_dict", [DictSpec({"num_classes": Val(2),
                                             "counts": Arr([complex(1, 2), 1], "complex128",
                                                           (2,))})])),
        cc(2, ("load_state_dict", [DictSpec({"num_classes": Val(2),
                                             "counts": f64([2.0**53, 0.0])})]),
           ("update", [i64([0])])),
        cc(2, ("add", [Val(5)])),
        cc(2, ("weights", [Val(10**400)])),
    ],
    "iou_balanced_neg_probabilities": [
        Case("iou_balanced_neg_probabilities", [f64([0, 0, 0, 0, 0, 1, 0]), Val(6)],
             {"num_bins": Val(2**64), "max_iou": Val(5e-324)}),
        Case("iou_balanced_neg_probabilities", [f64([i / 40 for i in range(40)]), Val(30)],
             {"num_bins": Val(13), "max_iou": Val(1.0)}),
        Case("iou_balanced_neg_probabilities", [ld(["0.3", "0.5"]), Val(1)]),
    ],
    "foreground_prior": [Case("foreground_prior", [Val(None)]),
                         Case("foreground_prior", [Val("abc")])],
}
for _name, _cases in _MORE.items():
    KNOWN.setdefault(_name, []).extend(_cases)

# findings of the campaigns in the engine (fixed: float32 scatter of a rescaled problem, a 0-d
# dense grad, BRS runs spanning the float range), kept as regression examples
_ENGINE = {
    "rank_sort_loss": [
        # float16/float32 logits with delta > 2**960: the rescaled logits are float64, the
        # gradient float32, and the scatter kernel refuses the mix ("Buffer dtype mismatch")
        rs(Arr([0.0, 1.0], "float32", (2,)), f64([1.0, 0.0]), delta=1e300),
        # method='dense' on 0-d logits: grad = ranking_grad + sorting_grad is a NumPy scalar
        rs(Arr([1.0], "float64", ()), Arr([1.0], "float64", ()), method="dense"),
    ],
    "ap_loss": [ap(Arr([0.0, 1.0], "float32", (2,)), f64([1.0, 0.0]), delta=1e300)],
    # brs_runs (the BRS runs) leaks "overflow encountered in subtract" / "in reduce" when the
    # logits span more than float64's range (make_buckets' own sums and means are right)
    "make_buckets": [Case("make_buckets", [f64([0.0, -1e308, 1.7976931348623157e308]),
                                           f64([0.0, 1.0, 0.0])],
                          {"delta": Val(5.0), "kind": Val("brs")}),
                     # rankref_gpu: a partial sum overflowing (summed again at a scale), and a
                     # mean clamped into its bucket rather than into its members' range
                     Case("make_buckets", [f64([-1.7976931348623157e308] * 2
                                               + [1.7976931348623157e308]), i64([0, 0, 0])]),
                     Case("make_buckets", [f64([-1.0000000000000003e300, -1.0000000000000002e300,
                                                -1e300, -1.0000000000000003e300,
                                                -9.999999999999999e299, -9.999999999999999e299,
                                                -1.0000000000000003e300,
                                                -1.0000000000000003e300, -1e300]),
                                           f64([0.0, 0.0, 0.0, 0.0, -1.0, 0.7, 0.0, 0.7, 0.7])])],
    "gap_loss": [gap(Arr([0.0] * 4, "float32", (2, 2)), i64([0, 1]), Val(None), delta=1e300,
                     weights=f64([1.0, 1.0])),
                 # c / (2 delta) beyond the float range: the scatter divides instead
                 gap(f64([-1.9, -2.00001, -1.9], (1, 3)), i64([0]), Val(None), delta=4.9e-300,
                     weights=f64([1e300, 1e300, 1.0]))],
}
# BRS runs whose offsets from their lowest member exceed the float range (the means)
_ENGINE["make_buckets"] += [
    Case("make_buckets", [f64([0.0, -1e308, -1e300, 1.7976931348623157e308, 1e300]),
                          i64([0, 1, -1, 0, 0])], {"delta": Val(5.0), "kind": Val("brs")}),
    Case("make_buckets", [f64([0.0, 0.0, 0.0, 1.7976931348623157e308, 1.7976931348623157e308]),
                          i64([0, 1, -1, 0, 0])], {"delta": Val(5.0), "kind": Val("brs")}),
]
for _name, _cases in _ENGINE.items():
    KNOWN.setdefault(_name, []).extend(_cases)


# issue 21: relative accuracy of small losses and tiny qualities, arrays of other frameworks,
# messages naming the function's own argument
_ISSUE21 = {
    "ap_loss": [
        ap(f64([0.0, -0.999999999]), i64([1, 0]), delta=1.0),
        ap(f64([0.0, -0.999999999]), i64([1, 0]), delta=1.0, method="dense"),
        ap(f64([3.0, 3.25, 2.0000000001, -7.0]), i64([1, 1, 0, 0]), delta=1.0,
           interpolate=False),
        ap(f64([0.1, -0.899999999]), i64([1, 0]), delta=1.0),  # (x_j - x_i) + delta cancels
        ap(Arr([0.3, 1.0], "float64", (2,), "torch"), Arr([1, 0], "int64", (2,), "torch")),
        ap(Arr([0.3, 1.0], "float64", (2,), "dlpack"), Arr([1, 0], "int64", (2,), "arrayobj")),
    ],
    "rank_sort_loss": [
        rs(f64([0.0, 0.25, -0.4999999999]), f64([1e-300, 5e-301, 0.0]), delta=0.5),
        rs(f64([0.0, 0.25, 0.5, -0.4999999999]), f64([1e-300, 5e-324, 2e-300, 0.0])),
        rs(f64([0.0, 0.1, 0.2]), f64([0.7, 0.7 - 2**-53, 0.7 + 2**-52])),
        rs(f64([0.0, -0.999999999]), f64([0.9, 0.0]), delta=1.0, method="dense"),
        rs(Arr([0.3, 1.0], "float32", (2,), "torch"), f64([1.0, 0.0])),
    ],
    "gap_loss": [
        gap(f64([5.0, -0.49999999999, -0.49999999999, 5.0], (2, 2)), i64([0, 1]),
            f64([1.0, 1.0]), delta=0.5),
    ],
    "class_reweighted_targets": [
        Case("class_reweighted_targets", [NpScalar("int64", 1), f64([1.0, 1.0])], {}),
    ],
    "lgr_cross_entropy": [
        Case("lgr_cross_entropy", [f64([0.0] * 6, (2, 3)), i64([0, 0, 0])], {}),
    ],
    "make_buckets": [
        Case("make_buckets", [f64([0.0, 1.0]), i64([1, 0])], {"delta": Val(0.5),
                                                              "kind": Val("bucketed")}),
    ],
    "heaviside": [
        Case("heaviside", [f64([-0.999999999, -0.9999999999999999, 1e-300]), Val(1.0)], {}),
    ],
}
# campaign of issue 21: alpha * beta beyond the float range while the loss is not
_ISSUE21["balanced_l1_loss"] = [
    Case("balanced_l1_loss", [Arr([-9.780107498168945, -5.200742244720459, -9.0], "float32", (3,)),
                              f64([-1.0, 6.43940832356137, 2.0])],
         {"alpha": Val(7.944074874948582e+307), "gamma": Val(1e-10), "beta": Val(3.0)}),
]
_ISSUE21["guided_scale"] = [
    Case("guided_scale", [Arr([21], "int16", (), "arrayobj"), NpScalar("float32", 0.5)], {}),
    Case("guided_scale", [Val(7), Arr([22], "int16", (), "torch")], {}),
]
for _name, _cases in _ISSUE21.items():
    KNOWN.setdefault(_name, []).extend(_cases)


# ------------------------------------------------------------------------------ rankref.torch

def _t(vals, dtype="float32", shape=None, grad=False, device="cpu"):
    vals = list(vals)
    return Tensor(Arr(vals, "float64", shape if shape is not None else (len(vals),)), dtype,
                  requires_grad=grad, device=device)


TORCH_KNOWN = {
    "GAPLoss": [
        Case("GAPLoss", [], {"num_classes": Val(3)},
             meta={"forward": [_t([0.0] * 6, shape=(2, 3)), _t([0.7, 1.9])], "calls": 1}),
    ],
    "RankSortLoss": [
        Case("RankSortLoss", [], {"loss_weight": Val(NAN)},
             meta={"forward": [_t([1.0, 0.0], grad=True), _t([1.0, 0.0])]}),
    ],
    "rank_sort_loss": [
        Case("rank_sort_loss", [_t([0.0] * 3, device="meta"), _t([0.0] * 3, device="meta")]),
    ],
    "init_prior_bias_": [
        Case("init_prior_bias_", [__import__("_fuzz_specs").ModuleSpec("linear"), Val(5e-324)]),
    ],
    "GuidedLossScaling": [
        Case("GuidedLossScaling", [], {}, meta={"forward": [
            Tensor(Arr([1.0], "float64", ()), "float64"),
            Tensor(Arr([5e-324], "float64", ()), "float64")]}),
        Case("GuidedLossScaling", [], {}, meta={"forward": [
            Val(1.0), Tensor(Arr([1.0], "float64", ()), "float32")]}),
    ],
    "APLoss": [
        Case("APLoss", [], {"loss_weight": Val(1e308)},
             meta={"forward": [_t([0.0] * 3, grad=True), _t([0.0] * 3)]}),
        Case("APLoss", [], {"loss_weight": Val(INF)},
             meta={"forward": [_t([1.0, 0.0], grad=True), _t([1.0, 0.0])]}),
    ],
    "BalancedL1Loss": [
        Case("BalancedL1Loss", [], {}, meta={"forward": [_t([], grad=True), _t([])]}),
    ],
    "balanced_l1_loss": [
        Case("balanced_l1_loss", [Tensor(Arr([0.0], "float64", ()), "float32", requires_grad=True),
                                  Tensor(Arr([0.5], "float64", ()), "float32")]),
    ],
    "iou_balanced_neg_sample": [
        Case("iou_balanced_neg_sample", [_t([0.1, 0.2]), Val(10**400)], {"rng": Rng("np", 0)}),
    ],
    "BalancedFeaturePyramid": [
        Case("BalancedFeaturePyramid", [], {"in_channels": Val(1), "num_levels": Val(2),
                                            "refine_level": Val(1), "refine_type": Val(None)},
             meta={"forward": [SeqSpec([Tensor(Arr([0.0] * 4, "float64", (1, 1, 2, 2)),
                                               "float32"),
                                        Tensor(Arr([0.0] * 2, "float64", (1, 2, 1, 1)),
                                               "float32")])]}),
    ],
}

_TORCH_MORE = {
    "GuidedLossScaling": [
        Case("GuidedLossScaling", [], {}, meta={"forward": [
            Tensor(Arr([1e-10], "float64", ()), "float32", requires_grad=True),
            Tensor(Arr([1e30], "float64", ()), "float32", requires_grad=True)]}),
        Case("GuidedLossScaling", [], {}, meta={"forward": [
            Tensor(Arr([1.0], "float64", ()), "float64"),
            Tensor(Arr([float("nan")], "float64", ()), "float64")]}),
    ],
    "RankSortLoss": [
        Case("RankSortLoss", [], {"delta": Val(0.25)}, meta={"mmdet": True, "forward": [
            _t([0.0, 1.0, 2.0, -1.0], "float16", (2, 2), grad=True),
            SeqSpec([Tensor(Arr([0, 1], "int64", (2,)), "int64"),
                     Tensor(Arr([0.3, 1.0], "float64", (2,)), "float64")], "tuple")],
            "forward_kw": {"avg_factor": Val(1e-300)}}),
        Case("RankSortLoss", [], {"loss_weight": Val(1e308)},
             meta={"forward": [_t([1.0, 0.0], grad=True), _t([1.0, 0.0])]}),
    ],
    "GAPLoss": [
        Case("GAPLoss", [], {"num_classes": Val(1)}, meta={"forward": [
            _t([11.0, -9.0], "float32", (2, 1), grad=True),
            Tensor(Arr([2**63 - 1, 0], "int64", (2,)), "int64")], "calls": 2}),
        Case("GAPLoss", [], {"num_classes": Val(2**31)},
             meta={"forward": [_t([0.0] * 2, shape=(1, 2)), Tensor(Arr([0], "int64", (1,)),
                                                                    "int64")]}),
    ],
    "LGRCrossEntropyLoss": [
        Case("LGRCrossEntropyLoss", [], {"alpha": Val(5e-324), "loss_weight": Val(2.0)},
             meta={"mmdet": True, "forward": [
                 _t([0.0, 3.0, 1.0, 1.0, 0.0, -1.0, -3.0, 1.0], "float16", (2, 4), grad=True),
                 Tensor(Arr([3, 1], "int64", (2,)), "int32")],
                 "forward_kw": {"weight": Tensor(Arr([1e30, 0.0], "float64", (2,)),
                                                 "float64")}}),
        Case("LGRCrossEntropyLoss", [], {}, meta={"forward": [
            _t([0.0, 1.0, 2.0]), Tensor(Arr([0], "int64", (1,)), "int64")]}),
    ],
    "BalancedL1Loss": [
        Case("BalancedL1Loss", [], {"reduction": Val("sum")}, meta={"forward": [
            _t([3e38, -3e38], grad=True), _t([-3e38, 3e38])]}),
    ],
    "BalancedFeaturePyramid": [
        Case("BalancedFeaturePyramid", [], {"in_channels": Val(2), "num_levels": Val(3),
                                            "refine_type": Val("non_local")},
             meta={"forward": [SeqSpec([Tensor(Arr([-2.0, 3.0], "float64", (1, 2, 1, 1)),
                                               "float64"),
                                        Tensor(Arr([3.0, -1.0], "float64", (1, 2, 1, 1)),
                                               "float32"),
                                        Tensor(Arr([0.5, -1.0], "float64", (1, 2, 1, 1)),
                                               "float64")])]}),
        Case("BalancedFeaturePyramid", [], {"in_channels": Val(2**40), "num_levels": Val(2)},
             meta={"forward": [SeqSpec([])]}),
    ],
    "register_mmdet": [
        Case("register_mmdet", [RegistrySpec("fresh")], {}, meta={"twice": True}),
        Case("register_mmdet", [RegistrySpec("taken")], {}),
        Case("register_mmdet", [RegistrySpec("dict")], {}),
        Case("register_mmdet", [RegistrySpec("fresh")], {"prefix": Val("1x")}),
        Case("register_mmdet", [Val(None)], {}),
    ],
    "init_prior_bias_": [
        Case("init_prior_bias_", [__import__("_fuzz_specs").ModuleSpec("linear", True,
                                                                       "float16"),
                                  Val(1e-300)]),
    ],
}
for _name, _cases in _TORCH_MORE.items():
    TORCH_KNOWN.setdefault(_name, []).extend(_cases)

__all__ = ["KNOWN", "TORCH_KNOWN", "np", "NpScalar", "SeqSpec"]
