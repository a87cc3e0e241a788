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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from superionic.models.ensemble import Ensemble, load_ensemble, load_verified
from superionic.models.generalize import TRUST_COLUMNS, DeployedModel

log = logging.getLogger(__name__)

STATUS = "status"
REASON = "reason"
NOTES = "notes"
PARSED = "parsed_formula"
REPAIRS = "repairs"
N_IMPUTED = "n_features_imputed"
OK, REJECTED = "ok", "rejected"

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


def predict_frame(
    frame: pd.DataFrame, ensemble: Ensemble, formula_column: str = "formula",
    featurize: Featurizer | None = None, parse: Callable[[object], Any] | None = None,
    cif_paths: Sequence[Path | None] | None = None, deployed: DeployedModel | None = None,
) -> pd.DataFrame:
    """Input rows + status/reason/notes + the ensemble's vote columns (+ trust columns with ``deployed``)."""
    if formula_column not in frame.columns:
        raise ValueError(f"input has no column {formula_column!r} (columns: {list(frame.columns)})")
    parse = parse or _default_parser()
    featurize = featurize or _default_featurizer()
    n = len(frame)
    status = np.array([OK] * n, dtype=object)
    reason = np.array([""] * n, dtype=object)
    notes: list[list[str]] = [[] for _ in range(n)]
    parsed_text = np.array([""] * n, dtype=object)
    repairs = np.array([""] * n, dtype=object)
    for i, raw in enumerate(frame[formula_column].tolist()):
        parsed = parse(raw)
        repairs[i] = "; ".join(parsed.repairs)
        if parsed.error is not None or parsed.composition is None:
            status[i], reason[i] = REJECTED, f"formula: {parsed.error or 'unparseable'}"
            continue
        parsed_text[i] = parsed.composition.formula.replace(" ", "")
        if not {"Li", "Na"} & {el.symbol for el in parsed.composition.elements}:
            notes[i].append("no Li or Na: outside the training data's chemistry")
    good = np.flatnonzero(status == OK)
    feats = pd.DataFrame(np.nan, index=range(n), columns=ensemble.feature_columns)
    if len(good):
        computed, errors = _featurize_safely(featurize, [parsed_text[i] for i in good])
        for j, message in errors.items():
            status[good[j]], reason[good[j]] = REJECTED, message
        shared = [c for c in ensemble.feature_columns if c in computed.columns]
        feats.loc[good, shared] = computed[shared].to_numpy(dtype=float)
        composition_cols = set(computed.columns)
    else:
        composition_cols = set()
    structural = [c for c in ensemble.feature_columns if c not in composition_cols]
    if cif_paths is not None:
        for i in good:
            path = cif_paths[i]
            if path is None or status[i] != OK:
                continue
            try:
                values = cif_features(path)
            except (OSError, ValueError) as exc:
                notes[i].append(f"CIF {path.name} unreadable ({exc}); structure imputed")
                continue
            for col, v in values.items():
                if col in feats.columns:
                    feats.loc[i, col] = v
    # A row whose composition features are all missing carries no information:
    # the ensemble would only see training medians. Reject it rather than guess.
    comp_only = [c for c in ensemble.feature_columns if c in composition_cols]
    for i in good:
        if status[i] != OK:
            continue
        if comp_only and feats.loc[i, comp_only].isna().all():
            status[i], reason[i] = REJECTED, "featurization failed: no composition features"
        elif structural and feats.loc[i, structural].isna().any():
            notes[i].append("structural features imputed with training medians")
    n_imputed = feats.isna().sum(axis=1).to_numpy()
    result = frame.reset_index(drop=True).copy()
    result[PARSED] = parsed_text
    result[REPAIRS] = repairs
    result[STATUS] = status
    result[REASON] = reason
    result[NOTES] = ["; ".join(x) for x in notes]
    result[N_IMPUTED] = np.where(status == OK, n_imputed, -1)
    ok = np.flatnonzero(status == OK)
    # With no usable row the models are not called at all (their imputers
    # refuse zero samples); the vote columns are still there, empty.
    votes = ensemble.vote(feats.loc[ok]) if len(ok) else _empty_votes(ensemble)
    for col in votes.columns:
        # Nullable dtypes: rejected rows stay empty without turning numbers into objects.
        kind = votes[col].dtype.kind
        dtype = "Int64" if kind in "iu" else "boolean" if kind == "b" else "Float64"
        full = pd.Series(pd.NA, index=result.index, dtype=dtype)
        full.loc[ok] = votes[col].to_numpy()
        result[col] = full
    if deployed is not None:
        missing = [c for c in deployed.cd_columns if c not in feats.columns]
        if missing:
            raise ValueError(f"the generalize model needs descriptors the ensemble lacks, e.g. {missing[:3]}: "
                             "both must come from the same features config")
        X = deployed.features(feats.loc[ok, deployed.cd_columns], [parsed_text[i] for i in ok])
        trust = deployed.assess(X)
        for col in TRUST_COLUMNS:
            dtype = "boolean" if trust[col].dtype.kind == "b" else "Float64"
            full = pd.Series(pd.NA, index=result.index, dtype=dtype)
            full.loc[ok] = trust[col].to_numpy()
            result[col] = full
    return result


