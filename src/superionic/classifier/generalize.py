"""Generalize stage: representation x model variants under grouped CV, calibrated, with abstention.

Every variant (a feature set from ``generalize.feature_sets`` times a model
from ``generalize.models``) is scored under the same four protocols, with
identical folds for every variant:

* ``random``: stratified k-fold (what the paper's random splits measure);
* ``chemsys``: stratified group k-fold, no element set on both sides;
* ``family``: the same over curated structure families (``families``);
* ``source``: leave one literature source out (train on the others).

Each outer training part fits a calibrated classifier: the model's pipeline
inside ``CalibratedClassifierCV`` whose inner folds are grouped by chemical
system, so the probabilities are calibrated for chemistry the model has not
seen, which is what screening asks of them. Nothing of an outer validation
part is seen by the fit, the calibration or the abstention threshold.

Per protocol: accuracy, balanced accuracy, ROC-AUC, Brier score, expected
calibration error (equal-width bins) and selective accuracy, i.e. the
accuracy on the ``coverage`` share of out-of-fold predictions with the
largest ``|p - 0.5|`` (the model abstains on the rest).

The default variant is the one with the best mean balanced accuracy over the
``selection`` protocols. That choice is made on the same grouped folds it is
then reported on, so its figures carry a (small, 1 of n variants) selection
optimism; the report says so. The default is refitted on all rows and saved
with its abstention threshold (the confidence quantile of its chemsys-grouped
out-of-fold predictions) and its training features for the domain check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold

from superionic.data import columns as D
from superionic.classifier.protocol import Split, group_labels, grouped_splits, paper_splits
from superionic.classifier.zoo import build_pipeline
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

CD_BLOCK = "cd"
LI_BLOCK = "li"
MATSCHOLAR_BLOCK = "matscholar"
MEGNET_BLOCK = "megnet"
MP_BLOCK = "mp"
FEATURE_BLOCKS = (CD_BLOCK, LI_BLOCK, MATSCHOLAR_BLOCK, MEGNET_BLOCK, MP_BLOCK)
# blocks computed from the exact element amounts rather than the dataset's descriptor columns
AMOUNT_BLOCKS = (LI_BLOCK, MATSCHOLAR_BLOCK, MEGNET_BLOCK, MP_BLOCK)

RANDOM = "random"
CHEMSYS = "chemsys"
FAMILY = "family"
SOURCE = "source"
PROTOCOLS = (RANDOM, CHEMSYS, FAMILY, SOURCE)

METRIC_NAMES = ("accuracy", "balanced_accuracy", "roc_auc", "brier", "ece", "selective_accuracy")


@dataclass
class Folds:
    """One protocol's outer folds over the rows of the full table (positions)."""

    protocol: str
    splits: list[Split]
    # the validation part's name per split (a source for ``source``, else the fold number)
    names: list[str]


def variant_name(feature_set: str, model: str) -> str:
    return f"{feature_set}+{model}"


# --- features -------------------------------------------------------------


def needs_amounts(blocks: Sequence[str]) -> bool:
    return any(b in AMOUNT_BLOCKS for b in blocks)


def feature_table(frame: pd.DataFrame, cd_columns: Sequence[str], blocks: Sequence[str],
                  encoder: Any = None) -> pd.DataFrame:
    """The columns of the named feature blocks for every row of the dataset table."""
    amounts = None
    if needs_amounts(blocks):
        from pymatgen.core import Composition

        from superionic.features.lithium import amount_matrix

        amounts = amount_matrix([Composition(a) for a in frame[D.AMOUNTS]])
    return block_features(frame[list(cd_columns)] if CD_BLOCK in blocks else None, amounts, blocks, encoder)


