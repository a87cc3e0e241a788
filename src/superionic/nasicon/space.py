"""SISSO-style operator feature space, generated and screened (SIS) in blocks.

Construction (rungs, as in SISSO): rung 0 is the primary features; the new
features of rung r are every unary operator applied to the new features of
rung r-1 and every binary operator applied to each pair of rung <= r-1
features of which at least one is new at rung r-1. The space of complexity C
is the union of rungs 0..C. The paper's t1 = cbrt(NNa) + AnionChgStd^2 and
t2 = EWald^2 * (XWithNa * RDiffStd) are rung 2 (three operators each).

Every rung below C is held in memory (a few hundred features); the last rung
(up to millions of candidates) is only ever evaluated one block at a time:
each block is validated, deduplicated and scored, and only the running
top-k by |Pearson r| with the target survives.

Rung 3 and beyond: the full rung 2 (~340,000 valid features on the default
operators) would need ~10 GB in memory and its rung 3 ~10^11 candidates, out
of reach of a workstation. With ``last_rung_basis`` = N > 0 the rung below
the last is streamed too, block by block (every one of its features is still
a SIS candidate), and only its N best by |r| are kept in memory as the new
features the last rung combines (with all lower rungs): SISSO's space with
the last operator applied to a screened basis. Memory is bounded by
N x compounds plus the duplicate fingerprints; N = 0 is the exact space.

A candidate is skipped, and counted under its reason, when it is undefined on
some compound (``domain``: log/sqrt of a negative, division by zero), not
finite (``non_finite``: overflow), larger than ``max_abs_value``
(``out_of_range``), constant on the fit rows (``constant``), or an affine
copy of a feature already in the space (``duplicate``: same standardized
values up to sign, found by a value fingerprint; a linear model cannot tell
such features apart).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from superionic.nasicon.operators import BINARY, UNARY, check_names

log = logging.getLogger(__name__)

VALID, DOMAIN, NON_FINITE, OUT_OF_RANGE, CONSTANT, DUPLICATE = range(6)
REASONS = ("valid", "domain", "non_finite", "out_of_range", "constant", "duplicate")

# Record "source" codes: a materialized feature, or a last-rung unary/binary candidate.
SRC_LAYER, SRC_UNARY, SRC_BINARY = 0, 1, 2
# Fingerprint resolution: standardized projections rounded to this many units.
_FP_SCALE = 1.0e9


@dataclass(frozen=True)
class SpaceParams:
    complexity: int
    unary_ops: list[str]
    binary_ops: list[str]
    max_abs_value: float
    min_rel_std: float
    chunk_size: int
    max_materialized_mib: int
    sis_size: int
    last_rung_basis: int = 0


@dataclass
class Layer:
    """Materialized features (rungs < complexity): values are (features, compounds)."""

    values: np.ndarray
    expressions: list[str]
    n_ops: np.ndarray
    rung: np.ndarray


@dataclass
class SISResult:
    expressions: list[str]
    values: np.ndarray  # (k, compounds)
    r: np.ndarray  # Pearson r with the target on the fit rows
    n_ops: np.ndarray
    rung: np.ndarray
    counts: dict[str, dict[str, int]]  # rung -> reason -> count (+ "candidates")
    n_candidates: int
    n_unique_valid: int
    probes: dict[str, dict[str, float | bool | int]] = field(default_factory=dict)
    # Primary feature -> the earlier primary it is an affine copy of.
    primary_duplicates: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def params_from_cfg(cfg) -> SpaceParams:
    d = cfg.descriptor
    return SpaceParams(
        complexity=int(d.complexity),
        unary_ops=list(d.unary_ops),
        binary_ops=list(d.binary_ops),
        max_abs_value=float(d.max_abs_value),
        min_rel_std=float(d.min_rel_std),
        chunk_size=int(d.chunk_size),
        max_materialized_mib=int(d.max_materialized_mib),
        sis_size=int(d.sis_size),
        last_rung_basis=int(d.last_rung_basis),
    )


def check_params(p: SpaceParams) -> None:
    check_names(p.unary_ops, p.binary_ops)
    if p.complexity < 0:
        raise ValueError(f"descriptor.complexity must be >= 0, got {p.complexity}")
    if p.sis_size < 2:
        raise ValueError(f"descriptor.sis_size must be >= 2, got {p.sis_size}")
    if p.chunk_size < 1:
        raise ValueError(f"descriptor.chunk_size must be >= 1, got {p.chunk_size}")
    if p.last_rung_basis < 0:
        raise ValueError(f"descriptor.last_rung_basis must be >= 0 (0 = the full space), got {p.last_rung_basis}")
    if p.max_abs_value <= 0:
        raise ValueError(f"descriptor.max_abs_value must be > 0, got {p.max_abs_value}")


class Scorer:
    """Validates, fingerprints and scores blocks of candidate features.

    Columns are compounds, the first ``n_fit`` of which are the fit rows on
    which Pearson r is computed: r = (V_fit - mean) / std . y_std / n_fit,
    one matrix-vector product per block.
    """

    def __init__(self, y_fit: np.ndarray, n_total: int, params: SpaceParams, seed: int):
        y_fit = np.asarray(y_fit, dtype=float)
        self.n_fit = len(y_fit)
        if self.n_fit < 3 or self.n_fit > n_total:
            raise ValueError(f"need 3 <= fit rows <= compounds, got {self.n_fit} of {n_total}")
        sd = y_fit.std()
        if not sd > 0:
            raise ValueError("the target is constant on the fit rows")
        self.y_std = (y_fit - y_fit.mean()) / sd
        self.n_total = n_total
        self.params = params
        rng = np.random.default_rng(seed)
        self.proj = rng.standard_normal((n_total, 2))
        self.proj_sum = self.proj.sum(axis=0)

    def assess(self, values: np.ndarray, domain_ok: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (status, r, fingerprint) per feature (row) of ``values``."""
        m = values.shape[0]
        status = np.full(m, VALID, dtype=np.int8)
        if domain_ok is not None:
            status[~domain_ok] = DOMAIN
        r = np.zeros(m)
        p = np.zeros((m, 2))
        _assess_kernel(
            np.ascontiguousarray(values, dtype=np.float64), self.n_fit, self.y_std, self.proj,
            self.params.max_abs_value, self.params.min_rel_std, status, r, p,
        )
        return status, r, _fingerprint(status, p)

    def screen(self, layer: np.ndarray, kind: int, op: int, a: np.ndarray, b: np.ndarray | None):
        """Like :meth:`assess` for candidates given by operator and parent rows of ``layer``."""
        m = len(a)
        status = np.full(m, VALID, dtype=np.int8)
        r = np.zeros(m)
        p = np.zeros((m, 2))
        bb = np.zeros(m, dtype=np.int64) if b is None else b.astype(np.int64)
        _screen_kernel(
            layer, kind, op, a.astype(np.int64), bb, self.n_fit, self.y_std, self.proj,
            self.params.max_abs_value, self.params.min_rel_std, status, r, p,
        )
        return status, r, _fingerprint(status, p)


