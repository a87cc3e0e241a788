"""Every formula defect class named in the datasets README, plus the rules around them."""

import pytest

from superionic.data.formula import parse_formula


def _amounts(parsed):
    return {str(el): round(n, 6) for el, n in parsed.composition.items()}


def test_wrong_case_symbol_that_is_not_two_elements_is_repaired():
    parsed = parse_formula("Li1.3AL0.3Ti1.7(PO4)3")
    assert parsed.ok and _amounts(parsed)["Al"] == 0.3
    assert any("'AL' -> 'Al'" in r for r in parsed.repairs)


def test_ambiguous_case_resolved_by_charge_neutrality_and_space_removed():
    parsed = parse_formula("Li1.2Fe0.2HF1.8 (PO4)3")
    assert parsed.ok
    assert _amounts(parsed) == {"Li": 1.2, "Fe": 0.2, "Hf": 1.8, "P": 3.0, "O": 12.0}
    assert "removed internal whitespace" in parsed.repairs


def test_valid_uppercase_pairs_are_left_alone():
    # N+O (not nobelium), C+O (not cobalt), P+O (not polonium).
    for formula, element in [("LiNO3", "N"), ("Li2CO3", "C"), ("Li3PO4", "P")]:
        parsed = parse_formula(formula)
        assert parsed.ok and element in _amounts(parsed) and not parsed.repairs


def test_missing_subscript_is_rejected_not_guessed():
    parsed = parse_formula("Na2Mg0.5Zr1.5(PO4)")
    assert not parsed.ok and "missing subscript" in parsed.error


def test_bare_group_beside_other_groups_means_one():
    parsed = parse_formula("Na3.4Sc0.4Zr1.6(SiO4)2(PO4)")
    assert parsed.ok and _amounts(parsed)["P"] == 1.0


def test_en_dash_composite_becomes_overall_composition():
    parsed = parse_formula("LiCrTa(PO4)3\u2013 0.2Li3PO4")
    assert parsed.ok and parsed.is_composite
    assert _amounts(parsed) == {"Li": 1.6, "Cr": 1.0, "Ta": 1.0, "P": 3.2, "O": 12.8}


def test_sodium_nitride_is_a_formula_not_a_missing_value():
    parsed = parse_formula("NaN")
    assert parsed.ok and _amounts(parsed) == {"Na": 1.0, "N": 1.0}


@pytest.mark.parametrize(
    "text, reason",
    [("Xx2O", "unknown element"), ("Li2O)", "unbalanced"), ("Li(O2", "unbalanced"), ("Li0O", "non-positive"),
     ("", "empty"), (None, "empty"), ("Li2O#", "unexpected character")],
)
def test_unreadable_formulas_give_reasons(text, reason):
    parsed = parse_formula(text)
    assert not parsed.ok and reason in parsed.error


def test_lenient_pymatgen_dummy_species_are_not_accepted():
    # pymatgen alone reads "A" and "L" as dummy species.
    assert "unknown element symbol 'Q'" in parse_formula("LiQ2").error
    assert _amounts(parse_formula("LiAL")) == {"Li": 1.0, "Al": 1.0}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Li1e400O", "exponent"),
        ("Li1e10O", "exponent"),
        ("Li-1O", "negative subscript"),
        ("Li2000O", "above 1000"),
    ],
)
def test_subscripts_must_be_plain_bounded_positive_numbers(text, reason):
    parsed = parse_formula(text)
    assert not parsed.ok and reason in parsed.error
