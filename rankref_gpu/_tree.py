r"""Window sums of the relaxed step with array primitives: a static segment tree.

Every sum here is ``S(q) = sum_k W_k H_delta(x_k - q)`` over a set of members ``k`` (keys
``x_k`` sorted ascending, weights ``W_k >= 0``) for query points ``q``.  ``H = 1`` on the
members at or above ``q + delta`` (their weights are added: the "above" part) and affine on the
window ``[q - delta, q + delta)``, located exactly with the thresholds' rounding errors
(TwoSum), whatever delta.  Inside a window,

.. math::

    2 \sum_{k \in v} W_k H(x_k - q) = O_v + W_v \frac{(L_v - q) + \delta}{\delta},\qquad
    O_v = \sum_{k \in v} W_k \frac{x_k - L_v}{\delta} \ge 0,

for every node ``v`` of a segment tree, ``L_v`` being the key of its leftmost leaf.  The tree is
built level by level (``log2`` vectorised steps, ``join(l, r) = (W_l + W_r,
O_l + O_r + W_r (L_r - L_l)/delta, L_l)``) and queried with the canonical decomposition of the
iterative segment tree, vectorised over the queries and over the levels at once: at level
``k`` the range ``[l, r)`` of leaves is ``[ceil(l / 2^k), floor(r / 2^k))`` and its odd ends are
canonical nodes.  Every node of a window lies inside it, so each term added is non-negative
and relative errors stay O(depth eps), whatever the spreads (no prefix differences).  Nodes
that never lie inside a window may hold inf (huge spans, tiny delta); they are never read.

Sets that grow in IoU or class order ("the members of strictly earlier groups") are summed
offline by a divide and conquer over the bits of the group rank: for the pair ``g_k < g_i`` the
highest differing bit ``l`` has ``g_k`` bit 0 and ``g_i`` bit 1 with the same higher bits, so
at level ``l`` the members are the elements with ``(g >> l)`` even and the queries those with
``(g >> l)`` odd, looking into the block ``(g >> l) - 1``.  Each level is a segmented static
sum; all levels (and any other segmented sums) are laid side by side as "layers" of one tree:
elements sorted by the integer key ``(layer, block, position)``, a query's window located with
``searchsorted`` on that key.

No atomics and no data-dependent shapes: only sorts of integer keys, ``searchsorted``, gathers
and elementwise arithmetic, so every result is bitwise reproducible on every backend.
"""
import numpy as np

from rankref._engine import two_sum

from . import _backend
from ._backend import chunks

# Elements of one temporary of a tree query (per chunk of queries; larger on a GPU, where a
# chunk is a kernel launch), and leaves of one layered tree: both bound the memory of the pair
# terms, independently of P.
QUERY_BUDGET_CPU = 1 << 20
QUERY_BUDGET_GPU = 1 << 23
LEAF_BUDGET = 1 << 21


def exact_sum(xp, x, d):
    """The exact real ``x + d`` as ``(s, e)`` (TwoSum): ``s = fl(x + d)``, ``s + e == x + d``;
    beyond the float range ``s = +-inf`` with ``e = 0``."""
    with np.errstate(all="ignore"):
        s, e = two_sum(x, d)
    return s, xp.where(xp.isinf(s), 0.0, e)


def sum3(xp, a, b, d):
    """``(a - b) + d`` to a few ulps relative (two TwoSums, their errors added): the rounding
    of ``a - b`` never cancels against ``d`` (issue 21: a window term near 0 is as exact as
    one near 1).  +-inf beyond the float range."""
    with np.errstate(all="ignore"):
        s1, e1 = two_sum(a, -b)
        s2, e2 = two_sum(s1, d)
        out = s2 + (e1 + e2)
    return xp.where(xp.isfinite(s2), out, xp.where(xp.isfinite(s1), s2, s1))


def positions(xp, keys, ts, te):
    """``#{k : keys_k < T}`` for sorted float64 ``keys`` and exact thresholds ``T = ts + te``
    (``keys_k < T`` iff ``keys_k < ts`` or ``keys_k == ts`` and ``te > 0``)."""
    left = xp.searchsorted(keys, ts, side="left")
    right = xp.searchsorted(keys, ts, side="right")
    return xp.where(te > 0.0, right, left)


