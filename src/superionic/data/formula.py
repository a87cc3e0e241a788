"""Strict chemical-formula parsing with unambiguous, recorded repairs.

pymatgen's own parser is lenient: ``Li1.3AL0.3Ti1.7(PO4)3`` becomes dummy
species "A" and "L" without complaint. Labels built on such a composition
would be silently wrong, so formulas are tokenised here against the periodic
table and anything doubtful is either repaired by a stated rule or rejected
with a reason.

Repairs (each recorded as text):
- surrounding/internal whitespace removed;
- square brackets read as parentheses;
- a composite written ``A–xB`` (en dash, em dash or hyphen between phases)
  becomes the overall composition A + x·B and is flagged as a composite;
- element-symbol case: a run like ``AL`` whose letters are not both elements
  becomes ``Al``; a run like ``HF`` that is valid either way (H + F or Hf) is
  resolved by charge neutrality: it is rewritten only when the formula as
  written cannot be charge balanced and exactly one rewrite can.

Rejections: empty text, unknown element symbols, unbalanced parentheses,
subscripts that are not plain positive decimals no larger than
:data:`MAX_SUBSCRIPT` (``Li1e400O`` would overflow, ``Li1e10O`` is no
material, ``Li-1O`` has a negative one), and a formula whose only parenthesised group trails
without a subscript and which is not charge balanced (a subscript is missing, and
guessing it would invent data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product

from pymatgen.core import Composition, Element

_ELEMENTS = frozenset(e.symbol for e in Element)
_DASHES = "\u2013\u2014\u2212"  # en dash, em dash, minus sign
# A subscript is a plain decimal; exponent notation is caught to be refused by name.
_TOKEN = re.compile(r"([A-Z][a-z]?)|(\d*\.?\d+(?:[eE][-+]?\d+)?)|([()])|(\S)")
# Larger than any unit-cell formula in the sources (tens to hundreds of atoms);
# a bigger subscript is a typo or an attack on the arithmetic, not a material.
MAX_SUBSCRIPT = 1000.0
_COMPOSITE = re.compile(r"^(?P<host>.+?)\s*[-\u2013\u2014\u2212+]\s*(?P<amount>\d*\.?\d+)\s*(?P<guest>[A-Z].*)$")
_TRAILING_BARE_GROUP = re.compile(r"\)$")
# Published doped formulas are rounded to 2-3 decimals.
_CHARGE_TOLERANCE = 0.02


class FormulaError(ValueError):
    """A formula that cannot be read unambiguously."""


@dataclass(frozen=True)
class ParsedFormula:
    """Outcome of reading one formula string."""

    original: str
    composition: Composition | None = None
    cleaned: str | None = None
    repairs: tuple[str, ...] = field(default_factory=tuple)
    error: str | None = None
    is_composite: bool = False

    @property
    def ok(self) -> bool:
        return self.composition is not None


def _tokenise(text: str) -> dict[str, float]:
    """Parse ``text`` (no spaces) into element amounts; raise FormulaError."""
    stack: list[dict[str, float]] = [{}]
    last: dict[str, float] | str | None = None  # what a following number multiplies
    for match in _TOKEN.finditer(text):
        symbol, number, paren, other = match.groups()
        if other is not None:
            raise FormulaError(f"unexpected character {other!r}")
        if symbol is not None:
            if symbol not in _ELEMENTS:
                raise FormulaError(f"unknown element symbol {symbol!r}")
            stack[-1][symbol] = stack[-1].get(symbol, 0.0) + 1.0
            last = symbol
        elif number is not None:
            if "e" in number.lower():
                raise FormulaError(f"subscript {number!r} in exponent notation")
            amount = float(number)
            if amount <= 0:
                raise FormulaError(f"non-positive amount {number!r}")
            if amount > MAX_SUBSCRIPT:
                raise FormulaError(f"subscript {number!r} above {MAX_SUBSCRIPT:g}")
            if isinstance(last, str):
                stack[-1][last] += amount - 1.0
            elif isinstance(last, dict):
                for el, n in last.items():
                    stack[-1][el] = stack[-1].get(el, 0.0) + n * (amount - 1.0)
            else:
                raise FormulaError(f"number {number!r} without an element or group before it")
            last = None
        elif paren == "(":
            stack.append({})
            last = None
        else:
            if len(stack) == 1:
                raise FormulaError("unbalanced ')'")
            group = stack.pop()
            if not group:
                raise FormulaError("empty parentheses")
            for el, n in group.items():
                stack[-1][el] = stack[-1].get(el, 0.0) + n
            last = group
    if len(stack) != 1:
        raise FormulaError("unbalanced '('")
    amounts = {el: n for el, n in stack[0].items() if n > 0}
    if not amounts:
        raise FormulaError("no elements")
    return amounts


@lru_cache(maxsize=4096)
def _charge_balanced(amounts: tuple[tuple[str, float], ...]) -> bool:
    """Can each element take one common oxidation state so the total charge is zero?

    Works for fractional (doped) compositions, which pymatgen's
    ``oxi_state_guesses`` refuses.
    """
    reachable = {0.0}
    for symbol, n in amounts:
        element = Element(symbol)
        states = element.common_oxidation_states or element.icsd_oxidation_states or (0,)
        reachable = {round(total + n * q, 6) for total in reachable for q in states}
    return any(abs(total) < _CHARGE_TOLERANCE for total in reachable)


def _is_balanced(amounts: dict[str, float]) -> bool:
    return _charge_balanced(tuple(sorted(amounts.items())))


def _case_candidates(text: str) -> list[tuple[str, list[str]]]:
    """Rewrites of adjacent capital pairs (``XY`` -> ``Xy``); first is ``text`` itself."""
    pairs = [m for m in re.finditer(r"([A-Z])([A-Z])(?![a-z])", text) if (m[1] + m[2].lower()) in _ELEMENTS]
    candidates = []
    for choice in product([False, True], repeat=len(pairs)):
        chars = list(text)
        notes = []
        for use, m in zip(choice, pairs, strict=True):
            if use:
                chars[m.start(2)] = m[2].lower()
                notes.append(f"element case {m[0]!r} -> {m[1] + m[2].lower()!r}")
        candidates.append(("".join(chars), notes))
    return candidates


def _parse_single(text: str) -> tuple[dict[str, float], str, list[str]]:
    candidates = _case_candidates(text) if len(re.findall(r"[A-Z][A-Z]", text)) <= 4 else [(text, [])]
    readable = []
    errors = []
    for cand, notes in candidates:
        try:
            readable.append((_tokenise(cand), cand, notes))
        except FormulaError as exc:
            errors.append(str(exc))
    if not readable:
        raise FormulaError(errors[0])
    if len(readable) == 1:
        return readable[0]
    as_written = readable[0] if not readable[0][2] else None
    if as_written is not None and _is_balanced(as_written[0]):
        return as_written
    balanced = [r for r in readable if r[2] and _is_balanced(r[0])]
    if len(balanced) == 1:
        amounts, cand, notes = balanced[0]
        return amounts, cand, [*notes, "chosen by charge neutrality"]
    if as_written is not None:
        return as_written
    raise FormulaError(f"ambiguous element case: {[c for _, c, _ in readable]}")


def parse_formula(raw: object) -> ParsedFormula:
    """Read one formula; never raises for bad input, returns ``error`` instead."""
    original = "" if raw is None else str(raw)
    text = original
    repairs: list[str] = []
    if raw is None or not text.strip():
        return ParsedFormula(original, error="empty formula")
    if text != text.strip():
        repairs.append("stripped surrounding whitespace")
        text = text.strip()
    if re.search(r"\s", text) and not _COMPOSITE.match(text):
        repairs.append("removed internal whitespace")
        text = re.sub(r"\s+", "", text)
    if "[" in text or "]" in text:
        repairs.append("square brackets read as parentheses")
        text = text.replace("[", "(").replace("]", ")")
    is_composite = False
    try:
        composite = _COMPOSITE.match(text)
        if composite and any(d in text for d in _DASHES + "-+"):
            host, host_text, host_notes = _parse_single(re.sub(r"\s+", "", composite["host"]))
            guest, guest_text, guest_notes = _parse_single(re.sub(r"\s+", "", composite["guest"]))
            # both sides of a composite are compounds: "Li-1O" is a sign error, not Li + O
            if len(host) < 2 or len(guest) < 2:
                raise FormulaError("a dash between an element and a number: negative subscript?")
            x = float(composite["amount"])
            if not 0 < x <= MAX_SUBSCRIPT:
                raise FormulaError(f"composite fraction {composite['amount']!r} outside (0, {MAX_SUBSCRIPT:g}]")
            amounts = dict(host)
            for el, n in guest.items():
                amounts[el] = amounts.get(el, 0.0) + x * n
            cleaned = f"{host_text}+{composite['amount']}{guest_text}"
            repairs += host_notes + guest_notes
            repairs.append(f"composite {host_text} + {composite['amount']}*{guest_text} read as its overall composition")
            is_composite = True
        else:
            amounts, cleaned, notes = _parse_single(text)
            repairs += notes
            # "(PO4)" as the only group is the published missing-subscript defect;
            # beside other groups, as in (SiO4)2(PO4), a bare group means one.
            only_group = cleaned.count("(") == 1
            if only_group and _TRAILING_BARE_GROUP.search(cleaned) and not _is_balanced(amounts):
                raise FormulaError(
                    "trailing parenthesised group has no subscript and the formula is not "
                    "charge balanced (missing subscript?)"
                )
    except FormulaError as exc:
        return ParsedFormula(original, error=str(exc), repairs=tuple(repairs))
    return ParsedFormula(
        original,
        composition=Composition(amounts),
        cleaned=cleaned,
        repairs=tuple(repairs),
        is_composite=is_composite,
    )
