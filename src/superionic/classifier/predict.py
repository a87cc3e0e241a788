"""``superionic predict INPUT.csv``: ensemble votes and calibrated probabilities.

Reads a CSV with a column of formulas (``--formula-column``, default
``formula``), parses each with the project's strict parser, featurizes the
good ones and asks the fitted ensemble. Every input row comes back, in input
order, with ``status`` (ok | rejected) and a ``reason`` for rejected rows; a
bad row never stops the file.

Trust per row (from the ``generalize`` stage's default model, when it has
been built): ``p_calibrated`` (probability calibrated on chemical systems
the model never saw), ``confidence`` = |p - 0.5|, ``abstain`` (confidence
below the cut-off that keeps ``generalize.coverage`` of grouped out-of-fold
predictions: do not act on that row's label), ``domain_distance`` and
``in_domain`` (mean distance to the nearest training materials against the
training set's own ``screen.ad_quantile``).

With ``--cif-dir``, ``<id>.cif`` (``--id-column``) supplies lattice parameters
and the space group for ensembles trained with structural features; without
a CIF those features are imputed with the training medians and the row's
``notes`` say so.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from superionic.classifier.ensemble import ENSEMBLE_LABEL, Ensemble, load_ensemble, load_verified
from superionic.classifier.generalize import ABSTAIN, TRUST_COLUMNS, DeployedModel

log = logging.getLogger(__name__)

STATUS = "status"
REASON = "reason"
NOTES = "notes"
PARSED = "parsed_formula"
REPAIRS = "repairs"
N_IMPUTED = "n_features_imputed"
OK, REJECTED = "ok", "rejected"
# summary counters of predict_file besides the statuses
POSITIVE, ANSWERED = "ensemble_superionic", "answered"
PREDICTION_FLOAT_FORMAT = "%.4f"

Featurizer = Callable[[list[str]], pd.DataFrame]


def _default_featurizer() -> Featurizer:
    from superionic.features.composition import featurize_formulas

    return featurize_formulas


def _default_parser() -> Callable[[object], Any]:
    from superionic.data.formula import parse_formula

    return parse_formula


def cif_features(path: Path) -> dict[str, float]:
    """The dataset's structural features (superionic.features.structure) from one CIF."""
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from superionic.features.structure import LatticeFeaturizer

    structure = Structure.from_file(str(path))
    lattice = structure.lattice
    sg = SpacegroupAnalyzer(structure).get_space_group_number()
    featurizer = LatticeFeaturizer()
    values = featurizer.featurize(lattice.a, lattice.c, lattice.volume, float(sg))
    return dict(zip(featurizer.feature_labels(), values, strict=True))


def _featurize_safely(featurize: Featurizer, formulas: list[str]) -> tuple[pd.DataFrame, dict[int, str]]:
    """Featurize in one batch; if the batch raises, row by row so one bad row stays one bad row."""
    errors: dict[int, str] = {}
    try:
        feats = featurize(formulas)
        if len(feats) != len(formulas):
            raise ValueError(f"featurizer returned {len(feats)} rows for {len(formulas)} formulas")
        return feats.reset_index(drop=True), errors
    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
        log.warning("batch featurization failed (%s); retrying row by row", exc)
    frames = []
    for i, f in enumerate(formulas):
        try:
            frames.append(featurize([f]).reset_index(drop=True))
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            errors[i] = f"featurization failed: {exc}"
            frames.append(pd.DataFrame(index=[0]))
    return pd.concat(frames, ignore_index=True), errors