def windows(xp, keys, q, d):
    """``(#{k < q - delta}, #{k < q + delta})`` for sorted ``keys``: the window of ``q`` is
    ``[pl, ph)`` and the members at or above ``q + delta`` are ``[ph, n)``.  At delta = 0 both
    are ``#{k < q}`` (the members >= q count 1)."""
    if d > 0:
        pl = positions(xp, keys, *exact_sum(xp, q, -d))
        ph = positions(xp, keys, *exact_sum(xp, q, d))
        return pl, ph
    ph = xp.searchsorted(keys, q, side="left")
    return ph, ph


class Tree:
    """A static segment tree over ``n >= 1`` members: keys ``keys`` (non-decreasing inside every
    range that is queried), weights ``W`` (n, m) >= 0 and optional leaf offsets ``O`` (n, m)
    (``sum (x - key) / delta`` of the members a leaf stands for; zero by default).  At delta = 0
    only the weights are kept.  ``unit``: every weight is 1, so a sum of weights over a range
    is its length (exact), with no gather."""

    def __init__(self, xp, keys, W, d, O=None, unit=False):
        n, m = W.shape
        self.xp, self.d, self.n, self.m, self.unit = xp, d, n, m, unit
        S = 1 << max(0, (n - 1).bit_length())
        self.S = S
        if S > n:  # padding leaves: weight 0, the last key (never a non-zero term)
            fill = xp.zeros((S - n, m))
            W = xp.concatenate([W, fill])
            if d > 0:
                O = xp.zeros((S, m)) if O is None else xp.concatenate([O, fill])
                keys = keys[xp.minimum(xp.arange(S), n - 1)]
        elif d > 0 and O is None:
            O = xp.zeros((S, m))
        self.K = K = S.bit_length()  # levels, leaves included
        # all levels in one array per channel (level k at offset 2S - 2(S >> k)), then one
        # zero node (at 2S - 1) standing for the slots of a query that hold no canonical node:
        # one gather per query and channel, no masks
        zero = xp.zeros((1, m))
        if xp.name == "cupy" or K * S * m > LEAF_BUDGET:
            # no segmented sum (CuPy), or the K x S terms of all levels would not be small:
            # the levels one after the other, in O(S) memory
            W, O, L = _levels_one_by_one(xp, keys, W, d, O)
        else:
            W, O, L = _levels_at_once(xp, keys, W, d, O, S, K)
        W = xp.concatenate([W, zero])
        self.W = [xp.ascontiguousarray(W[:, ch]) for ch in range(m)]
        if d > 0:
            O = xp.concatenate([O, zero])
            self.O = [xp.ascontiguousarray(O[:, ch]) for ch in range(m)]
            self.L = xp.concatenate([L, L[:1]])
        self.R = 2 * self.K  # slots per query: the left and right ends of every level

    def _nodes(self, lo, hi):
        """Canonical nodes of the leaf ranges ``[lo, hi)``, shape (R, Q): indices into the
        level arrays, the zero node where a slot holds none."""
        xp, S, K = self.xp, self.S, self.K
        k = xp.arange(K)[:, None]
        off = 2 * S - ((2 * S) >> k)
        lk = (lo[None, :] + (1 << k) - 1) >> k  # ceil(lo / 2^k)
        rk = hi[None, :] >> k                   # floor(hi / 2^k)
        inside = lk < rk
        zero = 2 * S - 1
        left = xp.where(inside & ((lk & 1) == 1), off + lk, zero)
        right = xp.where(inside & ((rk & 1) == 1), off + rk - 1, zero)
        return xp.concatenate([left, right])

    def query(self, lo, hi, q=None, alo=None, ahi=None, weights=False):
        """Sums over the leaf ranges ``[lo, hi)`` (one per query).

        Returns ``(win, wsum, above)``, each (Q, m): ``win = sum_v O_v + W_v ((L_v - q) +
        delta) / delta`` over the canonical nodes (twice the window sum of the relaxed step,
        its numerator by :func:`sum3`;
        zero at delta = 0), ``wsum`` the sum of the weights over ``[lo, hi)`` (None unless
        ``weights``), and ``above`` the sum of the weights over ``[alo, ahi)`` (None when not
        asked for).  Each is a sum of non-negative terms in a fixed order (unit weights: the
        ranges' lengths)."""
        xp, d, m = self.xp, self.d, self.m
        Q = lo.shape[0]
        window = d > 0 and q is not None
        win, wsum, above = ([[] for _ in range(m)] for _ in range(3))
        budget = QUERY_BUDGET_GPU if _backend.on_gpu(xp) else QUERY_BUDGET_CPU
        for i0, i1 in chunks(Q, self.R * m, budget):
            if window or (weights and not self.unit):
                nodes = self._nodes(lo[i0:i1], hi[i0:i1])
            if window:
                with np.errstate(all="ignore"):  # inf only in nodes no window holds
                    f = sum3(xp, xp.take(self.L, nodes), q[None, i0:i1], d) / d
            anodes = None
            if alo is not None and not self.unit:
                anodes = self._nodes(alo[i0:i1], ahi[i0:i1])
            for ch in range(m):
                if window or (weights and not self.unit):
                    Wn = xp.take(self.W[ch], nodes)
                if weights and not self.unit:
                    wsum[ch].append(_pairwise_rows(Wn))
                if window:
                    with np.errstate(all="ignore"):
                        c = xp.take(self.O[ch], nodes) + xp.where(Wn != 0, Wn * f, 0.0)
                    win[ch].append(_pairwise_rows(c))
                if anodes is not None:
                    above[ch].append(_pairwise_rows(xp.take(self.W[ch], anodes)))

        def columns(parts):
            if not parts[0]:
                return xp.zeros((Q, m))
            return xp.stack([xp.concatenate(p) if len(p) > 1 else p[0] for p in parts], axis=1)

        def lengths(a, b):
            return xp.reshape(xp.astype(b - a, np.float64), (Q, 1))

        if not weights:
            wsum = None
        else:
            wsum = lengths(lo, hi) if self.unit else columns(wsum)
        if alo is None:
            above = None
        else:
            above = lengths(alo, ahi) if self.unit else columns(above)
        return columns(win), wsum, above