def block_features(cd: pd.DataFrame | None, amounts: np.ndarray | None, blocks: Sequence[str],
                   encoder: Any = None) -> pd.DataFrame:
    """The named blocks from the CD descriptors and the element-amount matrix (Z order) of the same rows.

    ``encoder`` is the pre-trained :class:`~superionic.features.mp_encoder.MPEncoder`, needed by the
    ``mp`` block only.
    """
    unknown = sorted(set(blocks) - set(FEATURE_BLOCKS))
    if unknown:
        raise ValueError(f"generalize.feature_sets: unknown block(s) {unknown}; choose from {FEATURE_BLOCKS}")
    if MP_BLOCK in blocks and encoder is None:
        raise ValueError("the mp block needs the pre-trained encoder (generalize.pretrain.model; "
                         "run `dvc repro mp-pretrain`)")
    parts = []
    for block in blocks:
        if block == CD_BLOCK:
            parts.append(cd.astype(float).reset_index(drop=True))
        elif block == LI_BLOCK:
            from superionic.features.lithium import lithium_features_from_amounts

            parts.append(lithium_features_from_amounts(amounts))
        elif block in (MATSCHOLAR_BLOCK, MEGNET_BLOCK):
            from superionic.features.element_embedding import embedding_features_from_amounts

            parts.append(embedding_features_from_amounts(amounts, block))
        else:
            parts.append(encoder.features_from_amounts(amounts))
    return pd.concat(parts, axis=1)


# --- folds ----------------------------------------------------------------


def source_groups_of(sources: pd.Series, source_groups: Mapping[str, Sequence[str]]) -> list[set[str]]:
    """For each material, the set of source groups (kang, xu, ...) that report it."""
    member = {s: g for g, names in source_groups.items() for s in names}
    out = []
    for text in sources.fillna(""):
        names = [s for s in str(text).split(";") if s]
        unknown = [s for s in names if s not in member]
        if unknown:
            raise ValueError(f"generalize.source_groups: source {unknown[0]!r} is in no group")
        out.append({member[s] for s in names})
    return out


def leave_one_source_out(groups_per_row: Sequence[set[str]], names: Sequence[str]) -> tuple[list[Split], list[str]]:
    """Validate on the materials a source reports; train on materials no row of that source reports."""
    index = np.arange(len(groups_per_row))
    splits, kept = [], []
    for name in names:
        held = np.array([name in g for g in groups_per_row], dtype=bool)
        if held.any() and (~held).any():
            splits.append((index[~held], index[held]))
            kept.append(name)
    return splits, kept


def make_folds(
    frame: pd.DataFrame, y: np.ndarray, n_folds: int, seed: int, source_groups: Mapping[str, Sequence[str]],
) -> dict[str, Folds]:
    """The outer folds of every protocol, shared by all variants."""
    index = np.arange(len(y))
    rand = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = {RANDOM: Folds(RANDOM, [(tr, te) for tr, te in rand.split(index, y)], [str(i) for i in range(n_folds)])}
    for protocol in (CHEMSYS, FAMILY):
        groups, mask = group_labels(frame, protocol)
        rows = index[mask]
        inner = grouped_splits(y[mask], groups[mask], n_folds, seed)
        folds[protocol] = Folds(protocol, [(rows[tr], rows[te]) for tr, te in inner],
                                [str(i) for i in range(len(inner))])  # fmt: skip
    splits, names = leave_one_source_out(source_groups_of(frame[D.SOURCES], source_groups), list(source_groups))
    folds[SOURCE] = Folds(SOURCE, splits, names)
    return folds


# --- fitting ----------------------------------------------------------------


def fit_calibrated(
    spec: Mapping[str, Any], params: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray, chemsys: np.ndarray,
    method: str, inner_folds: int, seed: int,
) -> CalibratedClassifierCV:
    """The pipeline calibrated on chemsys-grouped inner folds of ``X`` (and only ``X``)."""
    inner = grouped_splits(y, chemsys, inner_folds, seed)
    # a plain str: the pickled model must not depend on the schema's enum class
    model = CalibratedClassifierCV(build_pipeline(spec, params, seed=seed), method=str(method), cv=inner)
    return model.fit(X, y)


def _fit_predict(
    spec: Mapping[str, Any], params: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray, chemsys: np.ndarray,
    split: Split, method: str, inner_folds: int, seed: int,
) -> np.ndarray:
    train, test = split
    model = fit_calibrated(spec, params, X.iloc[train], y[train], chemsys[train], method, inner_folds, seed)
    return model.predict_proba(X.iloc[test])[:, 1]


