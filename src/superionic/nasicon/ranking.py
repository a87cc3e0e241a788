"""Pairwise ranking accuracy of 2D linear descriptors, exhaustively over all pairs.

Ranking model. For a pair of features (u, v) the model scores a compound by
w_u*u + w_v*v. Its direction comes from the least-squares ranking SVM
(RankRLS): minimize sum over all ordered pairs (a, b) of
(sign(y_a - y_b) - w.(x_a - x_b))^2 (+ ridge * |w|^2). Expanding the sums,
sum_ab (x_a - x_b)(x_a - x_b)^T = 2 n^2 Cov(x) and
sum_ab sign(y_a - y_b)(x_a - x_b) = 4 n Cov(x, rank(y)), so the solution is
exactly the least-squares regression of rank(y) on x: w = (R + ridge I)^-1 rho
with R the 2x2 correlation matrix of (u, v) and rho their correlations with
rank(y) on the fit rows (standardized features). Everything it needs for all
C(k, 2) pairs is one k x k Gram matrix and one k-vector.

Ranking accuracy. Over the validation compounds, the fraction of the pairs
with different targets that the score orders like the target (ties in score
count one half), i.e. a concordance index. It is counted exactly in
O(n log n) per descriptor: sort the compounds by target, then count the
inversions of the score sequence by merge sort (plus tied scores), with a
correction for target ties. Compiled with numba and run in parallel over
descriptor pairs.
"""

from __future__ import annotations

import numpy as np
from numba import config as numba_config
from numba import get_num_threads, njit, prange, set_num_threads
from scipy.stats import rankdata

# Pairs per parallel work item.
_BLOCK = 4096


# Runs sorted by insertion before merging: cheaper than the first merge levels.
_RUN = 16


@njit(cache=True)
def _inversions_and_ties(a: np.ndarray, tmp: np.ndarray) -> tuple[int, int]:
    """Sort ``a`` (merge sort, using ``tmp``) and return (inversions, tied pairs).

    An inversion is a pair i < j with a[i] > a[j] (strictly); equal values
    count as tied pairs instead.
    """
    n = a.shape[0]
    inv = 0
    for lo in range(0, n, _RUN):
        hi = min(lo + _RUN, n)
        for i in range(lo + 1, hi):
            v = a[i]
            j = i - 1
            while j >= lo and a[j] > v:
                a[j + 1] = a[j]
                j -= 1
            inv += i - 1 - j
            a[j + 1] = v
    src = a
    dst = tmp
    width = _RUN
    while width < n:
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            left, right, k = lo, mid, lo
            while left < mid and right < hi:
                lv = src[left]
                rv = src[right]
                # Branch-free selects: the comparison outcome is unpredictable.
                take_right = rv < lv
                dst[k] = rv if take_right else lv
                inv += (mid - left) if take_right else 0
                right += 1 if take_right else 0
                left += 0 if take_right else 1
                k += 1
            while left < mid:
                dst[k] = src[left]
                left += 1
                k += 1
            while right < hi:
                dst[k] = src[right]
                right += 1
                k += 1
            lo += 2 * width
        src, dst = dst, src
        width *= 2
    ties = 0
    run = 1
    for i in range(1, n):
        if src[i] == src[i - 1]:
            run += 1
        else:
            ties += run * (run - 1) // 2
            run = 1
    ties += run * (run - 1) // 2
    return inv, ties


@njit(cache=True)
def _accuracy(score: np.ndarray, work: np.ndarray, tmp: np.ndarray, groups: np.ndarray, n_comparable: int) -> float:
    """Concordance of ``score`` (compounds in ascending target order) with the target.

    ``groups`` holds [start, end) of each run of tied targets; pairs inside
    a run are not comparable and are taken back out of the counts.
    """
    n = score.shape[0]
    for t in range(n):
        work[t] = score[t]
    inv, ties = _inversions_and_ties(work, tmp)
    for g in range(groups.shape[0]):
        for a in range(groups[g, 0], groups[g, 1]):
            for b in range(a + 1, groups[g, 1]):
                if score[a] > score[b]:
                    inv -= 1
                elif score[a] == score[b]:
                    ties -= 1
    return (n_comparable - inv - 0.5 * ties) / n_comparable


