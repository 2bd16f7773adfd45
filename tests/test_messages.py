"""Every validation message names the argument the user passed, by its name in that function.

The walk: for each public function of rankref and rankref_gpu (and the methods of
ClassCounts), start from a valid call, replace one argument at a time by each of a set of bad
values, and require every refusal to be a ValueError or TypeError whose message names that
parameter (a few refusals legitimately name the pair of arguments that disagree: ``ALSO``).
Messages with an expected shape state it from the user's own inputs (checked separately).
"""
import inspect
import re

import numpy as np
import pytest

import rankref
import rankref_gpu


def _rng():
    return np.random.default_rng(0)


# a valid call of every public function: positional and keyword arguments
VALID = {
    "heaviside": lambda: ((np.array([0.1, -0.3]), 0.5), {}),
    "sort_scores": lambda: ((np.array([0.3, 0.1]),), {"descending": True}),
    "relaxed_ranks": lambda: ((np.array([0.3, 0.1, 0.2]), np.array([1.0, 0.0, 0.0]), 0.5), {}),
    "make_buckets": lambda: ((np.array([0.3, 0.1, 0.2]), np.array([1.0, 0.0, 0.0]), 0.5,
                              "exact"), {}),
    "average_precision": lambda: ((np.array([0.3, 0.1, 0.2]), np.array([1, 0, 1]), False), {}),
    "rank_sort_loss": lambda: ((np.array([0.3, 0.1, 0.2]), np.array([0.7, 0.0, 0.9]), 0.5,
                                "bucketed"), {"compute_grad": True}),
    "ap_loss": lambda: ((np.array([0.3, 0.1, 0.2]), np.array([1, 0, 1]), 1.0, True, "bucketed"),
                        {"compute_grad": True}),
    "gap_loss": lambda: ((np.array([[0.3, 0.1], [0.2, 0.5], [0.0, 0.4]]), np.array([0, 1, 2]),
                          np.array([3.0, 1.0]), 0.5, 1.0, "bucketed", True, None),
                         {"compute_grad": True}),
    "iou_balanced_neg_sample": lambda: ((np.array([0.1, 0.3, 0.2, 0.0]), 2),
                                        {"num_bins": 3, "floor_thr": -1.0, "floor_fraction": 0.0,
                                         "max_iou": None, "rng": _rng()}),
    "iou_balanced_neg_probabilities": lambda: ((np.array([0.1, 0.3, 0.2, 0.0]), 2),
                                               {"num_bins": 3, "floor_thr": -1.0,
                                                "floor_fraction": 0.0, "max_iou": None}),
    "instance_balanced_pos_sample": lambda: ((np.array([1, 1, 2, 0]), 2), {"rng": _rng()}),
    "class_balanced_pos_sample": lambda: ((np.array([0, 1, 1, 2]), np.array([1, 1, 2, 0]), 2),
                                          {"rng": _rng()}),
    "bucketed_class_weights": lambda: ((np.array([0.5, 0.01, 0.2]), 10, 0.5, 0.025), {}),
    "class_reweighted_targets": lambda: ((np.array([0, 1, 2]), np.array([1.0, 2.0])), {}),
    "balanced_l1_loss": lambda: ((np.array([0.1, 2.0]), np.array([0.0, 0.5]), 0.5, 1.5, 1.0),
                                 {}),
    "lgr_weights": lambda: ((np.array([0.1, 0.9]), 0.5, 1.5), {}),
    "lgr_cross_entropy": lambda: ((np.array([[0.1, 0.9], [1.0, -1.0]]), np.array([0, 1]), 0.5,
                                   1.0), {}),
    "optimal_bias": lambda: ((10, 1000, 3), {}),
    "foreground_prior": lambda: (([np.array([0, 1, 3]), np.array([2, 3])],), {}),
    "guided_scale": lambda: ((0.5, 0.25), {}),
}

# ClassCounts and its methods: (constructor args, method, method args)
METHODS = {
    "ClassCounts": lambda pkg: (pkg.ClassCounts, (3,), {}),
    "ClassCounts.update": lambda pkg: (pkg.ClassCounts(3).update, (np.array([0, 1, 3, -1]),),
                                       {}),
    "ClassCounts.merge": lambda pkg: (pkg.ClassCounts(3).merge, (pkg.ClassCounts(3),), {}),
    "ClassCounts.load_state_dict": lambda pkg: (
        pkg.ClassCounts(3).load_state_dict,
        ({"num_classes": 3, "counts": np.array([1.0, 0.0, 2.0])},), {}),
}

BAD = [
    None, "junk", float("nan"), float("inf"), -1, -2.5, 10**400, True, object(),
    np.array([np.nan, 1.0]), np.array([1 + 1j, 2.0]), [[1.0, 2.0], [3.0]],
    np.zeros((1, 1, 7)), np.zeros(0), np.array([2**60, 1], dtype=np.int64),
    np.array(["a", "b"]), np.array([5, 7]), np.array([-3.0, 2.0]),
]

