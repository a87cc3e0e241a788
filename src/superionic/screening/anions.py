"""Anion class of a composition (the paper's Figure 2c breakdown).

Rule (greedy charge balance, fast and deterministic; pymatgen's full
oxidation-state guesser takes ~0.4 s per formula here and finds no solution
for 20 % of them):

1. Anion-forming elements and their nominal anion charges: F, Cl, Br, I (-1),
   O, S, Se, Te (-2), N, P (-3), C (-4), H (-1).
2. Every other element is a cation; the positive charge available is the sum
   of (amount x highest common oxidation state) over them.
3. Anion-forming elements are visited from most to least electronegative
   (Pauling); each one is an anion while the anion charge assigned so far is
   below the available positive charge, otherwise it is a cation (the S in a
   sulfate, the P in a phosphate, the C in a carbonate, the Cl in a
   perchlorate, the H in a hydroxide).
4. The classes of the anions give the class: one class -> that class (mixed
   halogens stay "halide"); several -> "mixed-anion"; none (intermetallics,
   elements, borides, silicides, arsenides...) -> "other".

Examples: Li3PO4 oxide, Li3PS4 sulfide, LiBH4 hydride, LiOH oxide, LiNH2
nitride, Li3OCl mixed-anion, LiClO4 oxide, Li6PS5Cl mixed-anion.
"""

from __future__ import annotations

from functools import lru_cache

from pymatgen.core import Composition, Element

ANION_CHARGE: dict[str, int] = {
    "F": 1, "Cl": 1, "Br": 1, "I": 1,
    "O": 2, "S": 2, "Se": 2, "Te": 2,
    "N": 3, "P": 3, "C": 4, "H": 1,
}  # fmt: skip

ANION_CLASS_OF: dict[str, str] = {
    "F": "halide", "Cl": "halide", "Br": "halide", "I": "halide",
    "O": "oxide", "S": "sulfide", "Se": "selenide", "Te": "telluride",
    "N": "nitride", "P": "phosphide", "C": "carbide", "H": "hydride",
}  # fmt: skip

MIXED = "mixed-anion"
OTHER = "other"
CLASSES = [
    "oxide", "sulfide", "selenide", "telluride", "halide", "nitride",
    "hydride", "phosphide", "carbide", MIXED, OTHER,
]  # fmt: skip


def _max_cation_charge(symbol: str) -> int:
    states = [s for s in Element(symbol).common_oxidation_states if s > 0]
    return max(states, default=0)


def anions_of(composition: Composition) -> list[str]:
    """Elements acting as anions under the greedy charge-balance rule."""
    amounts = {str(el): amt for el, amt in composition.items()}
    positive = sum(amt * _max_cation_charge(el) for el, amt in amounts.items() if el not in ANION_CHARGE)
    candidates = sorted(
        (el for el in amounts if el in ANION_CHARGE), key=lambda el: (-Element(el).X, el)
    )
    anions: list[str] = []
    assigned = 0.0
    for el in candidates:
        # The most electronegative one is always an anion (there is always a
        # less electronegative partner: Li is in every pool entry).
        if not anions or assigned < positive - 1e-9:
            anions.append(el)
            assigned += amounts[el] * ANION_CHARGE[el]
    if len(amounts) == 1:
        return []  # an element is not a salt
    return anions


@lru_cache(maxsize=None)
def classify_formula(formula: str) -> tuple[str, str]:
    """(anion class, "-".join(anions)) of a formula."""
    anions = anions_of(Composition(formula))
    classes = sorted({ANION_CLASS_OF[a] for a in anions})
    if not classes:
        label = OTHER
    elif len(classes) == 1:
        label = classes[0]
    else:
        label = MIXED
    return label, "-".join(anions)