def _fingerprint(status: np.ndarray, p: np.ndarray) -> np.ndarray:
    # Affine copies (including a sign flip) share |p|: canonicalize the sign.
    p = p * np.where(p[:, :1] < 0, -1.0, 1.0)
    q = np.round(p * _FP_SCALE).astype(np.int64)
    return np.where(status == VALID, q[:, 0] * 1_000_003 + q[:, 1], 0)


# Operator codes of the compiled last-rung kernel: positions in UNARY / BINARY.
U_SQ, U_CB, U_SIXTH, U_INV, U_SQRT, U_CBRT, U_EXP, U_NEXP, U_LOG, U_ABS, U_SIN, U_COS, U_SCD = range(13)
B_ADD, B_SUB, B_MUL, B_DIV, B_ABSDIFF = range(5)
_UNARY_CODES = ("sq", "cb", "sixth", "inv", "sqrt", "cbrt", "exp", "nexp", "log", "abs", "sin", "cos", "scd")
_BINARY_CODES = ("add", "sub", "mul", "div", "absdiff")
assert tuple(UNARY) == _UNARY_CODES and tuple(BINARY) == _BINARY_CODES


@njit(cache=True)
def _eval_row(x, kind, op, a, b, row):
    """Values of one candidate into ``row``; False if outside the operator's domain."""
    n = x.shape[1]
    if kind == SRC_UNARY:
        for t in range(n):
            v = x[a, t]
            if op == U_SQ:
                row[t] = v * v
            elif op == U_CB:
                row[t] = v * v * v
            elif op == U_SIXTH:
                c = v * v * v
                row[t] = c * c
            elif op == U_INV:
                if v == 0.0:
                    return False
                row[t] = 1.0 / v
            elif op == U_SQRT:
                if v < 0.0:
                    return False
                row[t] = np.sqrt(v)
            elif op == U_CBRT:
                row[t] = np.cbrt(v)
            elif op == U_EXP:
                row[t] = np.exp(v)
            elif op == U_NEXP:
                row[t] = np.exp(-v)
            elif op == U_LOG:
                if v <= 0.0:
                    return False
                row[t] = np.log(v)
            elif op == U_ABS:
                row[t] = abs(v)
            elif op == U_SIN:
                row[t] = np.sin(v)
            elif op == U_COS:
                row[t] = np.cos(v)
            else:
                row[t] = 1.0 / (np.pi * (1.0 + v * v))
        return True
    for t in range(n):
        u = x[a, t]
        v = x[b, t]
        if op == B_ADD:
            row[t] = u + v
        elif op == B_SUB:
            row[t] = u - v
        elif op == B_MUL:
            row[t] = u * v
        elif op == B_DIV:
            if v == 0.0:
                return False
            row[t] = u / v
        else:
            row[t] = abs(u - v)
    return True


