"""Splits and split-level evaluation: the paper's 100 stratified 80/20 splits and
grouped cross-validation (no chemical system / structure family on both sides).

Every fit goes through :func:`superionic.classifier.zoo.build_pipeline`, so the
imputer and scaler only ever see the training rows of a split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from superionic.classifier.zoo import build_pipeline

Split = tuple[np.ndarray, np.ndarray]

# Group columns holding free-text labels whose spellings are merged (normalize_groups).
NORMALIZED_GROUP_COLUMNS = frozenset({"family"})

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
CONFUSION = ("tn", "fp", "fn", "tp")


def paper_splits(y: np.ndarray, n_splits: int, test_size: float, seed0: int = 0) -> list[Split]:
    """Split i is a stratified ``train_test_split`` with ``random_state = seed0 + i``."""
    index = np.arange(len(y))
    splits = []
    for i in range(n_splits):
        train, test = train_test_split(
            index, test_size=test_size, stratify=y, random_state=seed0 + i, shuffle=True
        )
        splits.append((np.sort(train), np.sort(test)))
    return splits


def normalize_groups(values: pd.Series) -> tuple[pd.Series, dict[str, str]]:
    """Merge spellings of one group: case, spaces and hyphens, and a plural
    ("argyrodites") when its singular ("argyrodite") is also present. Without
    this, "Garnet" and "garnet" would be different groups and a garnet could
    sit on both sides of a "grouped" split. Each merged group is named by its
    most frequent spelling; returns the values and the merges made."""
    raw = values.astype("string").str.strip()
    key = raw.str.casefold().str.replace(r"[\s_-]+", "", regex=True)
    present = set(key.dropna())
    key = key.map(lambda v: v[:-1] if isinstance(v, str) and v.endswith("s") and v[:-1] in present else v)
    names: dict[str, str] = {}
    counts = pd.DataFrame({"key": key, "raw": raw}).dropna().value_counts().reset_index(name="n")
    for k, sub in counts.groupby("key"):
        best = sub.sort_values(["n", "raw"], ascending=[False, True]).iloc[0]
        names[str(k)] = str(best["raw"])
    merged = key.map(lambda v: names.get(v) if isinstance(v, str) else v).astype("string")
    merges = {str(r): str(m) for r, m in zip(raw, merged, strict=True)
              if isinstance(r, str) and isinstance(m, str) and r != m}
    return merged, dict(sorted(merges.items()))


def group_labels(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Group ids (family spellings merged, see :func:`normalize_groups`) and the mask of rows that take part.

    Rows whose group is null are left out of that grouped CV (counted by the
    caller): giving each its own group could leak a family through unlabeled
    members, and pooling them all into one "unknown" group would make one
    arbitrary giant group.
    """
    # Only free-text labels (structure family) are merged: a chemsys string is
    # canonical, and "Li-P-S" minus its "S" is a different system, not a plural.
    values = normalize_groups(frame[column])[0] if column in NORMALIZED_GROUP_COLUMNS else (
        frame[column].astype("string").str.strip())
    mask = (values.notna() & (values != "")).to_numpy(dtype=bool)
    return values.fillna("").astype(str).to_numpy(), mask


def grouped_splits(y: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> list[Split]:
    """Stratified group k-fold; ``n_folds`` shrinks to the number of groups."""
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(f"grouped CV needs at least 2 groups, found {n_groups}")
    k = min(n_folds, n_groups)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    index = np.arange(len(y))
    return [(np.sort(tr), np.sort(te)) for tr, te in splitter.split(index, y, groups)]


def _scores(model: Any, X: pd.DataFrame) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)[:, 1]
    return model.decision_function(X)


def fit_split(
    spec: Mapping[str, Any], params: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray,
    split: Split, seed: int,
) -> dict[str, Any]:
    """Fit on the training rows of one split; predictions and scores for its test rows."""
    train, test = split
    model = build_pipeline(spec, params, seed=seed)
    model.fit(X.iloc[train], y[train])
    return {
        "test": test,
        "pred": np.asarray(model.predict(X.iloc[test]), dtype=int),
        "score": np.asarray(_scores(model, X.iloc[test]), dtype=float),
    }


def split_metrics(y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray) -> dict[str, float]:
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
        # ROC-AUC is undefined when the validation rows hold one class only.
        "roc_auc": float(roc_auc_score(y_true, score)) if len(np.unique(y_true)) == 2 else float("nan"),
    }
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    out.update(tn=int(tn), fp=int(fp), fn=int(fn), tp=int(tp))
    return out


def run_splits(
    spec: Mapping[str, Any], params: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray,
    splits: Sequence[Split], seeds: Sequence[int], n_jobs: int = 1,
) -> list[dict[str, Any]]:
    """Fit every split (joblib across splits; estimators stay single-threaded)."""
    if n_jobs == 1:
        return [fit_split(spec, params, X, y, s, seed) for s, seed in zip(splits, seeds, strict=True)]
    return Parallel(n_jobs=n_jobs)(
        delayed(fit_split)(spec, params, X, y, s, seed) for s, seed in zip(splits, seeds, strict=True)
    )


def evaluate_splits(
    spec: Mapping[str, Any], params: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray,
    splits: Sequence[Split], seeds: Sequence[int], n_jobs: int = 1,
) -> pd.DataFrame:
    """One row of metrics per split (column ``split`` = its index)."""
    results = run_splits(spec, params, X, y, splits, seeds, n_jobs)
    rows = []
    for i, res in enumerate(results):
        rows.append({"split": i, **split_metrics(y[res["test"]], res["pred"], res["score"])})
    return pd.DataFrame(rows)


def summarize(per_split: pd.DataFrame) -> dict[str, float | int]:
    """Mean/max/min/std of accuracy (population std over splits), means of the rest,
    and the confusion matrix summed over splits (the paper's Figure 3)."""
    acc = per_split["accuracy"]
    out: dict[str, float | int] = {
        "accuracy_mean": float(acc.mean()),
        "accuracy_max": float(acc.max()),
        "accuracy_min": float(acc.min()),
        "accuracy_std": float(acc.std(ddof=0)),
    }
    for m in METRICS[1:]:
        out[f"{m}_mean"] = float(per_split[m].mean())
    for c in CONFUSION:
        out[c] = int(per_split[c].sum())
    return out


def evaluate_grouped(
    spec: Mapping[str, Any], params: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray,
    splits: Sequence[Split], seed: int, n_jobs: int = 1,
) -> tuple[dict[str, float | int], np.ndarray]:
    """Out-of-fold predictions over grouped folds: pooled metrics and the OOF labels."""
    results = run_splits(spec, params, X, y, splits, [seed] * len(splits), n_jobs)
    oof_pred = np.full(len(y), -1, dtype=int)
    oof_score = np.full(len(y), np.nan)
    fold_acc = []
    for res in results:
        oof_pred[res["test"]] = res["pred"]
        oof_score[res["test"]] = res["score"]
        fold_acc.append(accuracy_score(y[res["test"]], res["pred"]))
    used = oof_pred >= 0
    pooled = split_metrics(y[used], oof_pred[used], oof_score[used])
    summary: dict[str, float | int] = {
        **{k: v for k, v in pooled.items()},
        "fold_accuracy_mean": float(np.mean(fold_acc)),
        "fold_accuracy_std": float(np.std(fold_acc)),
        "n_folds": len(splits),
        "n_rows": int(used.sum()),
    }
    return summary, oof_pred