def _levels_at_once(xp, keys, W, d, O, S, K):
    """Every node of every level as one segmented sum of its leaves' terms (a few operations,
    whatever the depth): node v at level k holds the leaves ``[i 2^k, (i + 1) 2^k)``, with
    ``W_v = sum W_k`` and ``O_v = sum_k O_k + W_k (L_k - L_v) / delta`` (``L_v`` its leftmost
    key): non-negative terms, each leaf's offset taken from the node's own reference.
    Returns ``(W, O, L)`` in the level layout (``O``, ``L`` None at delta = 0)."""
    m = W.shape[1]
    k = xp.reshape(xp.arange(K), (K, 1))
    start = (xp.reshape(xp.arange(S), (1, S)) >> k) << k  # (K, S): each leaf's node start
    lengths = xp.concatenate([xp.full(S >> j, 1 << j) for j in range(K)])
    Wsum = xp.segment_sums(xp.concatenate([W] * K), lengths)
    if not d > 0:
        return Wsum, None, None
    with np.errstate(all="ignore"):  # nodes spanning beyond the floats are never read
        f = xp.reshape((xp.reshape(keys, (1, S)) - xp.take(keys, start)) / d, (K, S, 1))
        Wk = xp.reshape(W, (1, S, m))
        terms = xp.reshape(O, (1, S, m)) + xp.where(Wk != 0, Wk * f, 0.0)
        Osum = xp.segment_sums(xp.reshape(terms, (K * S, m)), lengths)
    first = (xp.cumsum(lengths) - lengths) & (S - 1)  # the leftmost leaf of every node
    return Wsum, Osum, xp.take(keys, first)


def _levels_one_by_one(xp, keys, W, d, O):
    """The levels of :class:`Tree` built pairwise, level after level (``log2 S`` steps)."""
    Ws, Os, Ls = [W], [O], [keys]
    with np.errstate(all="ignore"):  # nodes spanning beyond the floats are never read
        while Ws[-1].shape[0] > 1:
            W = Ws[-1]
            Wr = W[1::2]
            Ws.append(W[0::2] + Wr)
            if d > 0:
                O, L = Os[-1], Ls[-1]
                f = (L[1::2] - L[0::2]) / d
                Os.append(O[0::2] + O[1::2] + xp.where(Wr != 0, Wr * f[:, None], 0.0))
                Ls.append(L[0::2])
    if not d > 0:
        return xp.concatenate(Ws), None, None
    return xp.concatenate(Ws), xp.concatenate(Os), xp.concatenate(Ls)