@njit(cache=True)
def _assess_row(row, n_fit, y_std, proj, max_abs, min_rel_std, status, r, p, f):
    n = row.shape[0]
    maxabs = 0.0
    for t in range(n):
        v = row[t]
        if not np.isfinite(v):
            status[f] = NON_FINITE
            return
        a = abs(v)
        if a > maxabs:
            maxabs = a
    if maxabs > max_abs:
        status[f] = OUT_OF_RANGE
        return
    # Two-pass mean/std: features reach 1e5 in size, the one-pass formula
    # cancels; the row is in cache, so the second pass is cheap.
    mean_f = 0.0
    for t in range(n_fit):
        mean_f += row[t]
    mean_f /= n_fit
    var_f = 0.0
    dot_y = 0.0
    for t in range(n_fit):
        d = row[t] - mean_f
        var_f += d * d
        dot_y += d * y_std[t]
    std_f = np.sqrt(var_f / n_fit)
    if std_f <= min_rel_std * maxabs:
        status[f] = CONSTANT
        return
    r[f] = dot_y / (n_fit * std_f)
    mean_a = 0.0
    for t in range(n):
        mean_a += row[t]
    mean_a /= n
    var_a = 0.0
    p0 = 0.0
    p1 = 0.0
    for t in range(n):
        d = row[t] - mean_a
        var_a += d * d
        p0 += d * proj[t, 0]
        p1 += d * proj[t, 1]
    std_a = np.sqrt(var_a / n)
    p[f, 0] = p0 / (std_a * n)
    p[f, 1] = p1 / (std_a * n)


@njit(parallel=True, cache=True)
def _assess_kernel(values, n_fit, y_std, proj, max_abs, min_rel_std, status, r, p):
    """Validity, Pearson r on the fit rows and fingerprint of given feature rows."""
    for f in prange(values.shape[0]):
        if status[f] == VALID:
            _assess_row(values[f], n_fit, y_std, proj, max_abs, min_rel_std, status, r, p, f)


