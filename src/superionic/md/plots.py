"""Figures of the MD track (matplotlib, Agg backend, deterministic PNGs)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from superionic.io import PNG_METADATA, save_figure
from superionic.md import tables as T

@dataclass(frozen=True)
class Series:
    label: str
    runs: pd.DataFrame
    fits: pd.DataFrame
    color: str


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def arrhenius_grid(series: Sequence[Series], target_temperature: float, path: str | Path) -> Path:
    """One panel per material: log10 D vs 1000/T, used (filled) and excluded
    (open) runs, the weighted fit extended to the target temperature with its
    1-sigma extrapolated value."""
    plt = _pyplot()
    materials = sorted(set().union(*(set(s.runs[T.COL_MATERIAL]) for s in series)))
    ncol = min(3, len(materials))
    nrow = math.ceil(len(materials) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    x_target = 1000.0 / target_temperature
    for ax, material in zip(axes.flat, materials, strict=False):
        formula = ""
        for k, s in enumerate(series):
            runs = s.runs[s.runs[T.COL_MATERIAL] == material]
            if runs.empty:
                continue
            formula = runs[T.COL_FORMULA].iloc[0]
            x = 1000.0 / runs[T.COL_T].to_numpy(float)
            y = runs[T.COL_LOG10_D].to_numpy(float)
            err = runs[T.COL_LOG10_D_ERR].to_numpy(float)
            used = runs[T.COL_USED].to_numpy(bool)
            finite = np.isfinite(y)
            ok = used & finite
            ax.errorbar(x[ok], y[ok], yerr=err[ok], fmt="o", color=s.color, label=f"{s.label} used", ms=5)
            bad = ~used & finite
            if bad.any():
                ax.plot(x[bad], y[bad], "o", mfc="none", color=s.color, ms=7, label=f"{s.label} excluded")
            fit = s.fits[s.fits[T.COL_MATERIAL] == material]
            if not fit.empty and fit[T.COL_STATUS].iloc[0] == "ok":
                row = fit.iloc[0]
                ea = float(row[T.COL_EA])
                y_t = float(row[T.COL_LOG10_D_TARGET])
                # line through the extrapolated point with slope -Ea/(k_B ln10) per 1/T
                slope = -ea / (8.617333262e-5 * math.log(10)) / 1000.0
                xs = np.linspace(min(x.min(), 0.55), x_target, 50)
                ax.plot(xs, y_t + slope * (xs - x_target), "--", color=s.color, lw=1)
                ax.errorbar([x_target], [y_t], yerr=[float(row[T.COL_LOG10_SIGMA_ERR])], fmt="s",
                            color=s.color, ms=5, capsize=3)  # fmt: skip
                ax.text(0.02, 0.04 + 0.1 * k, f"{s.label}: Ea={ea:.2f}±{float(row[T.COL_EA_ERR]):.2f} eV",
                        transform=ax.transAxes, fontsize=7, color=s.color)  # fmt: skip
        ax.axvline(x_target, color="0.7", lw=0.8)
        ax.set_title(f"{material} {formula}", fontsize=9)
        ax.set_xlabel("1000/T (1/K)")
        ax.set_ylabel("log10 D (cm²/s)")
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(materials) :]:
        ax.axis("off")
    legend: dict[str, object] = {}
    for ax in axes.flat:
        for handle, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(lab, handle)
    if legend:
        fig.legend(list(legend.values()), list(legend.keys()), loc="lower right", fontsize=7)
    fig.tight_layout()
    path = save_figure(fig, path, dpi=110, metadata=PNG_METADATA)
    plt.close(fig)
    return path


def parity(
    x: np.ndarray,
    xerr: np.ndarray,
    y: np.ndarray,
    yerr: np.ndarray,
    labels: Sequence[str],
    xlabel: str,
    ylabel: str,
    path: str | Path,
) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", ms=5, capsize=2)
    for xi, yi, lab in zip(x, y, labels, strict=True):
        ax.annotate(lab, (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
    finite = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
    if finite.size:
        lo, hi = finite.min(), finite.max()
        pad = 0.1 * (hi - lo) + 0.05
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    path = save_figure(fig, path, dpi=110, metadata=PNG_METADATA)
    plt.close(fig)
    return path