def out_of_fold(
    spec: Mapping[str, Any], params: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray, chemsys: np.ndarray,
    folds: Folds, method: str, inner_folds: int, seed: int, n_jobs: int,
) -> pd.DataFrame:
    """Calibrated out-of-fold probabilities: one row per (validation part, material)."""
    jobs = (delayed(_fit_predict)(spec, params, X, y, chemsys, s, method, inner_folds, seed) for s in folds.splits)
    probs = Parallel(n_jobs=n_jobs)(jobs) if n_jobs != 1 else [
        _fit_predict(spec, params, X, y, chemsys, s, method, inner_folds, seed) for s in folds.splits]
    parts = [pd.DataFrame({"part": name, "row": test, "y": y[test], "p": p})
             for name, (_, test), p in zip(folds.names, folds.splits, probs, strict=True)]  # fmt: skip
    return pd.concat(parts, ignore_index=True)


# --- metrics ----------------------------------------------------------------


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int) -> float:
    """Sum over equal-width probability bins of |mean p - positive rate|, weighted by bin size."""
    if len(y) == 0:
        return float("nan")
    bins = np.minimum((np.asarray(p) * n_bins).astype(int), n_bins - 1)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    sum_y = np.bincount(bins, weights=np.asarray(y, dtype=float), minlength=n_bins)
    return float(np.abs(sum_p - sum_y).sum() / len(y))


def reliability_table(y: np.ndarray, p: np.ndarray, n_bins: int) -> pd.DataFrame:
    bins = np.minimum((np.asarray(p) * n_bins).astype(int), n_bins - 1)
    frame = pd.DataFrame({"bin": bins, "p": p, "y": y})
    out = frame.groupby("bin").agg(n=("y", "size"), mean_p=("p", "mean"), positive_rate=("y", "mean"))
    return out.reset_index()


def confidence(p: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(p, dtype=float) - 0.5)


def selective(y: np.ndarray, p: np.ndarray, coverage: float) -> tuple[float, float]:
    """Accuracy on the ``coverage`` share with the largest confidence, and the confidence cut-off used."""
    n_keep = max(1, int(np.ceil(coverage * len(y))))
    order = np.argsort(-confidence(p), kind="stable")
    keep = order[:n_keep]
    return float(accuracy_score(y[keep], p[keep] >= 0.5)), float(confidence(p)[order[n_keep - 1]])


def coverage_curve(y: np.ndarray, p: np.ndarray, coverages: Sequence[float]) -> list[float]:
    return [selective(y, p, c)[0] for c in coverages]


def scores(y: np.ndarray, p: np.ndarray, coverage: float, n_bins: int) -> dict[str, float]:
    y = np.asarray(y, dtype=int)
    pred = (p >= 0.5).astype(int)
    two = len(np.unique(y)) == 2
    return {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        # with one class in a part, balanced accuracy is that class's recall (sklearn warns; avoid)
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if two else float(accuracy_score(y, pred)),
        "roc_auc": float(roc_auc_score(y, p)) if two else float("nan"),
        "brier": float(brier_score_loss(y, p, labels=[0, 1])),
        "ece": expected_calibration_error(y, p, n_bins),
        "selective_accuracy": selective(y, p, coverage)[0],
    }


def protocol_scores(oof: pd.DataFrame, protocol: str, coverage: float, n_bins: int) -> dict[str, Any]:
    """Pooled scores; for ``source`` also per held-out source and their mean."""
    out: dict[str, Any] = scores(oof["y"].to_numpy(), oof["p"].to_numpy(), coverage, n_bins)
    if protocol == SOURCE:
        per = {name: scores(g["y"].to_numpy(), g["p"].to_numpy(), coverage, n_bins)
               for name, g in oof.groupby("part", sort=True)}  # fmt: skip
        out["per_source"] = per
        out["balanced_accuracy_mean_over_sources"] = float(np.mean([v["balanced_accuracy"] for v in per.values()]))
    return out