@njit(parallel=True, cache=True)
def _screen_kernel(x, kind, op, a_idx, b_idx, n_fit, y_std, proj, max_abs, min_rel_std, status, r, p):
    """Generate and assess candidates one row at a time: the block is never materialized."""
    for f in prange(a_idx.shape[0]):
        row = np.empty(x.shape[1])
        if _eval_row(x, kind, op, a_idx[f], b_idx[f], row):
            _assess_row(row, n_fit, y_std, proj, max_abs, min_rel_std, status, r, p, f)
        else:
            status[f] = DOMAIN


def _groups(m: int, start: int, params: SpaceParams) -> Iterator[tuple[int, str, np.ndarray, np.ndarray | None]]:
    """Candidate groups of the next rung over ``m`` features, new ones from ``start``."""
    new = np.arange(start, m)
    for name in params.unary_ops:
        yield SRC_UNARY, name, new, None
    i, j = np.triu_indices(m, 1)
    sel = j >= start
    i, j = i[sel], j[sel]
    for name in params.binary_ops:
        yield SRC_BINARY, name, i, j
        if not BINARY[name].symmetric:
            yield SRC_BINARY, name, j, i


def count_candidates(m: int, start: int, params: SpaceParams) -> int:
    n_new = m - start
    n_pairs = m * (m - 1) // 2 - start * (start - 1) // 2
    n_bin = sum(1 if BINARY[b].symmetric else 2 for b in params.binary_ops)
    return len(params.unary_ops) * n_new + n_bin * n_pairs


def evaluate(kind: int, name: str, values: np.ndarray, a: np.ndarray, b: np.ndarray | None):
    """Values (candidates, compounds) and per-candidate domain mask of one block."""
    with np.errstate(all="ignore"):
        # Out-of-domain and overflowing values are detected per feature right
        # after (domain mask, finiteness) and counted; numpy's warnings would
        # only repeat that, block after block.
        if kind == SRC_UNARY:
            op = UNARY[name]
            x = values[a]
            dom = op.domain(x) if op.domain is not None else None
            return op.func(x), dom
        bop = BINARY[name]
        xa, xb = values[a], values[b]
        dom = bop.domain(xa, xb) if bop.domain is not None else None
        return bop.func(xa, xb), dom


def _fmt(kind: int, name: str, ea: str, eb: str | None) -> str:
    return UNARY[name].fmt(ea) if kind == SRC_UNARY else BINARY[name].fmt(ea, eb)


class FingerprintSet:
    """The fingerprints of the features seen so far, 8 bytes each.

    A Python set of ~10^7 ints (rung 3) takes over a gigabyte; this keeps
    sorted int64 runs whose sizes at least double from one run to the one
    before it (merged as they fill up, like a log-structured merge tree), so
    memory is 8 bytes per feature and a block needs one binary search per run
    (O(log n) runs).
    """

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(r) for r in self.runs)

    def contains(self, fp: np.ndarray) -> np.ndarray:
        found = np.zeros(len(fp), dtype=bool)
        for run in self.runs:
            pos = np.minimum(np.searchsorted(run, fp), len(run) - 1)
            found |= run[pos] == fp
        return found

    def add_new(self, fp: np.ndarray) -> np.ndarray:
        """Add ``fp`` (in order); True where a value is new: not seen before nor earlier in ``fp``."""
        fp = np.asarray(fp, dtype=np.int64)
        if len(fp) == 0:
            return np.zeros(0, dtype=bool)
        uniq, first = np.unique(fp, return_index=True)
        fresh = ~self.contains(uniq)
        new = np.zeros(len(fp), dtype=bool)
        new[first[fresh]] = True
        run = uniq[fresh]
        while self.runs and len(run) > 0 and len(self.runs[-1]) <= 2 * len(run):
            run = np.concatenate([self.runs.pop(), run])
            run.sort(kind="stable")
        if len(run):
            self.runs.append(run)
        return new