def _empty_votes(ensemble: Ensemble) -> pd.DataFrame:
    from superionic.models.ensemble import (
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


def predict_distributed(
    frame: pd.DataFrame, ensemble: Ensemble, formula_column: str, cif_paths: list[Path | None] | None,
    cluster: Any, n_workers: int, chunk_size: int, deployed: DeployedModel | None = None,
) -> pd.DataFrame:
    """:func:`predict_frame` over row chunks on a Dask cluster; rows come back in input order."""
    from superionic.cluster import map_in_order, open_client

    frame = frame.reset_index(drop=True)
    starts = range(0, len(frame), chunk_size)
    chunks = [(frame.iloc[i : i + chunk_size], None if cif_paths is None else cif_paths[i : i + chunk_size])
              for i in starts]
    if not chunks:
        return predict_frame(frame, ensemble, formula_column, cif_paths=cif_paths, deployed=deployed)
    with open_client(cluster, n_workers=n_workers) as client:
        parts = map_in_order(client, _predict_chunk, chunks, ensemble=ensemble, formula_column=formula_column,
                             deployed=deployed)
    return pd.concat(parts, ignore_index=True)


def _cif_paths(frame: pd.DataFrame, cif_dir: Path, id_column: str | None) -> list[Path | None]:
    """``<id>.cif`` inside ``cif_dir`` per row; an id that names a path elsewhere ("../x") finds nothing."""
    if id_column is not None and id_column not in frame.columns:
        raise ValueError(f"--id-column {id_column!r} is not a column of the input")
    keys = frame[id_column].astype(str).tolist() if id_column else [str(i) for i in range(len(frame))]
    root = cif_dir.resolve()
    paths: list[Path | None] = []
    for key in keys:
        candidate = (cif_dir / f"{key}.cif").resolve()
        inside = candidate.parent == root and Path(key).name == key
        paths.append(candidate if inside and candidate.is_file() else None)
    return paths


def _read_input(src: Path) -> pd.DataFrame:
    """The input CSV as text columns; an unreadable file is one clear error naming it."""
    from superionic.data.sources import UNREADABLE

    try:
        # keep_default_na=False: "NaN" is sodium nitride, not a missing value.
        return pd.read_csv(src, keep_default_na=False, dtype=str)
    except UNREADABLE as exc:
        raise ValueError(f"{src}: not a readable CSV ({type(exc).__name__}: {exc})") from exc


def _check_output(src: Path, out: Path) -> None:
    """Refuse to overwrite the input, and fail before any work when the folder is missing."""
    if out.resolve() == src.resolve():
        raise ValueError(f"output {out} is the input file: choose another -o")
    if not out.parent.is_dir():
        raise ValueError(f"output folder {out.parent} does not exist")


def _write_atomically(frame: pd.DataFrame, out: Path) -> None:
    """A failed write never leaves a truncated file in place of the previous output."""
    from superionic.io import write_csv

    write_csv(frame, out, float_format="%.4f")


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
    from superionic.models.ensemble import digest_path, read_digest

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
    parser.add_argument("--workers", type=int, default=1,
                        help="Dask workers for large inputs (1 = in this process; the cluster is `cluster` in params)")
    parser.add_argument("--chunk-size", type=int, default=2000, help="rows per Dask task")
    args = parser.parse_args(argv)
    src = Path(args.input)
    if not src.is_file():
        print(f"error: {src} not found", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else src.with_suffix(".predictions.csv")
    try:
        _check_output(src, out)
        frame = _read_input(src)
        ensemble = _load_verified(args)
        deployed = _load_deployed(args)
        cif_paths = _cif_paths(frame, Path(args.cif_dir), args.id_column) if args.cif_dir else None
        if args.workers < 1 or args.chunk_size < 1:
            raise ValueError("--workers and --chunk-size must be >= 1")
        if args.workers == 1:
            result = predict_frame(frame, ensemble, args.formula_column, cif_paths=cif_paths, deployed=deployed)
        else:
            from superionic.config import load_params

            cluster = load_params(args.params).cluster
            result = predict_distributed(frame, ensemble, args.formula_column, cif_paths, cluster,
                                         args.workers, args.chunk_size, deployed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _write_atomically(result, out)
    n_ok = int((result[STATUS] == OK).sum())
    n_pos = int(result.loc[result[STATUS] == OK, "ensemble_label"].astype(bool).sum()) if n_ok else 0
    trust = ""
    if deployed is not None and n_ok:
        answered = result.loc[result[STATUS] == OK, "abstain"].eq(False).sum()
        trust = f"; {int(answered)} answered with confidence, {n_ok - int(answered)} abstain"
    print(f"{len(result)} rows: {n_ok} predicted ({n_pos} ensemble-superionic){trust}, "
          f"{len(result) - n_ok} rejected with a reason -> {out}")
    return 0