def choose_default(table: pd.DataFrame, selection: Sequence[str]) -> str:
    """The variant with the best mean balanced accuracy over the selection protocols (ties: name order)."""
    pick = table[table["protocol"].isin(list(selection))]
    mean = pick.groupby("variant")["balanced_accuracy"].mean()
    best = mean.max()
    return sorted(mean.index[mean == best])[0]


def per_family(oof_family: pd.DataFrame, families: pd.Series, min_rows: int) -> pd.DataFrame:
    """Each family with at least ``min_rows`` rows, scored while it was held out of training.

    ROC-AUC within a family says whether the ranking of its members still works when
    the probabilities are off (a shift of the whole family cannot hurt it).
    """
    frame = oof_family.assign(family=families.to_numpy()[oof_family["row"].to_numpy()])
    rows = []
    for family, sub in frame.groupby("family", sort=True):
        if len(sub) < min_rows:
            continue
        y, p = sub["y"].to_numpy(), sub["p"].to_numpy()
        rows.append({"family": family, "n": len(sub), "superionic_share": float(y.mean()), "mean_p": float(p.mean()),
                     "accuracy": float(accuracy_score(y, p >= 0.5)),
                     "roc_auc_within_family": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")})
    return pd.DataFrame(rows).sort_values(["n", "family"], ascending=[False, True], ignore_index=True)


def paper_protocol_accuracy(
    spec: Mapping[str, Any], params: Mapping[str, Any], X: pd.DataFrame, y: np.ndarray, chemsys: np.ndarray,
    n_splits: int, test_size: float, method: str, inner_folds: int, seed: int, n_jobs: int,
) -> dict[str, float]:
    """The paper's protocol (stratified 80/20 splits, seeds seed..) for the calibrated default."""
    folds = Folds("paper", paper_splits(y, n_splits, test_size, seed0=seed), [str(i) for i in range(n_splits)])
    oof = out_of_fold(spec, params, X, y, chemsys, folds, method, inner_folds, seed, n_jobs)
    acc = oof.assign(ok=(oof["p"] >= 0.5) == oof["y"]).groupby("part")["ok"].mean()
    return {"accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std(ddof=0)),
            # the splits overlap, so this understates the uncertainty of the mean; a floor, not an interval
            "accuracy_standard_error": float(acc.std(ddof=1) / np.sqrt(len(acc))), "n_splits": n_splits}


# --- the stage ----------------------------------------------------------------

COVERAGE_GRID = tuple(round(c, 2) for c in np.arange(0.1, 1.0001, 0.05))
# the stage's folder under generalize.report_dir (the out-of-fold table is DVC-cached: generalize.out_of_fold)
GENERALIZE_DIR = "generalize"
VARIANTS_CSV = f"{GENERALIZE_DIR}/variants.csv"
SOURCES_CSV = f"{GENERALIZE_DIR}/leave_one_source_out.csv"
COVERAGE_CSV = f"{GENERALIZE_DIR}/accuracy_coverage.csv"
RELIABILITY_CSV = f"{GENERALIZE_DIR}/reliability.csv"
FAMILY_CSV = f"{GENERALIZE_DIR}/default_per_family.csv"
# families smaller than this are pooled into the headline figure only
MIN_FAMILY_ROWS = 10
FIG_RELIABILITY = f"{GENERALIZE_DIR}/reliability.png"
FIG_COVERAGE = f"{GENERALIZE_DIR}/accuracy_coverage.png"


# predict's trust columns
P_CALIBRATED = D.P_CALIBRATED
CONFIDENCE = "confidence"
ABSTAIN = D.ABSTAIN
DOMAIN_DISTANCE = "domain_distance"
IN_DOMAIN = "in_domain"
TRUST_COLUMNS = (P_CALIBRATED, CONFIDENCE, ABSTAIN, DOMAIN_DISTANCE, IN_DOMAIN)
P_SPREAD = "p_spread"


@dataclass
class DeployedModel:
    """The default variant refitted on every row, with what predict needs to flag trust."""

    variant: str
    feature_blocks: list[str]
    # the dataset's descriptor columns the cd block takes, and all model inputs in order
    cd_columns: list[str]
    feature_columns: list[str]
    model: CalibratedClassifierCV
    # answer when |p - 0.5| >= this, abstain below (chemsys-grouped out-of-fold quantile)
    abstain_below: float
    coverage: float
    train_features: pd.DataFrame
    # applicability domain: mean distance to the k nearest training rows (z-scored features)
    ad_neighbors: int
    ad_quantile: float
    # the pre-trained MP composition model, when a block needs it
    encoder: Any = None

    def features(self, descriptors: pd.DataFrame, amounts: Sequence[str]) -> pd.DataFrame:
        """Model inputs from the dataset descriptors of each row and its exact composition."""
        frame = descriptors.reset_index(drop=True).assign(**{D.AMOUNTS: list(amounts)})
        return feature_table(frame, self.cd_columns, self.feature_blocks, self.encoder)[self.feature_columns]

    def member_probabilities(self, X: pd.DataFrame) -> np.ndarray:
        """P(superionic) of each calibrated inner-fold model, shape (models, rows); their mean is the model's."""
        Xf = X[self.feature_columns]
        return np.asarray([cc.predict_proba(Xf)[:, 1] for cc in self.model.calibrated_classifiers_])

    def assess(self, X: pd.DataFrame, spread: bool = False) -> pd.DataFrame:
        """Calibrated probability, confidence, the abstain flag and the domain check per row.

        ``spread`` adds :data:`P_SPREAD`, the standard deviation over the
        inner-fold models (each trained on other chemical systems).
        """
        from superionic.classifier.domain import applicability, standardize

        columns = (*TRUST_COLUMNS, P_SPREAD) if spread else TRUST_COLUMNS
        if len(X) == 0:
            return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
        members = self.member_probabilities(X)
        # summed in order then divided, exactly as CalibratedClassifierCV.predict_proba averages
        total = np.zeros(len(X))
        for p_member in members:
            total += p_member
        p = total / len(members)
        tz, qz = standardize(self.train_features, X[self.feature_columns])
        distance, threshold = applicability(tz, qz, self.ad_neighbors, self.ad_quantile)
        conf = confidence(p)
        out = pd.DataFrame({P_CALIBRATED: p, CONFIDENCE: conf, ABSTAIN: conf < self.abstain_below,
                            DOMAIN_DISTANCE: distance, IN_DOMAIN: distance <= threshold}, index=X.index)
        if spread:
            out[P_SPREAD] = members.std(axis=0)
        return out


def score_variants(
    frame: pd.DataFrame, cd_columns: Sequence[str], y: np.ndarray, folds: Mapping[str, Folds],
    feature_sets: Mapping[str, Sequence[str]], models: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]],
    method: str, inner_folds: int, coverage: float, n_bins: int, seed: int, n_jobs: int, encoder: Any = None,
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, pd.DataFrame]]:
    """Scores of every variant under every protocol; also the out-of-fold tables per variant."""
    chemsys = frame[D.CHEMSYS].astype(str).to_numpy()
    rows, detail, oofs = [], {}, {}
    for set_name, blocks in feature_sets.items():
        X = feature_table(frame, cd_columns, blocks, encoder)
        for model_name, (spec, params) in models.items():
            name = variant_name(set_name, model_name)
            start = time.perf_counter()
            detail[name] = {}
            parts = []
            for protocol, fold in folds.items():
                oof = out_of_fold(spec, params, X, y, chemsys, fold, method, inner_folds, seed, n_jobs)
                result = protocol_scores(oof, protocol, coverage, n_bins)
                detail[name][protocol] = result
                rows.append({"variant": name, "features": set_name, "model": model_name, "protocol": protocol,
                             **{k: result[k] for k in ("n", *METRIC_NAMES)}})  # fmt: skip
                parts.append(oof.assign(protocol=protocol))
            oofs[name] = pd.concat(parts, ignore_index=True)
            log.info("%s: balanced accuracy chemsys %.3f, family %.3f (%.0f s)", name,
                     detail[name][CHEMSYS]["balanced_accuracy"], detail[name][FAMILY]["balanced_accuracy"],
                     time.perf_counter() - start)  # fmt: skip
    return pd.DataFrame(rows), detail, oofs


