"""Importance stage: feature importance of the ensemble's split-models.

Averaged over the ``n_splits`` split-models of each member (Kang 2023 Tables
S3-S5): impurity-based importance for gradient boosting, split counts for
LightGBM (any other tree member: its ``feature_importances_``). The top-k of
each member and their intersection go to the report, and SHAP summary plots
(TreeExplainer on the first ``classifier.shap_splits`` split-models, on a
seeded sample of rows) show direction as well as size.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sklearn.pipeline import Pipeline

from superionic.io import save_figure, write_csv, write_text
from superionic.classifier.ensemble import Ensemble
from superionic.classifier.zoo import MODEL_STEP
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

# the stage's folder under classifier.report_dir
IMPORTANCE_DIR = "importance"
IMPORTANCE_CSV = f"{IMPORTANCE_DIR}/importance.csv"
TOP_CSV = f"{IMPORTANCE_DIR}/importance_top.csv"
COMMON_TXT = f"{IMPORTANCE_DIR}/importance_common.txt"
SHAP_DIR = f"{IMPORTANCE_DIR}/shap"

# What each member's importance measures (printed in the report).
IMPORTANCE_KIND = {"gb": "impurity (mean decrease)", "lgbm": "split count"}


def model_importance(member: str, pipe: Pipeline) -> np.ndarray:
    est = pipe.named_steps[MODEL_STEP]
    if member == "lgbm":
        return np.asarray(est.booster_.feature_importance(importance_type="split"), dtype=float)
    if hasattr(est, "feature_importances_"):
        return np.asarray(est.feature_importances_, dtype=float)
    raise ValueError(f"member {member!r} ({type(est).__name__}) has no feature importances")


def split_importances(ens: Ensemble) -> pd.DataFrame:
    """Long table: member, feature, mean and std over split-models, rank (1 = top)."""
    frames = []
    for member in ens.member_names:
        stack = np.vstack([model_importance(member, m) for m in ens.models[member]])
        frame = pd.DataFrame({
            "member": member,
            "feature": ens.feature_columns,
            "importance_mean": stack.mean(axis=0),
            "importance_std": stack.std(axis=0),
        })
        # Ties broken by feature name so the ranking is deterministic.
        frame = frame.sort_values(["importance_mean", "feature"], ascending=[False, True]).reset_index(drop=True)
        frame["rank"] = np.arange(1, len(frame) + 1)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def top_k(table: pd.DataFrame, k: int) -> tuple[pd.DataFrame, list[str]]:
    """Wide top-k table (one column pair per member) and the features common to all."""
    members = list(dict.fromkeys(table["member"]))
    wide = pd.DataFrame({"rank": np.arange(1, k + 1)})
    sets = []
    for member in members:
        top = table[table["member"] == member].head(k)
        wide[f"{member}_feature"] = list(top["feature"]) + [""] * (k - len(top))
        wide[f"{member}_importance"] = list(top["importance_mean"]) + [np.nan] * (k - len(top))
        sets.append(set(top["feature"]))
    common = sorted(set.intersection(*sets)) if sets else []
    return wide, common


def shap_values(ens: Ensemble, member: str, X: pd.DataFrame, n_models: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Mean SHAP values (log-odds) over the first ``n_models`` split-models.

    Explained on the imputed feature matrix each model actually sees; returns
    the values and the (first model's) imputed matrix for colouring the plot.
    """
    import shap

    total, shown = None, None
    for pipe in ens.models[member][:n_models]:
        prep = pipe[:-1]
        Xt = pd.DataFrame(prep.transform(X[ens.feature_columns]), columns=ens.feature_columns, index=X.index)
        values = shap.TreeExplainer(pipe.named_steps[MODEL_STEP]).shap_values(Xt)
        values = np.asarray(values[1] if isinstance(values, list) else values)
        if values.ndim == 3:
            values = values[:, :, 1]
        total = values if total is None else total + values
        shown = Xt if shown is None else shown
    assert total is not None and shown is not None
    return total / min(n_models, len(ens.models[member])), shown


def shap_plot(
    values: np.ndarray, X: pd.DataFrame, title: str, path: Path, seed: int, max_display: int = 20
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    plt.figure()
    # The beeswarm jitters points with NumPy's global RNG; seed it (and put the
    # caller's state back) so the same config draws the same figure.
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        shap.summary_plot(values, X, max_display=max_display, show=False, plot_size=(8, 7))
    finally:
        np.random.set_state(state)
    plt.title(title)
    plt.tight_layout()
    save_figure(plt.gcf(), path, dpi=110)
    plt.close("all")


@stage("importance", sections=["classifier"])
def run_stage(cfg: DictConfig) -> StageResult:
    from superionic.classifier.data import load
    from superionic.classifier.ensemble import load_ensemble

    c = cfg.classifier
    data = load(cfg.paths.dataset)
    ens = load_ensemble(c.ensemble_model)
    if ens.feature_columns != data.feature_columns:
        raise ValueError("the ensemble was fitted on other feature columns: rerun `dvc repro ensemble`")
    out_dir = Path(c.report_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = split_importances(ens)
    write_csv(table, out_dir / IMPORTANCE_CSV)
    wide, common = top_k(table, c.top_k)
    write_csv(wide, out_dir / TOP_CSV)
    write_text("\n".join(common) + "\n", out_dir / COMMON_TXT)
    rng = np.random.default_rng(cfg.seed)
    n = min(c.shap_max_rows, len(data.frame))
    rows = np.sort(rng.choice(len(data.frame), size=n, replace=False))
    sample = data.X.iloc[rows]
    figures = []
    (out_dir / SHAP_DIR).mkdir(parents=True, exist_ok=True)
    for member in ens.member_names:
        values, shown = shap_values(ens, member, sample, c.shap_splits)
        path = out_dir / SHAP_DIR / f"shap_{member}.png"
        label = cfg.models[member].label or member
        shap_plot(values, shown, f"SHAP, {label} (mean of {min(c.shap_splits, ens.n_splits)} split-models)",
                  path, seed=cfg.seed, max_display=c.top_k)
        figures.append(path)
    log.info("importance: %d features common to every member's top %d", len(common), c.top_k)
    return StageResult(artifacts=[out_dir / IMPORTANCE_CSV, out_dir / TOP_CSV, *figures])