@njit(parallel=True, cache=True)
def _pair_kernel(zv, rho, gram, first, second, ridge, groups, n_comparable, out):
    n_pairs = first.shape[0]
    n = zv.shape[1]
    n_blocks = (n_pairs + _BLOCK - 1) // _BLOCK
    for blk in prange(n_blocks):
        score = np.empty(n)
        work = np.empty(n)
        tmp = np.empty(n)
        for p in range(blk * _BLOCK, min((blk + 1) * _BLOCK, n_pairs)):
            i = first[p]
            j = second[p]
            c = gram[i, j]
            # (R + ridge I)^-1 rho up to the positive factor 1/det.
            w0 = (1.0 + ridge) * rho[i] - c * rho[j]
            w1 = (1.0 + ridge) * rho[j] - c * rho[i]
            for t in range(n):
                score[t] = w0 * zv[i, t] + w1 * zv[j, t]
            out[p] = _accuracy(score, work, tmp, groups, n_comparable)


def tie_groups(y_sorted: np.ndarray) -> tuple[np.ndarray, int]:
    """Runs of equal targets in an ascending target vector, and the comparable pair count."""
    n = len(y_sorted)
    bounds = np.flatnonzero(np.diff(y_sorted) != 0) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [n]])
    size = ends - starts
    multi = size > 1
    groups = np.stack([starts[multi], ends[multi]], axis=1).astype(np.int64).reshape(-1, 2)
    n_comparable = n * (n - 1) // 2 - int((size * (size - 1) // 2).sum())
    if n_comparable <= 0:
        raise ValueError("no pair of compounds with different targets to rank")
    return groups, n_comparable


def ranking_accuracy(score: np.ndarray, y: np.ndarray) -> float:
    """Exact pairwise ranking accuracy (concordance index) of one score vector."""
    order = np.argsort(y, kind="stable")
    ys = np.asarray(y, dtype=float)[order]
    s = np.ascontiguousarray(np.asarray(score, dtype=float)[order])
    groups, n_comp = tie_groups(ys)
    return float(_accuracy(s, np.empty(len(s)), np.empty(len(s)), groups, n_comp))


def standardize(values: np.ndarray, n_fit: int) -> np.ndarray:
    """(features, compounds) -> standardized with the fit rows' mean and std."""
    mean = values[:, :n_fit].mean(axis=1, keepdims=True)
    std = values[:, :n_fit].std(axis=1, keepdims=True)
    if (std <= 0).any():
        raise ValueError("a feature is constant on the fit rows")
    return (values - mean) / std