def fit_deployed(
    X: pd.DataFrame, y: np.ndarray, chemsys: np.ndarray, cd_columns: Sequence[str], variant: str,
    blocks: Sequence[str], spec: Mapping[str, Any], params: Mapping[str, Any], oof_chemsys: pd.DataFrame,
    method: str, inner_folds: int, coverage: float, seed: int, ad_neighbors: int, ad_quantile: float,
    encoder: Any = None,
) -> DeployedModel:
    """The variant refitted on every row; ``X`` is its :func:`feature_table`."""
    model = fit_calibrated(spec, params, X, y, chemsys, method, inner_folds, seed)
    cutoff = selective(oof_chemsys["y"].to_numpy(), oof_chemsys["p"].to_numpy(), coverage)[1]
    return DeployedModel(variant, list(blocks), list(cd_columns), list(X.columns), model, cutoff, coverage, X,
                         ad_neighbors, ad_quantile, encoder if MP_BLOCK in blocks else None)


def _save_plot(fig: Any, ax: Any, xlabel: str, ylabel: str, title: str, path: Any) -> Any:
    from superionic.io import save_figure

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = save_figure(fig, path, dpi=110)
    fig.clf()
    return path


def plot_reliability(oof: pd.DataFrame, n_bins: int, path: Any) -> Any:
    from superionic.io import pyplot as _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
    for protocol, sub in oof.groupby("protocol", sort=False):
        table = reliability_table(sub["y"].to_numpy(), sub["p"].to_numpy(), n_bins)
        ax.plot(table["mean_p"], table["positive_rate"], "o-", ms=3, label=str(protocol))
    path = _save_plot(fig, ax, "calibrated probability (out of fold)", "fraction superionic",
                      "Reliability of the default model", path)
    plt.close(fig)
    return path