def _pairwise_rows(a):
    """Sum over the rows of ``a`` (R, Q): one reduction over the first axis, each column summed
    in row order (several outputs: never split over threads), so the same result whatever the
    number of threads, in one operation instead of ``log2 R``."""
    return _backend.namespace(a).sum(a, axis=0)


def static_sums(xp, keys, W, q, d):
    """``out[i, ch] = sum_k W[k, ch] H(keys_k - q_i)`` over all members (keys sorted
    ascending, W >= 0; None: unit weights, one channel), for any queries ``q``."""
    unit = W is None
    n = keys.shape[0]
    if unit:
        W = xp.ones((n, 1))
    if n == 0:
        return xp.zeros((q.shape[0], W.shape[1]))
    pl, ph = windows(xp, keys, q, d)
    tree = Tree(xp, keys, W, d, unit=unit)
    win, _, above = tree.query(pl, ph, q, ph, xp.full(q.shape[0], n))
    return above + 0.5 * win


def layered_sums(xp, keys, W, layers, d, pl, ph):
    """Segmented static sums of the elements over themselves, for several layers at once.

    ``keys`` (P,) sorted ascending, ``W`` (P, m) >= 0 (None: unit weights, one channel),
    ``pl, ph`` the windows of every key among the keys (:func:`windows`).  Each layer is ``(block, target, is_query)``, int64 arrays of
    length P with ``0 <= block <= P``: element i (where ``is_query``) sums its window over the
    elements k of block ``target[i]``::

        out[j][i] = sum_{k : block_j[k] == target_j[i]} W_k H(keys_k - keys_i)

    and 0 where it is not a query.  Returns the list of the (P, m) results, one per layer.
    """
    P = keys.shape[0]
    out = []
    per = max(1, LEAF_BUDGET // max(P, 1))
    for j0 in range(0, len(layers), per):
        out += _layer_batch(xp, keys, W, layers[j0:j0 + per], d, pl, ph)
    return out


def _layer_batch(xp, keys, W, layers, d, pl, ph):
    P = keys.shape[0]
    nl = len(layers)
    pos = xp.arange(P)
    span = P + 1
    # element k of layer j sorts by (j, block, position): blocks contiguous, keys ascending
    comp = xp.concatenate([(j * span + blk) * span + pos for j, (blk, _, _) in
                           enumerate(layers)])
    order = xp.argsort(comp)
    comp = comp[order]
    elem = order % P
    base = xp.concatenate([(j * span + tgt) * span for j, (_, tgt, _) in enumerate(layers)])
    isq = xp.concatenate([q for _, _, q in layers])
    pl_all = xp.concatenate([pl] * nl)
    ph_all = xp.concatenate([ph] * nl)
    glo = xp.where(isq, xp.searchsorted(comp, base + pl_all, side="left"), 0)
    ghi = xp.where(isq, xp.searchsorted(comp, base + ph_all, side="left"), 0)
    end = xp.where(isq, xp.searchsorted(comp, base + span, side="left"), 0)
    unit = W is None
    tree = Tree(xp, keys[elem], xp.ones((nl * P, 1)) if unit else W[elem], d, unit=unit)
    q = xp.concatenate([keys] * nl)
    win, _, above = tree.query(glo, ghi, q, ghi, end)
    res = above + 0.5 * win
    return [res[j * P:(j + 1) * P] for j in range(nl)]


def strict_layers(xp, g, levels):
    """Layers of :func:`layered_sums` summing, for each element i, over the elements k with
    ``g_k < g_i`` (``g`` int64 group ranks in ``[0, 2**levels)``): one layer per bit."""
    out = []
    for lev in range(levels):
        blk = g >> lev
        out.append((blk, blk - 1, (blk & 1) == 1))
    return out


def own_group_layer(xp, g):
    """The layer of :func:`layered_sums` summing over i's own group (self included)."""
    return (g, g, xp.ones(g.shape[0], dtype=bool))
