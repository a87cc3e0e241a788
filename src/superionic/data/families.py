"""The curated structure-family map (``families`` in ``conf/families/``).

Sources name structure families independently ("Garnet" / "garnet",
"Li-halide" / "chlorides" / "cholorides"). Family-grouped cross-validation is
only honest if one family is one group, so every record's family goes through
this map before duplicates are merged. Spellings match case-insensitively
with surrounding spaces trimmed; a spelling the map does not list is kept as
its own family and counted (see :func:`family_mapping_table`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

MAPPED = "mapped"
UNMAPPED = "unmapped (kept as its own family)"


def _key(spelling: str) -> str:
    return " ".join(str(spelling).split()).casefold()


def family_lookup(families: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Spelling key -> canonical family; a spelling listed under two families is an error."""
    lookup: dict[str, str] = {}
    for canonical, spellings in families.items():
        for spelling in [canonical, *spellings]:
            key = _key(spelling)
            if lookup.get(key, canonical) != canonical:
                raise ValueError(
                    f"families: {spelling!r} is listed under both {lookup[key]!r} and {canonical!r}"
                )
            lookup[key] = str(canonical)
    return lookup


def canonical_families(values: pd.Series, families: Mapping[str, Sequence[str]]) -> pd.Series:
    """Each value's canonical family; unlisted spellings stay (trimmed), nulls stay null."""
    lookup = family_lookup(families)
    raw = values.astype("string").str.strip()
    raw = raw.mask(raw == "")
    mapped = raw.map(lambda v: lookup.get(_key(v), v) if isinstance(v, str) else v)
    return mapped.astype("string")


def family_mapping_table(values: pd.Series, families: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Every spelling seen, its canonical family, whether the map lists it, and its record count."""
    raw = values.astype("string").str.strip()
    raw = raw[raw.notna() & (raw != "")]
    if raw.empty:
        return pd.DataFrame(columns=["spelling", "family", "status", "records"])
    lookup = family_lookup(families)
    counts = raw.value_counts().rename_axis("spelling").reset_index(name="records")
    counts["family"] = [lookup.get(_key(s), s) for s in counts["spelling"]]
    counts["status"] = [MAPPED if _key(s) in lookup else UNMAPPED for s in counts["spelling"]]
    return counts.sort_values(["family", "spelling"]).reset_index(drop=True)[
        ["spelling", "family", "status", "records"]
    ]