def plot_coverage(curve: pd.DataFrame, coverage: float, path: Any) -> Any:
    from superionic.io import pyplot as _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for protocol in curve.columns.drop("coverage"):
        ax.plot(curve["coverage"], curve[protocol], "o-", ms=3, label=protocol)
    ax.axvline(coverage, color="grey", lw=0.8, ls=":")
    path = _save_plot(fig, ax, "coverage (share answered, most confident first)", "accuracy on the answered share",
                      "Accuracy-coverage of the default model", path)
    plt.close(fig)
    return path


@stage("generalize", sections=["generalize", "seed", "classifier", "screen"])
def run_stage(cfg: Any) -> StageResult:
    from superionic.io import TABLE_DECIMALS, write_csv, write_json, write_text
    from superionic.classifier.data import load
    from superionic.io import load_verified, save_model

    g = cfg.generalize
    data = load(cfg.paths.dataset)
    frame, y = data.frame, data.y
    models = {}
    for name, entry in g.models.items():
        if entry.spec not in cfg.models:
            raise ValueError(f"generalize.models.{name}.spec: {entry.spec!r} has no entry under models (conf/model/)")
        models[name] = (cfg.models[entry.spec], dict(entry.params))
    unknown = sorted(set(g.selection) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"generalize.selection: unknown protocol(s) {unknown}; choose from {PROTOCOLS}")
    feature_sets = {k: list(v) for k, v in g.feature_sets.items()}
    encoder = None
    if any(MP_BLOCK in blocks for blocks in feature_sets.values()):
        from superionic.features.mp_encoder import MPEncoder

        encoder = load_verified(g.pretrain.model, MPEncoder, "generalize.pretrain.model", "mp-pretrain")
    out = Path(g.report_dir)
    folds = make_folds(frame, y, int(g.folds), int(cfg.seed), g.source_groups)
    table, detail, oofs = score_variants(
        frame, data.feature_columns, y, folds, feature_sets, models, g.calibration, int(g.inner_folds),
        float(g.coverage), int(g.calibration_bins), int(cfg.seed), int(g.n_jobs), encoder,
    )
    default = choose_default(table, list(g.selection))
    set_name, model_name = default.split("+", 1)
    spec, params = models[model_name]
    X_default = feature_table(frame, data.feature_columns, feature_sets[set_name], encoder)
    chemsys = frame[D.CHEMSYS].astype(str).to_numpy()
    paper = paper_protocol_accuracy(spec, params, X_default, y, chemsys, int(cfg.classifier.n_splits),
                                    float(cfg.classifier.test_size), g.calibration, int(g.inner_folds),
                                    int(cfg.seed), int(g.n_jobs))  # fmt: skip
    oof = oofs[default]
    deployed = fit_deployed(X_default, y, chemsys, data.feature_columns, default, feature_sets[set_name], spec,
                            params, oof[oof["protocol"] == CHEMSYS], g.calibration, int(g.inner_folds),
                            float(g.coverage), int(cfg.seed), int(cfg.screen.ad_neighbors),
                            float(cfg.screen.ad_quantile), encoder)  # fmt: skip
    save_model(deployed, g.model)

    curve = pd.DataFrame({"coverage": COVERAGE_GRID})
    for protocol, sub in oof.groupby("protocol", sort=False):
        curve[protocol] = coverage_curve(sub["y"].to_numpy(), sub["p"].to_numpy(), COVERAGE_GRID)
    reliability = pd.concat(
        [reliability_table(s["y"].to_numpy(), s["p"].to_numpy(), int(g.calibration_bins)).assign(protocol=p)
         for p, s in oof.groupby("protocol", sort=False)], ignore_index=True)  # fmt: skip
    sources = pd.DataFrame([{"variant": v, "source": s, **{k: r[k] for k in ("n", *METRIC_NAMES)}}
                            for v, d in detail.items() for s, r in d[SOURCE]["per_source"].items()])
    families = per_family(oof[oof["protocol"] == FAMILY], frame[D.FAMILY], MIN_FAMILY_ROWS)
    pretrain = None
    if encoder is not None:
        import json

        pretrain = json.loads(Path(g.pretrain.metrics).read_text(encoding="utf-8"))
    frame_rows = frame[[D.REDUCED_FORMULA, D.CHEMSYS, D.FAMILY]].reset_index(drop=True)
    oof_out = oof.join(frame_rows, on="row").drop(columns="row")
    paths = [
        write_csv(table, out / VARIANTS_CSV), write_csv(sources, out / SOURCES_CSV),
        write_csv(curve, out / COVERAGE_CSV), write_csv(reliability, out / RELIABILITY_CSV),
        write_csv(oof_out, g.out_of_fold), write_csv(families, out / FAMILY_CSV),
        plot_reliability(oof, int(g.calibration_bins), out / FIG_RELIABILITY),
        plot_coverage(curve, float(g.coverage), out / FIG_COVERAGE),
    ]
    headline = {p: {k: detail[default][p][k] for k in METRIC_NAMES} for p in PROTOCOLS}
    metrics = {
        "default": default,
        "selection": list(g.selection),
        "n_variants": len(detail),
        "abstain_below_confidence": deployed.abstain_below,
        "default_scores": headline,
        "default_balanced_accuracy_mean_over_sources": detail[default][SOURCE]["balanced_accuracy_mean_over_sources"],
        "default_paper_protocol": paper,
        "fold_counts": {p: len(f.splits) for p, f in folds.items()},
        "rows_in_family_cv": int(sum(len(te) for _, te in folds[FAMILY].splits)),
        "variants": detail,
    }
    write_json(metrics, g.metrics, decimals=TABLE_DECIMALS)
    paths.append(write_text(render_report(metrics, table, sources, families, pretrain, cfg, len(frame)), g.report))
    log.info("default variant %s; family balanced accuracy %.3f, chemsys %.3f, ECE chemsys %.3f", default,
             headline[FAMILY]["balanced_accuracy"], headline[CHEMSYS]["balanced_accuracy"],
             headline[CHEMSYS]["ece"])  # fmt: skip
    return StageResult({"default": {p: {k: v for k, v in s.items() if np.isfinite(v)} for p, s in headline.items()},
                        "paper_protocol_accuracy": paper["accuracy_mean"]}, [g.metrics, *paths])


