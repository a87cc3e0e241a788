"""Ingest stage: every conductivity source -> one tidy, room-temperature table.

Every raw row ends in exactly one of two places: the tidy table
(``paths.interim``) or ``paths.rejected_rows`` with its file, row and reason.
Repairs applied to accepted rows are listed in ``paths.repairs``.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from superionic.data import columns as C
from superionic.data.formula import ParsedFormula, parse_formula
from superionic.data.sources import SOURCES, read_source
from superionic.io import write_csv, write_json, write_parquet
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

_BOUND = re.compile(r"^\s*(?P<op>[<>]=?|≤|≥)\s*(?P<value>[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*$")
_NUMERIC_AUX = (C.TEMPERATURE_C, C.SPACE_GROUP, C.LATTICE_A, C.LATTICE_C, C.VOLUME)
# Composition keys are fractional amounts rounded here, so Li2O and Li4O2
# (and float noise in doped formulas) collapse to one material.
_KEY_DECIMALS = 5


@dataclass(frozen=True)
class SigmaValue:
    value: float | None
    censored: str | None = None  # "upper" for "<x", "lower" for ">x"
    error: str | None = None


def parse_sigma(raw: object) -> SigmaValue:
    """Read a conductivity in S/cm; bounds such as ``<1E-10`` are kept as censored."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return SigmaValue(None, error="missing conductivity")
    text = str(raw).strip()
    if not text:
        return SigmaValue(None, error="missing conductivity")
    censored = None
    bound = _BOUND.match(text)
    if bound:
        censored = "upper" if bound["op"] in {"<", "<=", "≤"} else "lower"
        text = bound["value"]
    try:
        value = float(text)
    except ValueError:
        return SigmaValue(None, error=f"conductivity {str(raw)!r} is not a number")
    if not math.isfinite(value) or value <= 0:
        return SigmaValue(None, error=f"conductivity {str(raw)!r} is not positive")
    return SigmaValue(value, censored)


def composition_key(parsed: ParsedFormula) -> str:
    """Scale-free key of a composition (fractional amounts, alphabetical)."""
    assert parsed.composition is not None
    frac = parsed.composition.fractional_composition.get_el_amt_dict()
    return " ".join(f"{el}{round(frac[el], _KEY_DECIMALS):g}" for el in sorted(frac))


def _reject(row: pd.Series, reason: str) -> dict:
    return {C.SOURCE: row[C.SOURCE], C.ROW: row[C.ROW], C.FORMULA_RAW: row[C.FORMULA_RAW],
            C.SIGMA_RAW: row[C.SIGMA_RAW], C.REASON: reason}