def rankrls_inputs(z_fit: np.ndarray, y_fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correlation matrix of the features and their correlation with rank(y) (fit rows)."""
    n = z_fit.shape[1]
    # Average ranks for tied targets, so tied compounds are treated alike.
    ranks = rankdata(y_fit)
    rs = (ranks - ranks.mean()) / ranks.std()
    gram = (z_fit @ z_fit.T) / n
    rho = (z_fit @ rs) / n
    return gram, rho


def direction(gram: np.ndarray, rho: np.ndarray, i: int, j: int, ridge: float) -> np.ndarray:
    c = gram[i, j]
    return np.array([(1.0 + ridge) * rho[i] - c * rho[j], (1.0 + ridge) * rho[j] - c * rho[i]])


def all_pairs(k: int) -> tuple[np.ndarray, np.ndarray]:
    first, second = np.triu_indices(k, 1)
    return first.astype(np.int32), second.astype(np.int32)


def pair_search(
    z: np.ndarray,
    y: np.ndarray,
    n_fit: int,
    val: slice,
    ridge: float = 0.0,
    n_jobs: int = 1,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Validation ranking accuracy of every feature pair's RankRLS descriptor.

    ``z`` (features, compounds) is standardized on the first ``n_fit``
    compounds (the fit rows); ``val`` selects the validation compounds.
    """
    if ridge < 0:
        raise ValueError(f"descriptor.ranking_ridge must be >= 0, got {ridge}")
    k = z.shape[0]
    gram, rho = rankrls_inputs(z[:, :n_fit], y[:n_fit])
    y_val = y[val]
    order = np.argsort(y_val, kind="stable")
    zv = np.ascontiguousarray(z[:, val][:, order])
    groups, n_comp = tie_groups(y_val[order])
    first, second = all_pairs(k) if pairs is None else pairs
    out = np.empty(len(first))
    previous = get_num_threads()
    set_num_threads(max(1, min(n_jobs, numba_config.NUMBA_NUM_THREADS)))
    try:
        _pair_kernel(zv, rho, gram, first, second, float(ridge), groups, n_comp, out)
    finally:
        set_num_threads(previous)
    return {"first": first, "second": second, "accuracy": out, "gram": gram, "rho": rho}


# --- higher dimensions: 1D and 3D descriptors ---------------------------------
#
# A 3D descriptor (u, v, w) is scored exactly like a pair: RankRLS direction
# (R + ridge I)^-1 rho from the fit rows (3x3 now), concordance on the
# validation rows. The direction is taken as adj(R + ridge I) rho, i.e. up to
# the positive factor 1/det, as the pair kernel does; a triple whose
# correlation matrix is (numerically) singular has no unique direction and is
# skipped and counted.

# det(R + ridge I) below this: the three features are linearly dependent on
# the fit rows to ~1e-10 (R^2 of one on the other two > 1 - 1e-10).
DET_MIN = 1.0e-10
# Pair blocks per thread of the triple kernel: the work of a pair (i, j) is
# the m - 1 - j third features, so pairs are dealt out round-robin (below)
# and many blocks keep both threads busy to the end.
_TRIPLE_BLOCKS_PER_THREAD = 64


@njit(cache=True)
def _direction3(gram, rho, i, j, k, ridge):
    """adj(R + ridge I) rho for features (i, j, k), and det(R + ridge I)."""
    a = 1.0 + ridge
    b = gram[i, j]
    c = gram[i, k]
    e = gram[j, k]
    c00 = a * a - e * e
    c01 = c * e - a * b
    c02 = b * e - a * c
    c11 = a * a - c * c
    c12 = b * c - a * e
    c22 = a * a - b * b
    det = a * c00 + b * c01 + c * c02
    w0 = c00 * rho[i] + c01 * rho[j] + c02 * rho[k]
    w1 = c01 * rho[i] + c11 * rho[j] + c12 * rho[k]
    w2 = c02 * rho[i] + c12 * rho[j] + c22 * rho[k]
    return w0, w1, w2, det


@njit(parallel=True, cache=True)
def _triple_kernel(zv, rho, gram, first, second, ridge, groups, n_comparable, n_blocks, best_k, best_acc, n_degenerate):
    """For every pair (i, j), i < j: the best third feature k > j and its accuracy.

    Every triple i < j < k is scored exactly once (under its two smallest
    indices). Ties go to the smallest k, so the result does not depend on
    the number of threads.
    """
    n_pairs = first.shape[0]
    m = zv.shape[0]
    n = zv.shape[1]
    for blk in prange(n_blocks):
        score = np.empty(n)
        work = np.empty(n)
        tmp = np.empty(n)
        for p in range(blk, n_pairs, n_blocks):
            i = first[p]
            j = second[p]
            bk = -1
            ba = -1.0
            nd = 0
            for k in range(j + 1, m):
                w0, w1, w2, det = _direction3(gram, rho, i, j, k, ridge)
                if det <= DET_MIN:
                    nd += 1
                    continue
                for t in range(n):
                    score[t] = w0 * zv[i, t] + w1 * zv[j, t] + w2 * zv[k, t]
                acc = _accuracy(score, work, tmp, groups, n_comparable)
                if acc > ba:
                    ba = acc
                    bk = k
            best_k[p] = bk
            best_acc[p] = ba
            n_degenerate[p] = nd


def direction3(gram: np.ndarray, rho: np.ndarray, i: int, j: int, k: int, ridge: float) -> np.ndarray:
    """The triple kernel's (unnormalized) direction; same arithmetic, so scores tie alike."""
    w0, w1, w2, det = _direction3(gram, rho, i, j, k, float(ridge))
    if det <= DET_MIN:
        raise ValueError(f"features {i}, {j}, {k} are linearly dependent on the fit rows")
    return np.array([w0, w1, w2])


def _validation_inputs(z: np.ndarray, y: np.ndarray, n_fit: int, val: slice, ridge: float):
    if ridge < 0:
        raise ValueError(f"descriptor.ranking_ridge must be >= 0, got {ridge}")
    gram, rho = rankrls_inputs(z[:, :n_fit], y[:n_fit])
    y_val = y[val]
    order = np.argsort(y_val, kind="stable")
    zv = np.ascontiguousarray(z[:, val][:, order])
    groups, n_comp = tie_groups(y_val[order])
    return gram, rho, zv, groups, n_comp


def single_search(z: np.ndarray, y: np.ndarray, n_fit: int, val: slice, ridge: float = 0.0) -> dict:
    """Validation ranking accuracy of every feature alone (1D RankRLS: score = rho_i * z_i)."""
    gram, rho, zv, groups, n_comp = _validation_inputs(z, y, n_fit, val, ridge)
    work, tmp = np.empty(zv.shape[1]), np.empty(zv.shape[1])
    acc = np.array([_accuracy(np.ascontiguousarray(rho[i] * zv[i]), work, tmp, groups, n_comp)
                    for i in range(z.shape[0])])
    return {"accuracy": acc, "gram": gram, "rho": rho}


def triple_search(z: np.ndarray, y: np.ndarray, n_fit: int, val: slice, ridge: float = 0.0, n_jobs: int = 1) -> dict:
    """Every triple of features as a 3D RankRLS descriptor, scored exactly on the validation rows.

    Returns, per pair (first[p], second[p]), the best third feature
    ``third[p]`` (-1 if none) and its validation accuracy; the best triple
    overall is the best of these. ``n_triples`` = C(k, 3), of which
    ``n_degenerate`` were skipped as linearly dependent.
    """
    k = z.shape[0]
    if k < 3:
        raise ValueError(f"a 3D search needs at least 3 features, got {k}")
    gram, rho, zv, groups, n_comp = _validation_inputs(z, y, n_fit, val, ridge)
    first, second = all_pairs(k)
    # Pairs whose j is the last feature have no third feature: drop them.
    keep = second < k - 1
    first, second = first[keep], second[keep]
    best_k = np.empty(len(first), dtype=np.int64)
    best_acc = np.empty(len(first))
    n_deg = np.empty(len(first), dtype=np.int64)
    threads = max(1, min(n_jobs, numba_config.NUMBA_NUM_THREADS))
    n_blocks = max(1, min(len(first), threads * _TRIPLE_BLOCKS_PER_THREAD))
    previous = get_num_threads()
    set_num_threads(threads)
    try:
        _triple_kernel(zv, rho, gram, first, second, float(ridge), groups, n_comp, n_blocks, best_k, best_acc, n_deg)
    finally:
        set_num_threads(previous)
    return {
        "first": first, "second": second, "third": best_k, "accuracy": best_acc,
        "n_triples": k * (k - 1) * (k - 2) // 6, "n_degenerate": int(n_deg.sum()),
        "gram": gram, "rho": rho,
    }
