"""CD-145 composition descriptors with array operations, equal to matminer's.

matminer featurizes one composition at a time through Python lists
(a few hundred compositions/s), which makes screening pools and exploratory sweeps
over hundreds of thousands of compositions slow. Every CD-145 descriptor is a
weighted statistic over the elements present, so a whole batch can be
computed from a dense amount matrix and per-element tables instead.

Equality with ``superionic.features.composition.featurize_compositions_matminer``
(the reference) is to floating-point rounding, and NaN exactly where matminer
gives NaN. The matminer semantics reproduced here, several of them easy to
get wrong:

- Weights are the composition's raw amounts (``Composition.element_composition``),
  not fractions. Means do not care, but two tolerances do: ``mode`` ties
  elements whose amounts satisfy ``np.isclose(amount, max_amount)``
  (``rtol=1e-5, atol=1e-8``), and IonProperty's "compound possible" is
  ``np.isclose(sum(oxidation_state * amount), 0)``, i.e. ``|charge| <= 1e-8`` in
  formula units. Doped formulas whose rounded subscripts miss neutrality by
  more than that are "not possible".
- ElementProperty uses magpie data without imputation: an element lacking a
  property makes minimum/maximum/range/mean/avg_dev NaN, and ``mode`` NaN only
  when that element is among the most abundant (ties take the smallest value).
- ValenceOrbital and IonProperty are built with their default
  ``impute_nan=True``: valence counts missing from magpie are replaced by the
  magpie average over all elements, and pymatgen electronegativities missing
  (noble gases, superheavies) by the pymatgen average, so these 7 columns are
  never NaN.
- IonProperty(fast=True) tries every combination of one pymatgen *common*
  oxidation state per element; an element with none (He, Ne, Ar, Rn, Db..Og)
  makes every multi-element composition "not possible". A single-element
  composition is "possible" with zero ionic character, whatever the element.
- The max ionic character is that of the pair with the largest
  electronegativity difference, and the average sums over unordered pairs
  ``f_i f_j (1 - exp(-(X_i - X_j)^2 / 4))`` with fractions ``f``.

Compositions carrying oxidation states (pymatgen ``Species``) take another
IonProperty branch (given charges); the amount matrix cannot express them, so
:func:`cd145_frame` hands those rows' three ionic columns to matminer.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import combinations

import numpy as np
import pandas as pd
from pymatgen.core import Composition, Element

CompositionLike = Composition | Mapping[str, float]

# numpy.isclose defaults, which matminer's mode and charge-balance tests use.
_ISCLOSE_RTOL = 1e-5
_ISCLOSE_ATOL = 1e-8
# Rows times oxidation-state combinations evaluated at once in the
# charge-balance search (8 bytes each, a few arrays of this length).
_COMBO_BUDGET = 1 << 20
_DEFAULT_CHUNK_ROWS = 20_000


@dataclass(frozen=True)
class _Tables:
    """Per-element data for Z = 1..118 (row Z-1) and the CD-145 layout."""

    symbols: tuple[str, ...]
    index: Mapping[str, int]
    p_list: tuple[int, ...]
    magpie: np.ndarray  # (118, 22) ElementProperty values, NaN where magpie has none
    magpie_stats: tuple[str, ...]
    valence: np.ndarray  # (118, 5) imputed magpie N{s,p,d,f}Valence, NValence
    electronegativity: np.ndarray  # (118,) imputed pymatgen X
    oxidation_states: np.ndarray  # (118, max_states) common oxidation states, padded with 0
    n_oxidation_states: np.ndarray  # (118,)
    labels: tuple[str, ...]


@cache
def _tables() -> _Tables:
    """Read every table through matminer's own featurizer objects, once.

    Going through the same loader objects the reference featurizer builds
    guarantees identical values (including matminer's imputation rules) and
    fails loudly if a matminer upgrade changes the preset.
    """
    from matminer.featurizers.composition import ElementProperty, IonProperty, Stoichiometry, ValenceOrbital

    stoichiometry = Stoichiometry()
    element_property = ElementProperty.from_preset("magpie", impute_nan=False)
    valence_orbital = ValenceOrbital(props=["frac"])
    ion_property = IonProperty(fast=True)
    supported = {"minimum", "maximum", "range", "mean", "avg_dev", "mode"}
    if stoichiometry.num_atoms or stoichiometry.p_list is None or not set(element_property.stats) <= supported:
        raise RuntimeError("matminer's CD-145 presets changed; superionic.features.cd145 needs updating")
    if tuple(valence_orbital.orbitals) != ("s", "p", "d", "f") or list(valence_orbital.props) != ["frac"]:
        raise RuntimeError("matminer's ValenceOrbital layout changed; superionic.features.cd145 needs updating")

    elements = [Element.from_Z(z) for z in range(1, 119)]
    magpie = element_property.data_source
    magpie_values = np.array(
        [[float(magpie.get_elemental_property(e, p)) for p in element_property.features] for e in elements]
    )
    valence_source = valence_orbital.data_source
    valence_props = [f"N{o}Valence" for o in valence_orbital.orbitals] + ["NValence"]
    valence = np.array([[float(valence_source.get_elemental_property(e, p)) for p in valence_props] for e in elements])
    with warnings.catch_warnings():
        # pymatgen warns once per element without a Pauling electronegativity;
        # matminer imputes those, which is what we want to copy.
        warnings.simplefilter("ignore", UserWarning)
        electronegativity = np.array([float(ion_property.data_source.get_elemental_property(e, "X")) for e in elements])
    states = [tuple(ion_property.data_source.get_oxidation_states(e)) for e in elements]
    width = max(len(s) for s in states)
    oxidation = np.zeros((len(elements), width))
    for row, s in enumerate(states):
        oxidation[row, : len(s)] = s
    labels = (
        stoichiometry.feature_labels()
        + element_property.feature_labels()
        + valence_orbital.feature_labels()
        + ion_property.feature_labels()
    )
    symbols = tuple(e.symbol for e in elements)
    return _Tables(
        symbols=symbols,
        index={s: i for i, s in enumerate(symbols)},
        p_list=tuple(stoichiometry.p_list),
        magpie=magpie_values,
        magpie_stats=tuple(element_property.stats),
        valence=valence,
        electronegativity=electronegativity,
        oxidation_states=oxidation,
        n_oxidation_states=np.array([len(s) for s in states]),
        labels=tuple(labels),
    )


def feature_labels() -> list[str]:
    """The 145 column names, in matminer's order."""
    return list(_tables().labels)


# ---------------------------------------------------------------------------
# Input: compositions -> dense amount matrix


def _element_amounts(composition: CompositionLike) -> Mapping[str, float]:
    """Element symbol -> amount, as matminer would see it."""
    if isinstance(composition, Composition):
        return composition.get_el_amt_dict()
    amounts: dict[str, float] = {}
    for symbol, amount in composition.items():
        amount = float(amount)
        # Composition's own rule: tiny amounts vanish, negative ones are refused.
        if amount < -Composition.amount_tolerance or np.isnan(amount):
            raise ValueError(f"amount {amount!r} of {symbol!r} is not a non-negative number")
        if abs(amount) >= Composition.amount_tolerance:
            amounts[symbol] = amount
    return amounts


def amounts_matrix(
    compositions: Sequence[CompositionLike], elements: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Dense (n, E) amount matrix and its column symbols.

    ``compositions`` are pymatgen Compositions (species are merged into their
    elements) or mappings of element symbol to amount. Columns are the given
    ``elements`` or, by default, every element that occurs, in order of Z.
    Amounts are kept unnormalised because matminer's tolerances act on them.
    """
    tables = _tables()
    dicts = [_element_amounts(c) for c in compositions]
    if elements is None:
        seen = set().union(*dicts) if dicts else set()
        unknown = sorted(seen - tables.index.keys())
        if unknown:
            raise ValueError(f"unknown element symbols: {unknown}")
        elements = sorted(seen, key=tables.index.__getitem__)
    columns = {symbol: j for j, symbol in enumerate(elements)}
    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    for i, amounts in enumerate(dicts):
        for symbol, amount in amounts.items():
            if symbol not in columns:
                raise ValueError(f"composition {i} contains {symbol!r}, which is not among the columns")
            rows.append(i)
            cols.append(columns[symbol])
            values.append(amount)
    matrix = np.zeros((len(dicts), len(elements)))
    matrix[rows, cols] = values
    return matrix, list(elements)


# ---------------------------------------------------------------------------
# Core: amount matrix -> CD-145


@dataclass(frozen=True)
class _Rows:
    """Rows that all contain exactly k elements, packed as (m, k) in order of Z.

    Grouping rows by element count means no padding and no masks: most
    compositions have 3-4 elements, so padding everyone to the richest row's
    width would more than double the work.
    """

    z: np.ndarray  # (m, k) table rows (Z-1)
    amount: np.ndarray  # (m, k) raw amounts
    total: np.ndarray  # (m,) sum of amounts


def _slot_sum(values: np.ndarray) -> np.ndarray:
    """Sum over axis 1 one slot at a time, as matminer sums a short list.

    A fixed order (numpy's pairwise summation regroups terms by width) keeps
    every row's result bit-identical however rows are chunked or grouped.
    """
    out = np.zeros(values.shape[:1] + values.shape[2:])
    for j in range(values.shape[1]):
        out += values[:, j]
    return out


def _pack(amounts: np.ndarray, column_z: np.ndarray, width: int) -> _Rows:
    present = amounts > 0
    # Present elements first, in order of Z: a fixed summation order, so the
    # result does not depend on how the caller ordered the columns.
    order = np.argsort(np.where(present, column_z, np.iinfo(np.int64).max), axis=1)[:, :width]
    amount = np.take_along_axis(amounts, order, axis=1)
    return _Rows(z=column_z[order], amount=amount, total=_slot_sum(amount))


def _stoichiometry(rows: _Rows, p_list: Sequence[int]) -> np.ndarray:
    fraction = rows.amount / rows.total[:, None]
    out = np.empty((len(rows.total), len(p_list)))
    for j, p in enumerate(p_list):
        # The "0-norm" is the number of elements, not a limit of the p-norm.
        out[:, j] = rows.z.shape[1] if p == 0 else _slot_sum(fraction**p) ** (1.0 / p)
    return out


def _property_stats(rows: _Rows, values: np.ndarray, stats: Sequence[str]) -> np.ndarray:
    """matminer PropertyStats over every property at once: (m, n_props * n_stats).

    NaN arithmetic does the NaN bookkeeping: one element's NaN propagates
    through min, max and the weighted sums exactly as in matminer, and into
    ``mode`` only when that element is among the most abundant.
    """
    v = values[rows.z]  # (m, k, P)
    w = rows.amount[:, :, None]
    total = rows.total[:, None]
    minimum = v.min(axis=1)
    maximum = v.max(axis=1)
    mean = _slot_sum(w * v) / total
    avg_dev = _slot_sum(w * np.abs(v - mean[:, None, :])) / total
    # mode: the smallest value among the elements whose amount isclose() to the largest.
    wmax = rows.amount.max(axis=1, keepdims=True)
    tied = np.abs(rows.amount - wmax) <= _ISCLOSE_ATOL + _ISCLOSE_RTOL * np.abs(wmax)
    mode = np.where(tied[:, :, None], v, np.inf).min(axis=1)
    by_name = {
        "minimum": minimum, "maximum": maximum, "range": maximum - minimum,
        "mean": mean, "avg_dev": avg_dev, "mode": mode,
    }
    # Layout: for each property, its stats in preset order.
    return np.stack([by_name[s] for s in stats], axis=2).reshape(len(rows.total), -1)


def _valence_fractions(rows: _Rows, valence: np.ndarray) -> np.ndarray:
    average = _slot_sum(rows.amount[:, :, None] * valence[rows.z]) / rows.total[:, None]
    return average[:, :4] / average[:, 4:5]


def _ionic_character(rows: _Rows, electronegativity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = electronegativity[rows.z]
    # 1 - exp(-d²/4) grows with |d|, so the max over pairs is the widest pair's;
    # a single element has no pair and matminer gives 0 (as does d = 0).
    max_char = 1.0 - np.exp(-0.25 * (x.max(axis=1) - x.min(axis=1)) ** 2)
    fraction = rows.amount / rows.total[:, None]
    # Pairs in matminer's order (itertools.combinations).
    avg_char = np.zeros(len(rows.total))
    for i, j in combinations(range(x.shape[1]), 2):
        avg_char += fraction[:, i] * fraction[:, j] * (1.0 - np.exp(-0.25 * (x[:, i] - x[:, j]) ** 2))
    return max_char, avg_char


def _charge_sums(
    amount: np.ndarray, z: np.ndarray, radix: np.ndarray, stride: np.ndarray, owner: np.ndarray, combo: np.ndarray,
    oxidation: np.ndarray,
) -> np.ndarray:
    """Σ_j state_j * amount_j for each (owner row, combination index) pair.

    Combination ``c`` picks state ``(c // stride_j) % radix_j`` of element j
    (mixed-radix decoding), so any slice of the Cartesian product is
    enumerated without materialising it. Summed element by element in order
    of Z; matminer's dot runs in formula order, which can round differently
    only for a charge within rounding of the 1e-8 threshold.
    """
    total = np.zeros(len(combo))
    for j in range(z.shape[1]):
        digit = (combo // stride[owner, j]) % radix[owner, j]
        total += oxidation[z[owner, j], digit] * amount[owner, j]
    return total


def _compound_possible(rows: _Rows, oxidation: np.ndarray, n_states: np.ndarray) -> np.ndarray:
    """IonProperty(fast=True): some choice of one common state per element gives |charge| <= 1e-8.

    Vectorised over (row, combination) pairs rather than grouped by element
    set: MP-like data has about one distinct element set per two rows, so a
    Python loop over sets would dominate.
    """
    m, k = rows.z.shape
    if k == 1:
        return np.ones(m, dtype=bool)  # matminer: a single element is always "possible"
    radix = n_states[rows.z].astype(np.int64)
    # A float product first: a many-element row could overflow int64.
    n_combos = radix.astype(float).prod(axis=1)
    if np.any(n_combos >= 2.0**62):
        raise ValueError("a composition has too many oxidation-state combinations to enumerate")
    # stride_j = product of the radices after j
    stride = np.ones_like(radix)
    stride[:, :-1] = np.cumprod(radix[:, ::-1], axis=1)[:, ::-1][:, 1:]
    possible = np.zeros(m, dtype=bool)
    # An element without common states leaves an empty product: not possible.
    small = np.flatnonzero((n_combos > 0) & (n_combos <= _COMBO_BUDGET))
    large = np.flatnonzero(n_combos > _COMBO_BUDGET)

    # Ordinary rows: all their combinations at once, in batches of 1-2 budgets.
    counts = n_combos[small].astype(np.int64)
    batch = (np.cumsum(counts) - counts) // _COMBO_BUDGET
    for b in np.unique(batch):
        members = small[batch == b]
        c = counts[batch == b]
        owner = np.repeat(np.arange(len(members)), c)
        combo = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
        charge = _charge_sums(
            rows.amount[members], rows.z[members], radix[members], stride[members], owner, combo, oxidation
        )
        possible[members] = np.bincount(owner, weights=np.abs(charge) <= _ISCLOSE_ATOL, minlength=len(members)) > 0

    # Rare rows with huge products: walk the product in blocks, stop at the first hit.
    for row in large:
        one = slice(row, row + 1)
        start = 0
        while start < n_combos[row] and not possible[row]:
            combo = np.arange(start, int(min(start + _COMBO_BUDGET, n_combos[row])), dtype=np.int64)
            owner = np.zeros(len(combo), dtype=np.int64)
            charge = _charge_sums(rows.amount[one], rows.z[one], radix[one], stride[one], owner, combo, oxidation)
            possible[row] = bool((np.abs(charge) <= _ISCLOSE_ATOL).any())
            start += len(combo)
    return possible


def _cd145_rows(rows: _Rows, tables: _Tables) -> np.ndarray:
    max_char, avg_char = _ionic_character(rows, tables.electronegativity)
    return np.column_stack(
        [
            _stoichiometry(rows, tables.p_list),
            _property_stats(rows, tables.magpie, tables.magpie_stats),
            _valence_fractions(rows, tables.valence),
            _compound_possible(rows, tables.oxidation_states, tables.n_oxidation_states).astype(float),
            max_char,
            avg_char,
        ]
    )


def _cd145_chunk(amounts: np.ndarray, column_z: np.ndarray, tables: _Tables) -> np.ndarray:
    out = np.full((amounts.shape[0], len(tables.labels)), np.nan)  # rows without elements stay NaN
    count = (amounts > 0).sum(axis=1)
    for width in np.unique(count[count > 0]):
        members = count == width
        out[members] = _cd145_rows(_pack(amounts[members], column_z, int(width)), tables)
    return out


def cd145_from_matrix(
    amounts: np.ndarray, elements: Sequence[str], chunk_rows: int = _DEFAULT_CHUNK_ROWS
) -> np.ndarray:
    """CD-145 for each row of an (n, E) amount matrix whose columns are ``elements``.

    Rows may be any positive multiple of a formula (fractions are taken here),
    but matminer's two absolute tolerances (mode ties, charge balance) act on
    the amounts as given: pass amounts as the Composition holds them to match
    matminer exactly. Every positive amount counts as present (a Composition,
    and :func:`amounts_matrix`, drop amounts below 1e-8 first). A row without
    any element gives NaN everywhere.
    Work is done ``chunk_rows`` rows at a time (temporaries of roughly 1.5 kB
    per row and element present).
    """
    tables = _tables()
    amounts = np.asarray(amounts, dtype=float)
    if amounts.ndim != 2 or amounts.shape[1] != len(elements):
        raise ValueError(f"amounts has shape {amounts.shape}, expected (n, {len(elements)})")
    if not np.all(amounts >= 0):  # also refuses NaN
        raise ValueError("amounts must be non-negative numbers")
    unknown = [s for s in elements if s not in tables.index]
    if unknown:
        raise ValueError(f"unknown element symbols: {unknown}")
    if len(set(elements)) != len(elements):
        raise ValueError("each element may head only one column")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be positive")
    column_z = np.array([tables.index[s] for s in elements], dtype=np.int64)
    out = np.empty((amounts.shape[0], len(tables.labels)))
    for start in range(0, amounts.shape[0], chunk_rows):
        stop = start + chunk_rows
        out[start:stop] = _cd145_chunk(amounts[start:stop], column_z, tables)
    return out


def _is_oxidation_decorated(composition: CompositionLike) -> bool:
    """Whether matminer's IonProperty takes its given-charges branch for this input."""
    if not isinstance(composition, Composition) or all(isinstance(k, Element) for k in composition):
        return False
    from matminer.featurizers.utils.oxidation import has_oxidation_states

    return bool(has_oxidation_states(composition))


def cd145_frame(compositions: Sequence[CompositionLike], chunk_rows: int = _DEFAULT_CHUNK_ROWS) -> pd.DataFrame:
    """CD-145 for each composition, rows in input order, matminer's columns."""
    labels = feature_labels()
    if len(compositions) == 0:
        return pd.DataFrame(columns=labels, dtype=float)
    matrix, elements = amounts_matrix(compositions)
    values = cd145_from_matrix(matrix, elements, chunk_rows=chunk_rows)
    decorated = [i for i, c in enumerate(compositions) if _is_oxidation_decorated(c)]
    if decorated:
        # Compositions of charged species (formula strings never are) get
        # IonProperty's other branch: the given charges decide "compound
        # possible", and the average ionic character pairs *species* amounts
        # with *element* positions (a matminer quirk for mixed valence such as
        # Fe2+ Fe3+2 O2-4). Rare enough to hand to matminer itself.
        from matminer.featurizers.composition import IonProperty

        ion = IonProperty(fast=True)
        first = labels.index(ion.feature_labels()[0])  # the ionic columns close the layout
        for i in decorated:
            values[i, first:] = np.asarray(ion.featurize(compositions[i]), dtype=float)
    return pd.DataFrame(values, columns=labels)