# --- report -------------------------------------------------------------------

BLOCK_TEXT = {
    CD_BLOCK: "`cd`: the 145 CD descriptors (matminer, vectorised)",
    LI_BLOCK: "`li`: 26 Li-specific chemistry descriptors (Li fraction, Li per anion, anion identity and "
              "polarizability, mixed anions, framework valence, Li excess)",
    MATSCHOLAR_BLOCK: "`matscholar`: amount-weighted mean and std of the 200-d Matscholar element embeddings "
                      "(word2vec on the materials literature; ships with matminer)",
    MEGNET_BLOCK: "`megnet`: the same over MEGNet's 16-d element embeddings (learned on MP energies; ships with "
                  "matminer)",
    MP_BLOCK: "`mp`: transfer from a composition network pre-trained on Materials Project formation energies and "
              "band gaps (`mp-pretrain`): its pooled composition vector and two predicted properties",
}


def representations(g: Any) -> list[str]:
    """The feature blocks some variant uses, described."""
    return [BLOCK_TEXT[b] for b in FEATURE_BLOCKS if any(b in blocks for blocks in g.feature_sets.values())]


PROTOCOL_TITLES = {RANDOM: "random", CHEMSYS: "chemsys", FAMILY: "family", SOURCE: "leave-source-out"}
TEMPLATE = "generalization.md.j2"


