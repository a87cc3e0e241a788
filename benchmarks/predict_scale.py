"""`superionic predict` at scale: 20,000 pool rows, today's path against the path it replaced.

The input is the first N Li-containing rows of the 2024 Materials Project
energy-above-hull file (polymorphs repeat formulas, as in a real screening
pool) plus deliberately bad rows. Two runs over the same file, side by side:

* **current**: the `superionic predict` CLI in a fresh process (distinct
  compositions featurised once with the array CD-145, each split-model
  evaluated once, two threads), timed end to end with its peak RSS;
* **baseline**: the previous implementation rebuilt from library calls in
  this process: matminer CD-145 for every row, ``model.predict`` plus the
  calibrator's ``predict_proba`` for every split-model, one thread.

The outputs are compared cell by cell in the CLI's number format, twice:
the current CLI against the baseline (this includes the descriptor change:
the array CD-145 equals matminer to ~1e-14, but a last-digit difference can
move a value across a tree threshold that sits exactly on it), and the
current in-process path fed matminer's descriptors against the baseline,
which isolates de-duplication, single evaluation, threads and chunking and
must give 0 differing cells.

Needs ``dvc repro generalize ensemble``. Usage:

    python benchmarks/predict_scale.py [--rows 20000] [--bad 20] [--params params.yaml] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from superionic.config import load_params

BAD_ROWS = ["", "Xx2O", "((Li", "Li1e400O", "LiXeO2", "Na2Mg0.5Zr1.5(PO4)", "Li-1O", "LiCl)", "12", "Li2O "]


def pool_rows(data_dir: Path, n: int, bad: int) -> pd.DataFrame:
    table = pd.read_csv(data_dir / "materials_project/mp2024_energy_above_hull.csv.gz", keep_default_na=False)
    li = table[table["formula"].str.contains(r"Li(?![a-z])")].head(n)[["material_id", "formula"]]
    junk = pd.DataFrame({"material_id": [f"bad-{i}" for i in range(bad)],
                         "formula": [BAD_ROWS[i % len(BAD_ROWS)] for i in range(bad)]})
    # bad rows spread through the file, not bunched at the end
    return pd.concat([li, junk]).sample(frac=1.0, random_state=0).reset_index(drop=True)


def baseline(frame: pd.DataFrame, params: str) -> pd.DataFrame:
    """The previous predict path for the usable rows: every row parsed and featurised with matminer
    (repeats included), ``model.predict`` plus the calibrator's ``predict_proba`` per split-model, one thread.

    Returns the vote and trust columns of the parseable rows, indexed by input row.
    """
    from superionic.data.formula import parse_formula
    from superionic.features.composition import composition_feature_labels, featurize_compositions_matminer
    from superionic.classifier.ensemble import Ensemble, load_verified, proba_col, unanimous_col, votes_col
    from superionic.classifier.generalize import TRUST_COLUMNS, DeployedModel

    cfg = load_params(params)
    ensemble = load_verified(cfg.classifier.ensemble_model, Ensemble, "classifier.ensemble_model", "ensemble")
    deployed = load_verified(cfg.generalize.model, DeployedModel, "generalize.model", "generalize")
    parsed = [parse_formula(f) for f in frame["formula"]]
    rows = [i for i, p in enumerate(parsed) if p.ok]
    # as before: the parsed formula's text (pymatgen's rounding) is what gets featurised
    texts = [parsed[i].composition.formula.replace(" ", "") for i in rows]
    X = featurize_compositions_matminer([parse_formula(t).composition for t in texts])
    X = X.reindex(columns=composition_feature_labels())
    usable = X.notna().any(axis=1).to_numpy()
    X = X[usable].reset_index(drop=True)
    rows = np.asarray(rows)[usable]
    texts = list(np.asarray(texts, dtype=object)[usable])
    Xf = X[ensemble.feature_columns]
    out = pd.DataFrame(index=rows)
    label = np.ones(len(Xf), dtype=bool)
    for member in ensemble.member_names:
        votes, probas = np.zeros(len(Xf), dtype=int), []
        for model, calibrated in zip(ensemble.models[member], ensemble.calibrators[member], strict=True):
            votes += np.asarray(model.predict(Xf), dtype=int)
            probas.append(calibrated.predict_proba(Xf)[:, 1])
        out[votes_col(member)] = votes
        out[proba_col(member)] = np.asarray(probas).sum(axis=0) / ensemble.n_splits
        out[unanimous_col(member)] = votes == ensemble.n_splits
        label &= votes == ensemble.n_splits
    out["ensemble_label"] = label
    trust = deployed.assess(deployed.features(X[deployed.cd_columns], texts))
    for col in TRUST_COLUMNS:
        out[col] = trust[col].to_numpy()
    return out


def compare(current: pd.DataFrame, old: pd.DataFrame) -> str:
    """Cells of the baseline's columns that differ once written with the CLI's number format."""
    from superionic.classifier.predict import OK, PREDICTION_FLOAT_FORMAT, STATUS

    ok = current.index[current[STATUS] == OK]
    if sorted(ok) != sorted(old.index):
        return f"different usable rows ({len(ok)} vs {len(old)})"
    differ = 0
    worst = 0.0
    for col in old.columns:
        text = current.loc[old.index, col]
        new = pd.to_numeric(text.where(~text.isin(["True", "False"]), (text == "True").astype(int).astype(str)))
        ref = old[col].astype(float)
        if old[col].dtype.kind == "f":
            text_new = new.map(lambda v: PREDICTION_FLOAT_FORMAT % v)
            text_ref = ref.map(lambda v: PREDICTION_FLOAT_FORMAT % v)
            differ += int((text_new != text_ref).sum())
            worst = max(worst, float((new - ref).abs().max()))
        else:
            differ += int((new != ref).sum())
    return f"{differ} differing cells in {len(old.columns)} columns x {len(old)} rows; max |difference| {worst:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--bad", type=int, default=20)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default=os.environ.get("SUPERIONIC_DATA_DIR", "../shared/datasets"))
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    frame = pool_rows(Path(args.data_dir), args.rows, args.bad)
    print(f"{len(frame)} rows ({frame['formula'].nunique()} distinct formulas, {args.bad} bad), "
          f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        src, current = Path(tmp) / "pool.csv", Path(tmp) / "current.csv"
        frame.to_csv(src, index=False)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "superionic.cli", "predict", str(src), "-o", str(current),
                        "--params", args.params], check=True)
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"current  (CLI, fresh process): {wall:6.1f} s  peak RSS {peak:5.0f} MB  "
              f"{len(frame) / wall:6.0f} rows/s")
        if args.skip_baseline:
            return
        start = time.perf_counter()
        old = baseline(pd.read_csv(src, keep_default_na=False, dtype=str), args.params)
        wall_old = time.perf_counter() - start
        print(f"baseline (previous path):      {wall_old:6.1f} s  {len(frame) / wall_old:6.0f} rows/s  "
              f"speed-up {wall_old / wall:.1f}x")
        print("current CLI vs baseline:", compare(pd.read_csv(current, keep_default_na=False, dtype=str), old))
        from superionic.data.formula import parse_formula
        from superionic.features.composition import featurize_compositions_matminer
        from superionic.classifier.ensemble import Ensemble, load_verified
        from superionic.classifier.generalize import DeployedModel
        from superionic.classifier.predict import predict_frame

        cfg = load_params(args.params)
        ensemble = load_verified(cfg.classifier.ensemble_model, Ensemble, "classifier.ensemble_model", "ensemble")
        deployed = load_verified(cfg.generalize.model, DeployedModel, "generalize.model", "generalize")

        def matminer(formulas: list[str]) -> pd.DataFrame:
            return featurize_compositions_matminer([parse_formula(f).composition for f in formulas])

        same_inputs = predict_frame(pd.read_csv(src, keep_default_na=False, dtype=str), ensemble,
                                    featurize=matminer, deployed=deployed, n_jobs=2)
        print("current path on matminer's descriptors vs baseline:", compare(same_inputs.astype(str), old))


if __name__ == "__main__":
    main()
