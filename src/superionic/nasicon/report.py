"""``nasicon-report``: reports/nasicon.md and its figures, from the stage outputs only."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from superionic.io import PNG_METADATA, save_figure, write_text  # noqa: E402
from superionic.nasicon import data as nd  # noqa: E402
from superionic.nasicon.svc import DESCRIPTORS, PAPER_BOUNDARY  # noqa: E402
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

# Numbers from Ouyang et al., Nat. Commun. 12, 5752 (2021), as quoted in the issue.
PAPER = {
    "accuracy": "82.1 %",
    "f1": "74.7 %",
    "boundary": "0.203*t1 + t2 <= 0.322",
    "experimental_recall": "18/32",
}
# Colour scale of the maps (meV/atom): the target's tail reaches ~8,000.
COLOR_MIN, COLOR_MAX = -100.0, 300.0


def _load_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def map_axes(preds: pd.DataFrame, name: str, m: dict) -> tuple[np.ndarray, np.ndarray, str, str, float | None]:
    """Plane of a descriptor map in which its linear SVC boundary is a straight line.

    2D: (t1, t2), boundary t2 = beta - alpha*t1. 3D: x = a1*t1 + a2*t2 (the
    SVC's own combination of the first two features) against t3, boundary
    t3 = beta - x: an exact view of the boundary plane edge-on. 1D: t1
    against the target, boundary the vertical t1 = beta. Returns (x, y,
    x label, y label, slope of the boundary line or None if vertical).
    """
    d = int(m.get("dimension", 2))
    b = m["boundary"]
    cols = [preds[f"{name}_t{k}"].to_numpy() for k in range(1, d + 1)]
    if d == 1:
        return cols[0], preds[nd.TARGET].to_numpy(), f"t1 = {m['t1']}", r"$E_{hull} - T S_{ideal}$ (meV/atom)", None
    if d == 2:
        return cols[0], cols[1], f"t1 = {m['t1']}", f"t2 = {m['t2']}", -float(b["coef"][0])
    x = sum(float(a) * c for a, c in zip(b["coef"], cols[:-1], strict=True))
    terms = " + ".join(f"{float(a):.3g}*t{k}" for k, a in enumerate(b["coef"], start=1))
    defs = "; ".join(f"t{k} = {m[f't{k}']}" for k in range(1, d))
    return x, cols[-1], f"{terms}   ({defs})", f"t{d} = {m[f't{d}']}", -1.0


def map_figure(preds: pd.DataFrame, name: str, metrics: dict, path: Path, experimental: bool) -> None:
    """Figure-5-style map: the descriptor, coloured by target, with the SVC boundary."""
    m = metrics[name]
    x1, x2, xlabel, ylabel, slope = map_axes(preds, name, m)
    y = preds[nd.TARGET].to_numpy()
    b = m["boundary"]
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    if experimental:
        ax.scatter(x1, x2, s=3, c="0.85", lw=0, label="all compositions")
        exp = (preds["exp_group"] != "").to_numpy()
        for rich, marker in ((False, "o"), (True, "s")):
            sub = exp & (preds[nd.NA_RICH].to_numpy() == rich)
            ok = preds[f"{name}_pred_stable"].to_numpy().astype(bool)
            lab = "Na-rich" if rich else "Na-poor"
            ax.scatter(x1[sub & ok], x2[sub & ok], marker=marker, s=40, c="tab:green",
                       edgecolors="k", label=f"{lab}, predicted stable")
            ax.scatter(x1[sub & ~ok], x2[sub & ~ok], marker=marker, s=40, c="tab:red",
                       edgecolors="k", label=f"{lab}, predicted unstable")
    else:
        order = np.argsort(-y)  # stable compounds drawn last, on top
        sc = ax.scatter(x1[order], x2[order], c=np.clip(y[order], COLOR_MIN, COLOR_MAX), s=4, lw=0,
                        cmap="RdBu_r", norm=TwoSlopeNorm(0.0, COLOR_MIN, COLOR_MAX))
        fig.colorbar(sc, ax=ax, label=r"$E_{hull} - T S_{ideal}$ (meV/atom, clipped)")
    if slope is None:
        ax.axvline(b["beta"], color="k", ls="--", lw=1.2, label="SVC boundary")
    else:
        xs = np.linspace(np.nanmin(x1), np.nanmax(x1), 200)
        ax.plot(xs, b["beta"] + slope * xs, "k--", lw=1.2, label="SVC boundary")
    lo, hi = np.nanpercentile(x2, [0, 100])
    ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    ax.set_xlabel(xlabel, fontsize=6)
    ax.set_ylabel(ylabel, fontsize=6)
    title = {"sisso": f"SISSO {m.get('dimension', 2)}D descriptor", "search": "all-pairs 2D descriptor",
             "paper": "paper descriptor"}[name]
    ax.set_title(title + (": experimental compositions" if experimental else ""))
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    save_figure(fig, path, dpi=120, metadata=PNG_METADATA)
    plt.close(fig)


def render(cfg: DictConfig) -> tuple[str, list[Path]]:
    p = cfg.nasicon.paths
    dm, sm, mm, vm, qm = (_load_json(x) for x in (p.data_metrics, p.sis_metrics, p.mlr_metrics, p.svc_metrics,
                                                    p.sisso_metrics))
    qt = pd.read_csv(p.sisso_table, keep_default_na=False)
    sis = pd.read_csv(p.sis_features)
    top = pd.read_csv(p.mlr_top)
    preds = pd.read_csv(p.svc_predictions, keep_default_na=False)
    exp = pd.read_csv(p.experimental, keep_default_na=False)
    data = pd.read_parquet(p.data, columns=[nd.COMP, nd.EXP_GROUP, nd.NA_RICH])
    preds = preds.merge(data, on=nd.COMP, how="left", validate="one_to_one")
    fig_dir = Path(p.figures)
    figs = []
    for name in DESCRIPTORS:
        for experimental, tag in ((False, "5a"), (True, "5b")):
            path = fig_dir / f"fig{tag}_{name}.png"
            map_figure(preds, name, vm, path, experimental)
            figs.append(path)
    rel = lambda path: Path(path).relative_to(Path(p.report).parent).as_posix()  # noqa: E731

    t1 = dm["table1"]
    best = mm["best"]
    L: list[str] = []
    L += ["# NASICON stability descriptors (Ouyang et al. 2021, reproduced)", "",
          "Generated by `dvc repro nasicon-report` from the pipeline outputs; do not edit.", ""]
    L += ["## Summary", "",
          "- New descriptor (SISSO residual rounds, chosen on validation alone): **"
          + ", ".join(f"t{k} = `{e}`" for k, e in enumerate(qm["chosen"]["features"], start=1))
          + f"**; test ranking accuracy {_pct(qm['chosen']['test_ranking_accuracy'])} (paper: 84.7 %).",
          f"- Best 2D descriptor of the all-pairs search: **t1 = `{best['feature_1']}`, t2 = `{best['feature_2']}`**.",
          f"- Feature space (complexity {sm['complexity']}): {sm['n_candidates']:,} candidate expressions, "
          f"{sm['n_unique_valid']:,} valid and distinct; SIS kept {sm['sis_size']:,} "
          f"(|r| against the {sm['sis_target']} target, {sm['abs_r_last']:.3f} to {sm['abs_r_best']:.3f}).",
          f"- All {mm['n_pairs']:,} pairs ranked exactly on {mm['n_validation']} validation compounds.",
          f"- Wall times of this run: `{p.timings}/` (kept out of git, they change with every run) and the "
          "MLflow runs `nasicon-sis` / `nasicon-mlr` / `nasicon-sisso`; throughput on an idle machine: "
          "`benchmarks/nasicon_search.py`.", ""]
    q, s, pp = vm["sisso"], vm["search"], vm["paper"]
    qc = qm["chosen"]
    rec = vm["experimental_recall"]["all"]

    def eq(v: dict) -> str:
        b = v["boundary"]
        terms = " + ".join([*(f"{float(a):.4g}*t{k}" for k, a in enumerate(b["coef"], start=1)), f"t{v['dimension']}"])
        return f"`{terms} {b['relation']} {b['beta']:.4g}`"

    def row(title: str, fmt, key: str, published: str = "") -> str:
        return f"| {title} | {fmt(q[key])} | {fmt(s[key])} | {fmt(pp[key])} | {published} |"

    f3 = lambda v: f"{v:.3f}"  # noqa: E731
    L += [f"| | SISSO {q['dimension']}D ({qc['variant'].replace('_', ' ')}) | all-pairs 2D (SIS {sm['sis_size']:,}) "
          "| paper's t1, t2 (our fit) | paper (published) |", "|---|---|---|---|---|",
          f"| MLR validation ranking accuracy | {_pct(qc['val_ranking_accuracy'])} | {_pct(best['val_ranking_accuracy'])} | "
          f"{_pct(mm['paper_descriptor']['val_ranking_accuracy'])} | |",
          f"| MLR F1 (stable class, validation) | | {best['f1_val']:.3f} | {mm['paper_descriptor']['f1_val']:.3f} | |",
          f"| MLR test ranking accuracy | {_pct(qc['test_ranking_accuracy'])} | {_pct(best['test_ranking_accuracy'])} | "
          f"{_pct(mm['paper_descriptor']['test_ranking_accuracy'])} | 84.7 % |",
          row(f"SVC {cfg.nasicon.cv_folds}-fold CV validation accuracy", _pct, "val_accuracy_mean", f"{PAPER['accuracy']} (see note)"),
          row("SVC CV training accuracy", _pct, "train_accuracy_mean"),
          row("SVC CV validation macro-F1", f3, "val_macro_f1_mean", f"{PAPER['f1']} (see note)"),
          row("SVC CV validation F1 of the stable class", f3, "val_f1_stable_mean"),
          row("SVC CV training macro-F1", f3, "train_macro_f1_mean"),
          row("SVC test accuracy (authors' 777)", _pct, "test_accuracy"),
          row("SVC test macro-F1", f3, "test_macro_f1"),
          row("share of all compositions predicted stable", _pct, "predicted_stable_fraction", "(16.5 % DFT-stable)"),
          f"| boundary (stable side) | {eq(q)} | {eq(s)} | {eq(pp)} | `{PAPER['boundary']}` |",
          f"| experimental recall | {rec['sisso']}/{rec['n']} | {rec['search']}/{rec['n']} | {rec['paper']}/{rec['n']} | "
          f"{PAPER['experimental_recall']} |",
          "", "The 84.7 % is the test ranking accuracy the issue quotes for the paper's descriptor; the paper's own "
          "t1, t2 through our pipeline (least-squares ranking direction fitted on our fit rows) reach the figure "
          "in the third column.", ""]
    pub = vm["paper_published_boundary_as_printed"]
    L += [f"Note: the issue quotes the paper's SVC as {PAPER['accuracy']} / {PAPER['f1']} without saying which "
          "two numbers these are; they sit closest to our CV validation accuracy and macro-F1 on the paper's "
          "own t1, t2, where we place them (a reading, not a certainty). The published boundary "
          f"`{PAPER['boundary']}`, applied as printed to the released t1, t2, calls "
          f"{_pct(pub['predicted_stable_fraction'])} of compositions stable (training accuracy "
          f"{_pct(pub['train_accuracy'])}, macro-F1 {pub['train_macro_f1']:.3f}): the released t2 reaches "
          "~700, so the published coefficients must refer to a rescaled t1, t2 whose scaling is not in the data. "
          f"Our boundary on the paper's t1, t2 equals the published one if t2 is divided by "
          f"{pub['implied_t2_scale']:.4g} (t1 as released): it then reads `{pub['implied_alpha']:.3f}*t1 + t2' < "
          f"{PAPER_BOUNDARY['beta']}` against the published `{PAPER['boundary']}`. "
          "Our boundaries are in the units of the released values.", ""]
    L += ["## Data", "",
          f"{t1['all']['n']:,} compositions ({t1['by_split']['train']['n']:,} train / {t1['by_split']['test']['n']} test, "
          f"the authors' split); {t1['all']['n_stable']} ({_pct(t1['all']['stable_fraction'])}) have "
          f"E_hull - T*S_ideal <= {cfg.nasicon.stable_threshold:g} meV/atom. The training split is divided "
          f"{t1['by_role']['fit']['n']} fit / {t1['by_role']['validation']['n']} validation (stratified); "
          "SIS and all fits use the fit rows only.", "",
          f"Stability groups: {t1['stability_groups']['not_separable']}; only stable vs unlikely is used.", "",
          "| group | n | stable | stable fraction | median E_hull - T*S_ideal (meV/atom) |", "|---|---|---|---|---|"]
    for title, key in (("polyanion", "by_polyanion"), ("Na per f.u.", "by_na_content")):
        for g, v in t1[key].items():
            L.append(f"| {title} {g} | {v['n']} | {v['n_stable']} | {_pct(v['stable_fraction'])} | {v['target_median']:.1f} |")
    L += ["", "## Feature space and SIS", "",
          "Complexity is the SISSO rung: rung 0 = the 14 primaries; rung r applies every unary operator "
          "to the new features of rung r-1 and every binary operator to each pair of features of rung <= r-1 "
          "with at least one new one. The paper's t1 = cbrt(NNa) + AnionChgStd^2 and t2 = EWald^2*(XWithNa*RDiffStd) "
          "have three operators each (complexity 3 if complexity counted operators) but are rung 2, so they lie "
          "inside the default space:", ""]
    if sm.get("last_rung_basis", 0) > 0 and sm["complexity"] >= 2:
        L[-1:-1] = ["", f"Screened basis (`descriptor.last_rung_basis = {sm['last_rung_basis']:,}`): rung "
                    f"{sm['complexity'] - 1} is streamed and scored like the last rung, and only its "
                    f"{sm['last_rung_basis']:,} best features by |r| are combined by rung {sm['complexity']} (with "
                    "every lower rung); rung-3 candidates of the full space (~10^11) are out of reach."]
    for k, v in sm["paper_descriptor"].items():
        L.append(f"- {k}: in space: {v['in_space']}; |r| = {v['abs_r']:.4f}, rank {v['rank_by_abs_r']:,} by |r| "
                 f"(in the SIS top {sm['sis_size']}: {v['in_sis']}).")
    dups = ", ".join(f"`{a}` (affine copy of `{b}`)" for a, b in sm["primary_duplicates"].items()) or "none"
    L += ["", f"Primary features dropped as duplicates: {dups}."]
    L += ["", f"Operators: unary {list(cfg.descriptor.unary_ops)}, binary {list(cfg.descriptor.binary_ops)}; "
          f"a feature with any |value| > {cfg.descriptor.max_abs_value:g} is skipped (SISSO's fmax_max).", "",
          "| rung | candidates | valid | domain (log/sqrt of negatives, /0) | non-finite | out of range | constant | duplicate |",
          "|---|---|---|---|---|---|---|---|"]
    for rung, c in sm["counts_by_rung"].items():
        L.append(f"| {rung} | {c['candidates']:,} | {c['valid']:,} | {c['domain']:,} | {c['non_finite']:,} | "
                 f"{c['out_of_range']:,} | {c['constant']:,} | {c['duplicate']:,} |")
    L += ["", f"SIS target (`descriptor.sis_target = {sm['sis_target']}`): with `rank`, |r| is the Pearson "
          "correlation with the ranks of E_hull - T*S_ideal on the fit rows (a Spearman-type screen matching the "
          "ranking objective of the pair search); `raw` correlates with the values, whose tail (up to ~8,000 "
          "meV/atom) then decides the selection. Switch with `dvc exp run -S descriptor.sis_target=raw`."]
    L += ["", "Top SIS features:", "", "| rank | expression | r |", "|---|---|---|"]
    for _, row in sis.head(10).iterrows():
        L.append(f"| {row['rank']} | `{row['expression']}` | {row['r']:.4f} |")
    L += ["", "## Machine-learned ranking (all pairs)", "",
          "Each pair's ranking direction is the least-squares ranking SVM (RankRLS) fitted on the fit rows; "
          "its solution is exactly least squares of rank(y) on the two standardized features, so one Gram "
          "matrix serves all pairs. Ranking accuracy = share of validation compound pairs ordered like "
          "E_hull - T*S_ideal (ties 1/2), counted exactly by merge sort. F1: stable iff score <= threshold, "
          "threshold maximizing the stable-class F1 on the fit rows. The hinge column refits the direction "
          f"with an L2-loss (squared hinge) RankSVM on {cfg.descriptor.hinge_pairs:,} sampled fit pairs, as a check "
          "that the least-squares direction is not an artefact of its loss.", "",
          f"Validation accuracy over all pairs: median {_pct(mm['val_accuracy_quantiles']['q50'])}, "
          f"99th percentile {_pct(mm['val_accuracy_quantiles']['q99'])}, max {_pct(mm['val_accuracy_quantiles']['q100'])}; "
          f"best single feature `{mm['best_single_feature']['expression']}`: "
          f"{_pct(mm['best_single_feature']['val_ranking_accuracy'])}. "
          f"{mm['paper_descriptor']['pairs_better_on_validation']:,} pairs beat the paper's t1, t2 on validation. "
          "The best of two million validation scores is optimistic; the test column is the unbiased check. "
          "SIS ranks features by their marginal correlation, so a feature that only helps in combination (the "
          f"paper's t2 ranks {sm['paper_descriptor']['paper_t2']['rank_by_abs_r']:,} by |r|) never reaches the pair "
          "search; SISSO's answer, SIS rounds on the residual of the best lower-dimensional model, is the section "
          "after this one.", "",
          "| # | t1 | t2 | val acc | fit acc | test acc | F1 val | F1 test | hinge val acc |", "|---|---|---|---|---|---|---|---|---|"]
    for _, r in top.head(10).iterrows():
        L.append(f"| {r['rank']} | `{r['feature_1']}` | `{r['feature_2']}` | {_pct(r['val_ranking_accuracy'])} | "
                 f"{_pct(r['fit_ranking_accuracy'])} | {_pct(r['test_ranking_accuracy'])} | {r['f1_val']:.3f} | "
                 f"{r['f1_test']:.3f} | {_pct(r['hinge_val_ranking_accuracy'])} |")
    L += ["", "## Beyond the paper: SISSO residual rounds, 1D to 3D", "",
          "SIS ranks features by their own correlation with the target, so a feature that only helps in "
          "combination never reaches the pair search. SISSO's answer, implemented in `nasicon-sisso`: pool 1 = "
          f"the SIS top {qm['residual_pool_size']} against the {sm['sis_target']} target, 1D = its best feature; "
          f"pool d = the SIS top {qm['residual_pool_size']} against the residual of the best (d-1)D ranking model "
          "(rank(y) minus its least-squares fit on the fit rows; features already pooled excluded), dD = the best "
          "d-tuple of the union of pools 1..d, every tuple scored exactly (RankRLS direction from the fit rows, "
          f"exact concordance on the {mm['n_validation']} validation compounds), up to {qm['max_dimension']}D. "
          "Control without residual rounds: one SIS pool of the same total size "
          f"({qm['single_pool_size']}) against the target, same l0 search. Sweep with "
          "`dvc exp run -S descriptor.residual_pool_size=... -S descriptor.max_dimension=...`.", "",
          "| round | SIS target | pool | abs(r) range | pooled features | paper t1 rank by abs(r) | paper t2 rank by abs(r) |",
          "|---|---|---|---|---|---|---|"]
    for r in qm["rounds"]:
        pr = r["probes"]
        L.append(f"| {r['round']} | {r['target']} | {r['pool']} | {r['abs_r_last']:.3f} to {r['abs_r_first']:.3f} | "
                 f"{r['union']} | {pr['paper_t1']['rank_by_abs_r']:,} | {pr['paper_t2']['rank_by_abs_r']:,} |")
    L += ["", "Selection is on the validation split alone: the search functions receive the fit and validation "
          "targets only, and the descriptor carried forward (bold) is the one with the best validation ranking "
          "accuracy over every dimension and both pools (ties: lower dimension). The test split is read once, "
          "afterwards, for the test column. Every feature must be defined on all 3,881 compositions (the "
          "tolerance factor is evaluated on each), which uses the test compositions' features, not their targets.",
          "", "| descriptor | dim | features | descriptors scored | fit acc | validation acc | test acc |",
          "|---|---|---|---|---|---|---|"]
    label = {"residual": "SISSO, residual rounds", "single_pool": f"one SIS pool of {qm['single_pool_size']}",
             "paper": "paper's t1 (, t2)"}
    for _, r in qt.iterrows():
        b = "**" if str(r["chosen"]) == "True" else ""
        feats = ", ".join(f"`{e}`" for e in str(r["features"]).split(" | "))
        searched = f"{int(r['searched']):,}" if r["variant"] != "paper" else "(fixed)"
        L.append(f"| {b}{label[r['variant']]}{b} | {r['dimension']} | {feats} | {searched} | "
                 f"{_pct(r['fit_ranking_accuracy'])} | {b}{_pct(r['val_ranking_accuracy'])}{b} | "
                 f"{b}{_pct(r['test_ranking_accuracy'])}{b} |")
    L.append(f"| all-pairs search (`nasicon-mlr`) | 2 | `{best['feature_1']}`, `{best['feature_2']}` | "
             f"{mm['n_pairs']:,} | {_pct(best['fit_ranking_accuracy'])} | {_pct(best['val_ranking_accuracy'])} | "
             f"{_pct(best['test_ranking_accuracy'])} |")
    L += ["", f"Search times of this run: `{p.timings}/sisso.json`; today's 2D search against the new search on "
          "an idle machine: `benchmarks/nasicon_search.py --sisso`."]
    L += ["", "## Tolerance factor (class-weighted linear SVC)", ""]
    for name in DESCRIPTORS:
        v = vm[name]
        title = {"sisso": f"New descriptor (SISSO, {v['dimension']}D)", "search": "All-pairs 2D descriptor",
                 "paper": "Paper's t1, t2"}[name]
        L += [f"**{title}**: {v['boundary']['text']}", "",
              f"![map]({rel(fig_dir / f'fig5a_{name}.png')})", ""]
    L += ["## Experimental compositions", "",
          "Recall = compositions predicted stable (na_1 ... na_4: by Na per formula unit; the paper's Na1 "
          "and Na3 are na_1 and na_3). Na-poor / Na-rich: fewer / at least "
          f"{cfg.nasicon.na_rich_min:g} Na per formula unit.", "",
          "| subset | n | DFT stable | SISSO descriptor | all-pairs 2D | paper's t1, t2 |", "|---|---|---|---|---|---|"]
    for sub, r in vm["experimental_recall"].items():
        L.append(f"| {sub} | {r['n']} | {r['dft']} | {r['sisso']} | {r['search']} | {r['paper']} |")
    L += ["", f"Paper: {PAPER['experimental_recall']}.", ""]
    for name in DESCRIPTORS:
        L += [f"![experimental]({rel(fig_dir / f'fig5b_{name}.png')})", ""]
    n_train = int((exp[nd.SPLIT] == "train").sum())
    L += [f"{n_train} of the {len(exp)} compositions are in the authors' training split, so the SVC saw their "
          "DFT labels: this recall checks agreement with experiment, it is not a blind test.", "",
          "| composition | group | split | Na | E_hull - T*S_ideal | SISSO | all-pairs 2D | paper |", "|---|---|---|---|---|---|---|---|"]
    for _, r in exp.iterrows():
        L.append(f"| {r[nd.COMP]} | {r[nd.EXP_GROUP]} | {r[nd.SPLIT]} | {r[nd.NA_FEATURE]:g} | "
                 f"{float(r[nd.TARGET]):.1f} | {r['pred_stable_sisso']} | {r['pred_stable_search']} | {r['pred_stable_paper']} |")
    return "\n".join(L) + "\n", figs


@stage("nasicon-report", sections=["nasicon"])
def run_stage(cfg: DictConfig) -> StageResult:
    text, figs = render(cfg)
    write_text(text, cfg.nasicon.paths.report)
    log.info("wrote %s", cfg.nasicon.paths.report)
    return StageResult(artifacts=[cfg.nasicon.paths.report, *figs])