# refusals that name the two arguments that disagree, or the argument holding the bad value
# under its documented name: parameter -> other names the message may use instead
ALSO = {
    ("gap_loss", "counts"): ("weights", "ClassCounts"),
    ("gap_loss", "weights"): ("counts",),
    ("foreground_prior", "label_batches"): ("label batch",),
    ("ClassCounts.merge", "other"): ("ClassCounts",),
    ("ClassCounts.load_state_dict", "state"): ("num_classes", "counts"),
    ("class_balanced_pos_sample", "labels"): ("assigned_gt_inds",),
    ("class_balanced_pos_sample", "assigned_gt_inds"): ("labels",),
    ("balanced_l1_loss", "pred"): ("target",),
    ("balanced_l1_loss", "target"): ("pred",),
}


def _calls(pkg):
    for name, make in VALID.items():
        func = getattr(pkg, name)
        args, kw = make()
        yield name, func, args, kw
    for name, make in METHODS.items():
        func, args, kw = make(pkg)
        yield name, func, args, kw


def _names(text):
    return set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", text))


def _walk(pkg):
    """(function, parameter, bad value, message) of every refusal, and the failures."""
    failures = []
    refusals = 0
    for name, func, args, kw in _calls(pkg):
        target = func.__init__ if isinstance(func, type) else func
        params = [p for p in inspect.signature(target).parameters.values()
                  if p.name not in ("self", "cls")]
        func(*args, **kw)  # the valid call works
        for i, p in enumerate(params):
            for bad in BAD:
                a, k = list(args), dict(kw)
                if i < len(a) and p.kind != p.KEYWORD_ONLY:
                    a[i] = bad
                elif p.name in k or p.kind == p.KEYWORD_ONLY:
                    k[p.name] = bad
                else:
                    continue
                if name in METHODS or name in ("iou_balanced_neg_sample",
                                               "instance_balanced_pos_sample",
                                               "class_balanced_pos_sample"):
                    # a fresh object and generator for every call
                    func, a0, k0 = (METHODS[name](pkg) if name in METHODS else
                                    (getattr(pkg, name), *VALID[name]()))
                    k = {kk: (bad if kk == p.name else vv) for kk, vv in k0.items()}
                    a = [bad if j == i else v for j, v in enumerate(a0)]
                try:
                    func(*a, **k)
                except (ValueError, TypeError) as exc:
                    refusals += 1
                    msg = str(exc)
                    allowed = {p.name, *ALSO.get((name, p.name), ())}
                    words = _names(msg)
                    if not any(al in words or (" " in al and al in msg) for al in allowed):
                        failures.append(f"{pkg.__name__}.{name}({p.name}={bad!r:.40}): {msg}")
                    elif not (_names(msg) & {q.name for q in params} or " " in msg):
                        failures.append(f"{pkg.__name__}.{name}: names no parameter: {msg}")
                except Exception as exc:  # noqa: BLE001
                    failures.append(f"{pkg.__name__}.{name}({p.name}={bad!r:.40}): "
                                    f"{type(exc).__name__}: {exc}")
    return refusals, failures


@pytest.mark.parametrize("pkg", [rankref, rankref_gpu], ids=["rankref", "rankref_gpu"])
def test_every_message_names_the_argument(pkg):
    refusals, failures = _walk(pkg)
    assert refusals > 300  # the walk reached the validation of every function
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("pkg", [rankref, rankref_gpu], ids=["rankref", "rankref_gpu"])
def test_shapes_in_messages_come_from_the_inputs(pkg):
    """Issue 21: the expected shape is computed from the user's own inputs, and the message
    names the function's own argument (no "scores" where there is none)."""
    with pytest.raises(ValueError, match=r"labels must be a 1-D array .* got shape \(\)") as e:
        pkg.class_reweighted_targets(np.int64(1), np.ones(2))
    assert "scores" not in str(e.value) and "(0,)" not in str(e.value)
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\), one label per row of "
                                         r"logits \(which has shape \(2, 3\)\); got \(3,\)"):
        pkg.lgr_cross_entropy(np.zeros((2, 3)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\), one label per row of "
                                         r"scores \(which has shape \(4, 2\)\)"):
        pkg.gap_loss(np.zeros((4, 2)), np.zeros(3, dtype=int), None, weights=np.ones(2))
    with pytest.raises(ValueError, match=r"^kind must be one of 'exact', 'brs' for make_buckets, "
                                         r"got 'bucketed'"):
        pkg.make_buckets([0.0, 1.0], [1, 0], 0.5, "bucketed")
    with pytest.raises(ValueError, match=r"targets has shape \(2,\) but logits has shape \(3,\)"):
        pkg.ap_loss(np.zeros(3), np.zeros(2))