def variant_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per variant: accuracy (random), balanced accuracy under every protocol, then ECE and selective
    accuracy under chemsys and family grouping (the columns of the variant table)."""
    wide = table.pivot(index="variant", columns="protocol", values="balanced_accuracy")
    ece = table.pivot(index="variant", columns="protocol", values="ece")
    sel = table.pivot(index="variant", columns="protocol", values="selective_accuracy")
    acc = table.pivot(index="variant", columns="protocol", values="accuracy")
    return [{"variant": v, "values": [acc.loc[v, RANDOM], *[wide.loc[v, p] for p in PROTOCOLS],
                                      ece.loc[v, CHEMSYS], ece.loc[v, FAMILY],
                                      sel.loc[v, CHEMSYS], sel.loc[v, FAMILY]]}
            for v in wide.index]  # fmt: skip


def report_context(metrics: Mapping[str, Any], table: pd.DataFrame, sources: pd.DataFrame,
                   families: pd.DataFrame, pretrain: Mapping[str, Any] | None, cfg: Any,
                   n_rows: int) -> dict[str, Any]:
    """Everything generalization.md.j2 shows, as plain data (no formatting)."""
    from superionic.reports.render import link

    per_source = sources[sources["variant"] == metrics["default"]]
    return {
        "cfg": cfg,
        "metrics": metrics,
        "n_rows": n_rows,
        "variants": variant_rows(table),
        "protocol_titles": [PROTOCOL_TITLES[p] for p in PROTOCOLS],
        "representations": representations(cfg.generalize),
        "pretrain": pretrain,
        "min_family_rows": MIN_FAMILY_ROWS,
        "family_rows": [[r.family, r.n, r.superionic_share, r.mean_p, r.accuracy, r.roc_auc_within_family]
                        for r in families.itertuples(index=False)],
        "source_rows": [[r.source, r.n, r.accuracy, r.balanced_accuracy, r.roc_auc, r.ece]
                        for r in per_source.itertuples(index=False)],
        "figures": {"reliability": link(Path(cfg.generalize.report_dir) / FIG_RELIABILITY, cfg.generalize.report),
                    "coverage": link(Path(cfg.generalize.report_dir) / FIG_COVERAGE, cfg.generalize.report)},
    }  # fmt: skip



def render_report(metrics: Mapping[str, Any], table: pd.DataFrame, sources: pd.DataFrame, families: pd.DataFrame,
                  pretrain: Mapping[str, Any] | None, cfg: Any, n_rows: int) -> str:
    from superionic.reports.render import render

    return render(TEMPLATE, report_context(metrics, table, sources, families, pretrain, cfg, n_rows))
