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
from superionic.nasicon.svc import DESCRIPTORS  # noqa: E402
from superionic.reports.render import link  # noqa: E402
from superionic.reports.render import render as render_template  # noqa: E402
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

# Colour scale of the maps (meV/atom): the target's tail reaches ~8,000.
COLOR_MIN, COLOR_MAX = -100.0, 300.0


def _load_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


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


TEMPLATE = "nasicon.md.j2"


def context(cfg: DictConfig, fig_dir: Path) -> dict:
    """Everything nasicon.md.j2 shows, as plain data read from the stage outputs (no formatting)."""
    p = cfg.nasicon.paths
    dm, sm, mm, vm, qm = (_load_json(x) for x in (p.data_metrics, p.sis_metrics, p.mlr_metrics, p.svc_metrics,
                                                    p.sisso_metrics))
    qt = pd.read_csv(p.sisso_table, keep_default_na=False)
    sis = pd.read_csv(p.sis_features)
    top = pd.read_csv(p.mlr_top)
    exp = pd.read_csv(p.experimental, keep_default_na=False)
    rel = lambda path: link(path, p.report)  # noqa: E731
    sisso_rows = [{"chosen": str(r["chosen"]) == "True", "variant": r["variant"], "dimension": r["dimension"],
                   "features": str(r["features"]).split(" | "), "searched": int(r["searched"])
                   if r["variant"] != "paper" else None, "fit_ranking_accuracy": r["fit_ranking_accuracy"],
                   "val_ranking_accuracy": r["val_ranking_accuracy"], "test_ranking_accuracy": r["test_ranking_accuracy"]}
                  for _, r in qt.iterrows()]
    experimental = [{"composition": r[nd.COMP], "group": r[nd.EXP_GROUP], "split": r[nd.SPLIT],
                     "na": r[nd.NA_FEATURE], "target": float(r[nd.TARGET]), "sisso": r["pred_stable_sisso"],
                     "search": r["pred_stable_search"], "paper": r["pred_stable_paper"]} for _, r in exp.iterrows()]
    return {
        "cfg": cfg,
        "paper": cfg.references.ouyang2021,
        "table1": dm["table1"],
        "sis": sm,
        "mlr": mm,
        "svc": vm,
        "sisso": qm,
        "descriptors": list(DESCRIPTORS),
        "sis_top": sis.head(10).to_dict("records"),
        "mlr_top": top.head(10).to_dict("records"),
        "sisso_rows": sisso_rows,
        "experimental": experimental,
        "n_experimental_train": int((exp[nd.SPLIT] == "train").sum()),
        "figures": {name: {tag: rel(fig_dir / f"fig{tag}_{name}.png") for tag in ("5a", "5b")}
                    for name in DESCRIPTORS},
    }


def render(cfg: DictConfig) -> tuple[str, list[Path]]:
    """Draw the Figure-5 maps and render reports/nasicon.md."""
    p = cfg.nasicon.paths
    vm = _load_json(p.svc_metrics)
    preds = pd.read_csv(p.svc_predictions, keep_default_na=False)
    data = pd.read_parquet(p.data, columns=[nd.COMP, nd.EXP_GROUP, nd.NA_RICH])
    preds = preds.merge(data, on=nd.COMP, how="left", validate="one_to_one")
    fig_dir = Path(p.figures)
    figs = []
    for name in DESCRIPTORS:
        for experimental, tag in ((False, "5a"), (True, "5b")):
            path = fig_dir / f"fig{tag}_{name}.png"
            map_figure(preds, name, vm, path, experimental)
            figs.append(path)
    return render_template(TEMPLATE, context(cfg, fig_dir)), figs


@stage("nasicon-report", sections=["nasicon"])
def run_stage(cfg: DictConfig) -> StageResult:
    text, figs = render(cfg)
    write_text(text, cfg.nasicon.paths.report)
    log.info("wrote %s", cfg.nasicon.paths.report)
    return StageResult(artifacts=[cfg.nasicon.paths.report, *figs])