def clean_records(
    raw: pd.DataFrame, room_temperature_min_c: float, room_temperature_max_c: float
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split raw rows into (accepted, rejected, repairs).

    Rules, in order: unreadable formula -> rejected; missing or non-positive
    conductivity -> rejected; a source with a temperature column keeps only
    rows inside the room-temperature window (missing temperature ->
    rejected); a non-numeric auxiliary value (temperature aside) becomes
    missing and is listed as a repair.
    """
    accepted, rejected, repairs = [], [], []
    parsed_cache: dict[str, ParsedFormula] = {}
    for _, row in raw.iterrows():
        source = SOURCES[row[C.SOURCE]]
        text = row[C.FORMULA_RAW]
        key = "" if pd.isna(text) else str(text)
        parsed = parsed_cache.setdefault(key, parse_formula(None if pd.isna(text) else key))
        if not parsed.ok:
            rejected.append(_reject(row, f"formula: {parsed.error}"))
            continue
        sigma = parse_sigma(row[C.SIGMA_RAW])
        if sigma.error:
            rejected.append(_reject(row, sigma.error))
            continue
        aux: dict[str, float] = {}
        notes = list(parsed.repairs)
        for col in _NUMERIC_AUX:
            value = row[col]
            number = pd.to_numeric(value, errors="coerce") if not pd.isna(value) else np.nan
            if not pd.isna(value) and pd.isna(number):
                notes.append(f"non-numeric {col} {value!r} treated as missing")
            aux[col] = float(number)
        if not source.room_temperature_only:
            temperature = aux[C.TEMPERATURE_C]
            if math.isnan(temperature):
                rejected.append(_reject(row, "missing temperature"))
                continue
            if not room_temperature_min_c <= temperature <= room_temperature_max_c:
                rejected.append(
                    _reject(
                        row,
                        f"not room temperature: {temperature:g} C outside "
                        f"[{room_temperature_min_c:g}, {room_temperature_max_c:g}] C",
                    )
                )
                continue
        if sigma.censored:
            notes.append(f"conductivity {row[C.SIGMA_RAW]!r} is a bound; kept as {sigma.censored} bound")
        comp = parsed.composition
        elements = sorted(str(el) for el in comp.elements)
        accepted.append(
            {
                C.SOURCE: row[C.SOURCE],
                C.ROW: int(row[C.ROW]),
                C.FORMULA_RAW: key,
                C.FORMULA: parsed.cleaned,
                C.COMPOSITION: composition_key(parsed),
                C.AMOUNTS: comp.formula,
                C.REDUCED_FORMULA: comp.reduced_formula,
                C.CHEMSYS: "-".join(elements),
                C.MOBILE_ION: "Li" if "Li" in elements else ("Na" if "Na" in elements else "none"),
                C.SIGMA: sigma.value,
                C.LOG10_SIGMA: math.log10(sigma.value),
                C.SIGMA_CENSORED: sigma.censored or "",
                C.IS_COMPOSITE: parsed.is_composite,
                C.DOI: None if pd.isna(row[C.DOI]) else str(row[C.DOI]).strip(),
                C.FAMILY: None if pd.isna(row[C.FAMILY]) else str(row[C.FAMILY]).strip(),
                **aux,
                C.REPAIRS: "; ".join(notes),
            }
        )
        repairs.extend(
            {C.SOURCE: row[C.SOURCE], C.ROW: int(row[C.ROW]), C.FORMULA_RAW: key, "repair": note}
            for note in notes
        )
    accepted_frame = pd.DataFrame(accepted)
    rejected_frame = pd.DataFrame(rejected, columns=[C.SOURCE, C.ROW, C.FORMULA_RAW, C.SIGMA_RAW, C.REASON])
    repairs_frame = pd.DataFrame(repairs, columns=[C.SOURCE, C.ROW, C.FORMULA_RAW, "repair"])
    return accepted_frame, rejected_frame, repairs_frame


def ingest_metrics(raw: pd.DataFrame, accepted: pd.DataFrame, rejected: pd.DataFrame) -> dict:
    per_source = {}
    for name in sorted(raw[C.SOURCE].unique()):
        acc = accepted[accepted[C.SOURCE] == name] if len(accepted) else accepted
        per_source[name] = {
            "read": int((raw[C.SOURCE] == name).sum()),
            "accepted": int(len(acc)),
            "rejected": int((rejected[C.SOURCE] == name).sum()),
            "repaired": int((acc[C.REPAIRS] != "").sum()) if len(acc) else 0,
        }
    return {
        "rows_read": int(len(raw)),
        "rows_accepted": int(len(accepted)),
        "rows_rejected": int(len(rejected)),
        "rows_repaired": int((accepted[C.REPAIRS] != "").sum()) if len(accepted) else 0,
        "per_source": per_source,
    }


def read_all_sources(data_dir: str | Path, names: list[str] | None = None) -> pd.DataFrame:
    return pd.concat([read_source(name, data_dir) for name in names or sorted(SOURCES)], ignore_index=True)


@stage("ingest", sections=["data_dir", "ingest", "paths"])
def run_stage(cfg: DictConfig) -> StageResult:
    raw = read_all_sources(cfg.data_dir)
    accepted, rejected, repairs = clean_records(
        raw, cfg.ingest.room_temperature_min_c, cfg.ingest.room_temperature_max_c
    )
    if accepted.empty:
        raise ValueError(f"no conductivity rows survived ingest from {cfg.data_dir}")
    accepted = accepted.sort_values([C.SOURCE, C.ROW]).reset_index(drop=True)
    metrics = ingest_metrics(raw, accepted, rejected)
    write_parquet(accepted, cfg.paths.interim)
    write_csv(rejected, cfg.paths.rejected_rows, float_format=None)
    write_csv(repairs, cfg.paths.repairs, float_format=None)
    write_json(metrics, cfg.paths.ingest_metrics)
    log.info(
        "ingest: %d read, %d accepted (%d repaired), %d rejected",
        metrics["rows_read"], metrics["rows_accepted"], metrics["rows_repaired"], metrics["rows_rejected"],
    )
    return StageResult(metrics, [cfg.paths.rejected_rows, cfg.paths.repairs, cfg.paths.ingest_metrics])