def _parse_rows(
    raws: list[object], parse: Callable[[object], Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[list[str]]]:
    """Status, reason, repairs and parsed formula per row; each distinct input text is parsed once."""
    n = len(raws)
    status = np.array([OK] * n, dtype=object)
    reason = np.array([""] * n, dtype=object)
    repairs = np.array([""] * n, dtype=object)
    parsed_text = np.array([""] * n, dtype=object)
    notes: list[list[str]] = [[] for _ in range(n)]
    seen: dict[object, Any] = {}
    for i, raw in enumerate(raws):
        key = (type(raw), raw)  # "1" and 1 are different inputs
        parsed = seen.get(key)
        if parsed is None:
            parsed = seen[key] = parse(raw)
        repairs[i] = "; ".join(parsed.repairs)
        if parsed.error is not None or parsed.composition is None:
            status[i], reason[i] = REJECTED, f"formula: {parsed.error or 'unparseable'}"
            continue
        parsed_text[i] = parsed.composition.formula.replace(" ", "")
        if not {"Li", "Na"} & {el.symbol for el in parsed.composition.elements}:
            notes[i].append("no Li or Na: outside the training data's chemistry")
    return status, reason, repairs, parsed_text, notes


def predict_frame(
    frame: pd.DataFrame, ensemble: Ensemble, formula_column: str = "formula",
    featurize: Featurizer | None = None, parse: Callable[[object], Any] | None = None,
    cif_paths: Sequence[Path | None] | None = None, deployed: DeployedModel | None = None, n_jobs: int = 1,
) -> pd.DataFrame:
    """Input rows + status/reason/notes + the ensemble's vote columns (+ trust columns with ``deployed``).

    Work is done once per distinct (composition, CIF) and broadcast to the
    rows that share it: screening pools repeat formulas (polymorphs), and a
    row's answer depends only on its composition and structure.
    """
    if formula_column not in frame.columns:
        raise ValueError(f"input has no column {formula_column!r} (columns: {list(frame.columns)})")
    parse = parse or _default_parser()
    featurize = featurize or _default_featurizer()
    n = len(frame)
    status, reason, repairs, parsed_text, notes = _parse_rows(frame[formula_column].tolist(), parse)
    good = np.flatnonzero(status == OK)
    # distinct work units; `unit[i]` is the unit of good row good[i]
    keys = [(parsed_text[i], None if cif_paths is None else cif_paths[i]) for i in good]
    unit_of: dict[tuple, int] = {}
    unit = np.array([unit_of.setdefault(k, len(unit_of)) for k in keys], dtype=int)
    units = list(unit_of)
    feats = pd.DataFrame(np.nan, index=range(len(units)), columns=ensemble.feature_columns)
    unit_status = np.array([OK] * len(units), dtype=object)
    unit_reason = np.array([""] * len(units), dtype=object)
    unit_notes: list[list[str]] = [[] for _ in units]
    texts = list(dict.fromkeys(text for text, _ in units))
    log.info("predict: %d rows, %d rejected by the parser, %d distinct compositions to featurise and score",
             n, n - len(good), len(texts))
    composition_cols: set[str] = set()
    if texts:
        computed, errors = _featurize_safely(featurize, texts)
        failed = {texts[j]: message for j, message in errors.items()}
        row_of_text = {t: j for j, t in enumerate(texts)}
        shared = [c for c in ensemble.feature_columns if c in computed.columns]
        take = np.array([row_of_text[text] for text, _ in units])
        feats[shared] = computed[shared].to_numpy(dtype=float)[take]
        composition_cols = set(computed.columns)
        for u, (text, _) in enumerate(units):
            if text in failed:
                unit_status[u], unit_reason[u] = REJECTED, failed[text]
    structural = [c for c in ensemble.feature_columns if c not in composition_cols]
    for u, (_, path) in enumerate(units):
        if path is None or unit_status[u] != OK:
            continue
        try:
            values = cif_features(path)
        except (OSError, ValueError) as exc:
            unit_notes[u].append(f"CIF {path.name} unreadable ({exc}); structure imputed")
            continue
        for col, v in values.items():
            if col in feats.columns:
                feats.loc[u, col] = v
    # A row whose composition features are all missing carries no information:
    # the ensemble would only see training medians. Reject it rather than guess.
    comp_only = [c for c in ensemble.feature_columns if c in composition_cols]
    if comp_only:
        empty = feats[comp_only].isna().all(axis=1).to_numpy() & (unit_status == OK)
        unit_status[empty], unit_reason[empty] = REJECTED, "featurization failed: no composition features"
    if structural:
        imputed = feats[structural].isna().any(axis=1).to_numpy() & (unit_status == OK)
        for u in np.flatnonzero(imputed):
            unit_notes[u].append("structural features imputed with training medians")
    for j, i in enumerate(good):
        u = unit[j]
        status[i], reason[i] = unit_status[u], unit_reason[u]
        notes[i].extend(unit_notes[u])
    n_imputed_unit = feats.isna().sum(axis=1).to_numpy()
    n_imputed = np.full(n, -1)
    ok_rows = good[unit_status[unit] == OK]
    ok_unit_of_row = unit[unit_status[unit] == OK]
    n_imputed[ok_rows] = n_imputed_unit[ok_unit_of_row]
    result = frame.reset_index(drop=True).copy()
    result[PARSED] = parsed_text
    result[REPAIRS] = repairs
    result[STATUS] = status
    result[REASON] = reason
    result[NOTES] = ["; ".join(x) for x in notes]
    result[N_IMPUTED] = n_imputed
    ok_units = np.flatnonzero(unit_status == OK)
    position = np.full(len(units), -1)
    position[ok_units] = np.arange(len(ok_units))
    take = position[ok_unit_of_row]  # row -> its unit's position among the scored units
    # With no usable row the models are not called at all (their imputers
    # refuse zero samples); the vote columns are still there, empty.
    started = time.perf_counter()
    votes = ensemble.vote(feats.loc[ok_units], n_jobs=n_jobs) if len(ok_units) else _empty_votes(ensemble)
    if len(ok_units):
        log.info("predict: ensemble of %d split-models scored %d compositions in %.1f s",
                 len(ensemble.member_names) * ensemble.n_splits, len(ok_units), time.perf_counter() - started)
    _broadcast(result, votes, ok_rows, take)
    if deployed is not None:
        missing = [c for c in deployed.cd_columns if c not in feats.columns]
        if missing:
            raise ValueError(f"the generalize model needs descriptors the ensemble lacks, e.g. {missing[:3]}: "
                             "both must come from the same features config")
        X = deployed.features(feats.loc[ok_units, deployed.cd_columns], [units[u][0] for u in ok_units])
        _broadcast(result, deployed.assess(X)[list(TRUST_COLUMNS)], ok_rows, take)
    return result


def _broadcast(result: pd.DataFrame, values: pd.DataFrame, rows: np.ndarray, take: np.ndarray) -> None:
    """Columns of ``values`` (one row per scored unit) into ``result`` at ``rows``; other rows stay empty.

    Nullable dtypes: rejected rows stay empty without turning numbers into objects.
    """
    for col in values.columns:
        kind = values[col].dtype.kind
        dtype = "Int64" if kind in "iu" else "boolean" if kind == "b" else "Float64"
        full = pd.Series(pd.NA, index=result.index, dtype=dtype)
        full.iloc[rows] = values[col].to_numpy()[take]
        result[col] = full


def _empty_votes(ensemble: Ensemble) -> pd.DataFrame:
    from superionic.classifier.ensemble import (
        ENSEMBLE_LABEL,
        proba_col,
        unanimous_col,
        votes_col,
    )

    columns: dict[str, pd.Series] = {}
    for member in ensemble.member_names:
        columns[votes_col(member)] = pd.Series(dtype=int)
        columns[proba_col(member)] = pd.Series(dtype=float)
        columns[unanimous_col(member)] = pd.Series(dtype=bool)
    columns[ENSEMBLE_LABEL] = pd.Series(dtype=bool)
    return pd.DataFrame(columns)


def _predict_chunk(
    chunk: tuple[pd.DataFrame, list[Path | None] | None], ensemble: Ensemble, formula_column: str,
    deployed: DeployedModel | None,
) -> pd.DataFrame:
    frame, cif_paths = chunk
    return predict_frame(frame, ensemble, formula_column, cif_paths=cif_paths, deployed=deployed)


def _predict_on_client(
    client: Any, frame: pd.DataFrame, ensemble: Ensemble, formula_column: str, cif_paths: list[Path | None] | None,
    chunk_size: int, deployed: DeployedModel | None,
) -> pd.DataFrame:
    from superionic.cluster import map_in_order

    frame = frame.reset_index(drop=True)
    starts = range(0, len(frame), chunk_size)
    chunks = [(frame.iloc[i : i + chunk_size], None if cif_paths is None else cif_paths[i : i + chunk_size])
              for i in starts]
    if not chunks:
        return predict_frame(frame, ensemble, formula_column, cif_paths=cif_paths, deployed=deployed)
    parts = map_in_order(client, _predict_chunk, chunks, ensemble=ensemble, formula_column=formula_column,
                         deployed=deployed)
    return pd.concat(parts, ignore_index=True)


def predict_distributed(
    frame: pd.DataFrame, ensemble: Ensemble, formula_column: str, cif_paths: list[Path | None] | None,
    cluster: Any, n_workers: int, chunk_size: int, deployed: DeployedModel | None = None,
) -> pd.DataFrame:
    """:func:`predict_frame` over row chunks on a Dask cluster; rows come back in input order."""
    from superionic.cluster import open_client

    with open_client(cluster, n_workers=n_workers) as client:
        return _predict_on_client(client, frame, ensemble, formula_column, cif_paths, chunk_size, deployed)


def _count_rows(src: Path) -> int:
    """Data rows of a CSV, counted as line breaks (for progress only: a quoted line break counts too)."""
    lines = 0
    with open(src, "rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
    return max(lines - 1, 0)


def predict_file(
    src: Path, out: Path, ensemble: Ensemble, formula_column: str = "formula", *,
    deployed: DeployedModel | None = None, cif_dir: Path | None = None, id_column: str | None = None,
    chunk_rows: int = 50_000, n_jobs: int = 1, client: Any = None, task_rows: int = 2000,
) -> pd.Series:
    """Predict ``src`` into ``out`` chunk by chunk; returns the count of rows per status.

    Memory is bounded by ``chunk_rows`` (rows read, featurised and written
    at a time); the output appears only when every chunk is written. With a
    Dask ``client`` each chunk is spread over the workers in ``task_rows`` pieces.
    """
    total = _count_rows(src)
    counts: dict[str, int] = {}
    started = time.perf_counter()

    def stream(tmp: Path) -> None:
        done = 0
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            for k, chunk in enumerate(_read_input(src, chunk_rows)):
                if formula_column not in chunk.columns:
                    raise ValueError(f"input has no column {formula_column!r} (columns: {list(chunk.columns)})")
                paths = _cif_paths(chunk, cif_dir, id_column) if cif_dir is not None else None
                if client is None:
                    result = predict_frame(chunk, ensemble, formula_column, cif_paths=paths, deployed=deployed,
                                           n_jobs=n_jobs)
                else:
                    result = _predict_on_client(client, chunk, ensemble, formula_column, paths, task_rows, deployed)
                result.to_csv(handle, index=False, header=k == 0, float_format=PREDICTION_FLOAT_FORMAT)
                for status, n in result[STATUS].value_counts().items():
                    counts[status] = counts.get(status, 0) + int(n)
                counts[POSITIVE] = counts.get(POSITIVE, 0) + int(result[ENSEMBLE_LABEL].fillna(False).astype(bool).sum())
                if ABSTAIN in result.columns:
                    counts[ANSWERED] = counts.get(ANSWERED, 0) + int(result[ABSTAIN].eq(False).sum())
                done += len(result)
                elapsed = time.perf_counter() - started
                eta = elapsed / done * max(total - done, 0) if done else 0.0
                log.info("predict: %d of about %d rows (%.0f rows/s, ETA %.0f s)", done, total, done / elapsed, eta)
            if done == 0:  # a header without rows still gives a header with every output column
                empty = pd.read_csv(src, nrows=0, dtype=str)
                predict_frame(empty, ensemble, formula_column, deployed=deployed).to_csv(handle, index=False)

    from superionic.io import atomic_write

    atomic_write(out, stream)
    return pd.Series(counts, dtype=int)


def _cif_paths(frame: pd.DataFrame, cif_dir: Path, id_column: str | None) -> list[Path | None]:
    """``<id>.cif`` inside ``cif_dir`` per row; an id that names a path elsewhere ("../x") finds nothing."""
    if id_column is not None and id_column not in frame.columns:
        raise ValueError(f"--id-column {id_column!r} is not a column of the input")
    # without an id column, the row number in the whole file (chunks keep counting)
    keys = frame[id_column].astype(str).tolist() if id_column else [str(i) for i in frame.index]
    root = cif_dir.resolve()
    paths: list[Path | None] = []
    for key in keys:
        candidate = (cif_dir / f"{key}.cif").resolve()
        inside = candidate.parent == root and Path(key).name == key
        paths.append(candidate if inside and candidate.is_file() else None)
    return paths


def _read_input(src: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The input CSV as text columns, ``chunk_rows`` at a time; an unreadable file is one clear error naming it."""
    from superionic.data.sources import UNREADABLE

    try:
        # keep_default_na=False: "NaN" is sodium nitride, not a missing value.
        reader = pd.read_csv(src, keep_default_na=False, dtype=str, chunksize=chunk_rows)
        yield from reader
    except UNREADABLE as exc:
        raise ValueError(f"{src}: not a readable CSV ({type(exc).__name__}: {exc})") from exc


def _check_input(src: Path, formula_column: str) -> None:
    """Fail before loading any model when the input cannot be read or lacks the formula column."""
    header = next(_read_input(src, 1), None)
    if header is None:
        header = pd.read_csv(src, nrows=0, dtype=str)
    if formula_column not in header.columns:
        raise ValueError(f"{src}: no column {formula_column!r} (columns: {list(header.columns)})")


def _check_output(src: Path, out: Path) -> None:
    """Refuse to overwrite the input, and fail before any work when the folder is missing."""
    if out.resolve() == src.resolve():
        raise ValueError(f"output {out} is the input file: choose another -o")
    if not out.parent.is_dir():
        raise ValueError(f"output folder {out.parent} does not exist")


def _write_atomically(frame: pd.DataFrame, out: Path) -> None:
    """A failed write never leaves a truncated file in place of the previous output."""
    from superionic.io import write_csv

    write_csv(frame, out, float_format=PREDICTION_FLOAT_FORMAT)


def _ensemble_path(explicit: str | None, params: str) -> Path:
    if explicit:
        return Path(explicit)
    from superionic.config import load_params

    return Path(load_params(params).classifier.ensemble_model)


def _load_verified(args: argparse.Namespace) -> Ensemble:
    """The ensemble, unpickled only when its digest is the one this project's ensemble stage recorded."""
    path = _ensemble_path(args.ensemble, args.params)
    if args.trust_model:
        return load_ensemble(path, trust=True)
    from superionic.config import load_params
    from superionic.classifier.ensemble import digest_path, read_digest

    recorded = read_digest(digest_path(load_params(args.params).classifier.ensemble_model))
    return load_ensemble(path, expected_sha256=recorded)


def _load_deployed(args: argparse.Namespace) -> DeployedModel | None:
    """The generalize stage's model, verified like the ensemble; None (with a warning) when not built.

    With your own ``--ensemble`` the project's trust model is not assumed to
    match its features: name one with ``--trust-model-file``.
    """
    if args.no_trust or (args.ensemble and not args.trust_model_file):
        return None
    from superionic.config import load_params

    path = Path(args.trust_model_file or load_params(args.params).generalize.model)
    if not path.exists():
        log.warning("%s not found: no trust columns (run `dvc repro generalize`)", path)
        return None
    return load_verified(path, DeployedModel, "generalize.model", "generalize", trust=args.trust_model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="superionic predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="CSV with a column of formulas")
    parser.add_argument("-o", "--output", help="output CSV (default: INPUT with .predictions.csv)")
    parser.add_argument("--formula-column", default="formula")
    parser.add_argument("--cif-dir", help="folder of <id>.cif files (structural features)")
    parser.add_argument("--id-column", help="column naming each row's CIF (default: row number)")
    parser.add_argument("--ensemble", help="fitted ensemble (default: classifier.ensemble_model of params.yaml)")
    parser.add_argument("--trust-model", action="store_true",
                        help="load --ensemble without checking it against the digest the ensemble stage recorded "
                             "(unpickling runs code: only for a model file you made yourself)")
    parser.add_argument("--trust-model-file",
                        help="the generalize stage's model (default: generalize.model of params.yaml)")
    parser.add_argument("--no-trust", action="store_true",
                        help="skip the calibrated probability, abstain and domain columns")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--jobs", type=int, default=2,
                        help="threads sharing the ensemble's models in this process (default 2)")
    parser.add_argument("--chunk-rows", type=int, default=50_000,
                        help="rows read, featurised and written at a time: bounds memory (default 50000)")
    parser.add_argument("--workers", type=int, default=1,
                        help="Dask workers for large inputs (1 = in this process; the cluster is `cluster` in params)")
    parser.add_argument("--chunk-size", type=int, default=2000, help="rows per Dask task")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    src = Path(args.input)
    if not src.is_file():
        print(f"error: {src} not found", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else src.with_suffix(".predictions.csv")
    try:
        if min(args.workers, args.chunk_size, args.jobs, args.chunk_rows) < 1:
            raise ValueError("--workers, --chunk-size, --jobs and --chunk-rows must be >= 1")
        _check_output(src, out)
        _check_input(src, args.formula_column)
        ensemble = _load_verified(args)
        deployed = _load_deployed(args)
        options = dict(deployed=deployed, cif_dir=Path(args.cif_dir) if args.cif_dir else None,
                       id_column=args.id_column, chunk_rows=args.chunk_rows, n_jobs=args.jobs)
        if args.workers == 1:
            counts = predict_file(src, out, ensemble, args.formula_column, **options)
        else:
            from superionic.cluster import open_client
            from superionic.config import load_params

            with open_client(load_params(args.params).cluster, n_workers=args.workers) as client:
                counts = predict_file(src, out, ensemble, args.formula_column, client=client,
                                      task_rows=args.chunk_size, **options)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n_ok, n_rejected = int(counts.get(OK, 0)), int(counts.get(REJECTED, 0))
    trust = ""
    if deployed is not None and n_ok:
        answered = int(counts.get(ANSWERED, 0))
        trust = f"; {answered} answered with confidence, {n_ok - answered} abstain"
    print(f"{n_ok + n_rejected} rows: {n_ok} predicted ({int(counts.get(POSITIVE, 0))} ensemble-superionic){trust}, "
          f"{n_rejected} rejected with a reason -> {out}")
    return 0