class _TopK:
    """Running top-k by |r|; ties broken by generation order (deterministic)."""

    def __init__(self, k: int):
        self.k = k
        self.absr = np.empty(0)
        self.r = np.empty(0)
        self.order = np.empty(0, dtype=np.int64)
        self.rec = np.empty((0, 5), dtype=np.int64)  # source, op index, a, b, rung

    def threshold(self) -> float:
        return -np.inf if len(self.absr) < self.k else float(self.absr[-1])

    def push(self, r: np.ndarray, order: np.ndarray, rec: np.ndarray) -> None:
        absr = np.abs(r)
        sel = absr >= self.threshold()
        if not sel.any():
            return
        absr = np.concatenate([self.absr, absr[sel]])
        rr = np.concatenate([self.r, r[sel]])
        oo = np.concatenate([self.order, order[sel]])
        rec = np.concatenate([self.rec, rec[sel]])
        idx = np.lexsort((oo, -absr))[: self.k]
        self.absr, self.r, self.order, self.rec = absr[idx], rr[idx], oo[idx], rec[idx]


def _rebuild(rec: np.ndarray, layer: Layer) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Values, expressions, operator counts and rungs of features given by their records."""
    unary_names, binary_names = list(UNARY), list(BINARY)
    vals, exprs, ops, rungs = [], [], [], []
    for src, op_i, a, b, rung in rec.tolist():
        if src == SRC_LAYER:
            vals.append(layer.values[a])
            exprs.append(layer.expressions[a])
            ops.append(int(layer.n_ops[a]))
            rungs.append(int(layer.rung[a]))
            continue
        name = unary_names[op_i] if src == SRC_UNARY else binary_names[op_i]
        bidx = None if b < 0 else np.array([b])
        v, _ = evaluate(src, name, layer.values, np.array([a]), bidx)
        vals.append(v[0])
        eb = None if b < 0 else layer.expressions[b]
        exprs.append(_fmt(src, name, layer.expressions[a], eb))
        ops.append(1 + int(layer.n_ops[a]) + (0 if b < 0 else int(layer.n_ops[b])))
        rungs.append(rung)
    n = layer.values.shape[1]
    return (np.asarray(vals, dtype=float).reshape(len(exprs), n), exprs,
            np.asarray(ops, dtype=np.int64), np.asarray(rungs, dtype=np.int64))


def build_and_screen(
    primaries: np.ndarray,
    names: list[str],
    y_fit: np.ndarray,
    params: SpaceParams,
    seed: int = 0,
    probes: dict[str, np.ndarray] | None = None,
) -> SISResult:
    """Generate the feature space of ``params.complexity`` and keep the top-k by |r|.

    ``primaries`` is (features, compounds) with the fit compounds first;
    ``y_fit`` the target on them. ``probes`` are named reference features
    (e.g. the paper's t1, t2) whose membership in the space and |r| rank are
    reported.
    """
    check_params(params)
    t0 = time.perf_counter()
    primaries = np.ascontiguousarray(primaries, dtype=float)
    if primaries.shape[0] != len(names):
        raise ValueError("one name per primary feature is needed")
    scorer = Scorer(y_fit, primaries.shape[1], params, seed)
    unary_index = {n: i for i, n in enumerate(UNARY)}
    binary_index = {n: i for i, n in enumerate(BINARY)}
    counts: dict[str, dict[str, int]] = {}
    seen = FingerprintSet()
    top = _TopK(params.sis_size)
    order = 0
    probe_abs: dict[str, float] = {}
    probe_fp: dict[str, int] = {}
    probe_above: dict[str, int] = {}
    for pname, pvals in (probes or {}).items():
        st, pr, pf = scorer.assess(np.asarray(pvals, dtype=float)[None, :], None)
        if st[0] != VALID:
            raise ValueError(f"probe feature {pname!r} is not a valid feature ({REASONS[st[0]]})")
        probe_abs[pname], probe_fp[pname], probe_above[pname] = abs(float(pr[0])), int(pf[0]), 0

    def tally(rung: int, status: np.ndarray) -> None:
        c = counts.setdefault(str(rung), {"candidates": 0, **{r: 0 for r in REASONS}})
        c["candidates"] += len(status)
        for code, reason in enumerate(REASONS):
            c[reason] += int((status == code).sum())

    def dedup(status: np.ndarray, fp: np.ndarray) -> None:
        # First occurrence in generation order wins: simpler expressions come first.
        idx = np.flatnonzero(status == VALID)
        status[idx[~seen.add_new(fp[idx])]] = DUPLICATE

    def score(status: np.ndarray, r: np.ndarray, rec: np.ndarray) -> np.ndarray:
        nonlocal order
        ok = status == VALID
        m = len(status)
        orders = np.arange(order, order + m, dtype=np.int64)
        order += m
        if ok.any():
            top.push(r[ok], orders[ok], rec[ok])
            absr = np.abs(r[ok])
            for pname, pa in probe_abs.items():
                probe_above[pname] += int((absr > pa * (1 + 1e-12)).sum())
        return orders

    def stream(rung: int, m: int, start: int, basis: _TopK | None) -> None:
        # Candidates of ``rung`` over the current layer, block by block, never materialized.
        for kind, name, a, b in _groups(m, start, params):
            op_i = unary_index[name] if kind == SRC_UNARY else binary_index[name]
            for s in range(0, len(a), params.chunk_size):
                aa = a[s : s + params.chunk_size]
                bb = None if b is None else b[s : s + params.chunk_size]
                st, rr, ff = scorer.screen(layer.values, kind, op_i, aa, bb)
                dedup(st, ff)
                tally(rung, st)
                rec = np.empty((len(aa), 5), dtype=np.int64)
                rec[:, 0], rec[:, 1], rec[:, 2] = kind, op_i, aa
                rec[:, 3] = -1 if bb is None else bb
                rec[:, 4] = rung
                orders = score(st, rr, rec)
                ok = st == VALID
                if basis is not None and ok.any():
                    basis.push(rr[ok], orders[ok], rec[ok])

    # Rung 0: the primaries themselves.
    status, r, fp = scorer.assess(primaries, None)
    dedup(status, fp)
    tally(0, status)
    primary_duplicates = {
        names[i]: names[int(np.flatnonzero(fp[:i] == fp[i])[0])]
        for i in np.flatnonzero(status == DUPLICATE)
    }
    if primary_duplicates:
        log.info("primary features that are affine copies of earlier ones: %s", primary_duplicates)
    keep = status == VALID
    layer = Layer(
        values=primaries[keep],
        expressions=[n for n, k in zip(names, keep, strict=True) if k],
        n_ops=np.zeros(int(keep.sum()), dtype=np.int64),
        rung=np.zeros(int(keep.sum()), dtype=np.int64),
    )
    layer_r = r[keep]
    start = 0
    # Layer rows already scored for SIS (a streamed basis rung scores as it goes).
    n_unscored = None
    # Materialize rungs 1..C-1.
    for rung in range(1, params.complexity):
        m = layer.values.shape[0]
        if params.last_rung_basis > 0 and rung == params.complexity - 1:
            kept = min(params.last_rung_basis, count_candidates(m, start, params))
            need = (m + kept) * layer.values.shape[1] * 8 / 2**20
        else:
            need = count_candidates(m, start, params) * layer.values.shape[1] * 8 / 2**20
        if need > params.max_materialized_mib:
            raise ValueError(
                f"descriptor.complexity={params.complexity} needs rung {rung} in memory "
                f"(up to {need:.0f} MiB > descriptor.max_materialized_mib="
                f"{params.max_materialized_mib}); lower the complexity or the operator sets, "
                "or keep a screened basis of the rung below the last (descriptor.last_rung_basis)"
            )
        if params.last_rung_basis > 0 and rung == params.complexity - 1:
            # Every feature of this rung is scored while streamed; its best
            # last_rung_basis join the layer for the last rung.
            basis = _TopK(params.last_rung_basis)
            stream(rung, m, start, basis)
            # Generation order, not |r| order: with a basis holding the whole
            # rung, the last rung is generated exactly as in the full space.
            bvals, bexpr, bops, brung = _rebuild(basis.rec[np.argsort(basis.order, kind="stable")], layer)
            n_unscored = m
            start = m
            layer = Layer(
                values=np.concatenate([layer.values, bvals]),
                expressions=layer.expressions + bexpr,
                n_ops=np.concatenate([layer.n_ops, bops]),
                rung=np.concatenate([layer.rung, brung]),
            )
            continue
        vals, exprs, nops, rs = [], [], [], []
        for kind, name, a, b in _groups(m, start, params):
            for s in range(0, len(a), params.chunk_size):
                aa = a[s : s + params.chunk_size]
                bb = None if b is None else b[s : s + params.chunk_size]
                v, dom = evaluate(kind, name, layer.values, aa, bb)
                st, rr, ff = scorer.assess(v, dom)
                dedup(st, ff)
                tally(rung, st)
                ok = st == VALID
                vals.append(v[ok])
                rs.append(rr[ok])
                for ia, ib in zip(aa[ok].tolist(), (bb[ok].tolist() if bb is not None else [None] * int(ok.sum())), strict=True):
                    eb = None if ib is None else layer.expressions[ib]
                    exprs.append(_fmt(kind, name, layer.expressions[ia], eb))
                    nops.append(1 + layer.n_ops[ia] + (0 if ib is None else layer.n_ops[ib]))
        start = m
        layer = Layer(
            values=np.concatenate([layer.values, *vals]),
            expressions=layer.expressions + exprs,
            n_ops=np.concatenate([layer.n_ops, np.asarray(nops, dtype=np.int64)]),
            rung=np.concatenate([layer.rung, np.full(len(exprs), rung, dtype=np.int64)]),
        )
        layer_r = np.concatenate([layer_r, *rs])
    t_materialized = time.perf_counter() - t0

    # Every materialized feature is a SIS candidate (a streamed basis already was).
    n_layer = len(layer_r) if n_unscored is None else n_unscored
    rec = np.zeros((n_layer, 5), dtype=np.int64)
    rec[:, 0] = SRC_LAYER
    rec[:, 2] = np.arange(n_layer)
    score(np.full(n_layer, VALID, dtype=np.int8), layer_r[:n_layer], rec)

    # The last rung, streamed block by block.
    if params.complexity >= 1:
        stream(params.complexity, layer.values.shape[0], start, None)
    t_total = time.perf_counter() - t0

    # Rebuild the selected features from their records (values, expressions);
    # records index the final layer, whose first rows are the earlier layers.
    sel_vals, sel_expr, sel_ops, sel_rung = _rebuild(top.rec, layer)
    n_candidates = sum(c["candidates"] for c in counts.values())
    n_unique = sum(c["valid"] for c in counts.values())
    probes_out: dict[str, dict[str, float | bool | int]] = {}
    for pname in probe_abs:
        probes_out[pname] = {
            "in_space": bool(seen.contains(np.array([probe_fp[pname]], dtype=np.int64))[0]),
            "abs_r": probe_abs[pname],
            "rank_by_abs_r": probe_above[pname] + 1,
            "in_sis": probe_above[pname] + 1 <= params.sis_size,
        }
    log.info(
        "feature space: %d candidates, %d unique valid, SIS kept %d in %.1f s",
        n_candidates, n_unique, len(sel_expr), t_total,
    )
    return SISResult(
        expressions=sel_expr,
        values=sel_vals.reshape(len(sel_expr), primaries.shape[1]),
        r=top.r.copy(),
        n_ops=sel_ops,
        rung=sel_rung,
        counts=counts,
        n_candidates=n_candidates,
        n_unique_valid=n_unique,
        probes=probes_out,
        primary_duplicates=primary_duplicates,
        timings={"materialize_s": t_materialized, "generate_and_sis_s": t_total},
    )
