"""Stage ``aimd``: Li diffusivity, Arrhenius fit and room-temperature conductivity
from the reference AIMD trajectories (Kang et al. 2023).

Outputs (under ``md.report_dir``): per-run table, per-material Arrhenius table,
metrics JSON and the Arrhenius figure.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from superionic.io import write_csv, write_json
from superionic.md import plots
from superionic.md import tables as T
from superionic.md.io import load_aimd
from superionic.stage import StageResult, stage

log = logging.getLogger(__name__)

# the stage's folder under md.report_dir
AIMD_DIR = "aimd"
RUNS_CSV = f"{AIMD_DIR}/aimd_runs.csv"
FITS_CSV = f"{AIMD_DIR}/aimd_arrhenius.csv"
METRICS_JSON = f"{AIMD_DIR}/aimd_metrics.json"
FIGURE = f"{AIMD_DIR}/aimd_arrhenius.png"


@stage("aimd", sections=["md"])
def run_stage(cfg: DictConfig) -> StageResult:
    md = cfg.md
    out = Path(md.report_dir)
    loaded = load_aimd(Path(md.aimd.data))
    trajectories = [t for t, _ in loaded]
    log.info("read %d AIMD runs of %d materials", len(trajectories),
             len({t.material for t in trajectories}))  # fmt: skip
    results, fits = T.analyze_trajectories(trajectories, md.analysis, md.aimd.min_duration_ps)
    runs_df, fits_df = T.runs_frame(results), T.fits_frame(fits)
    for row in runs_df[~runs_df[T.COL_USED]].itertuples(index=False):
        log.info("excluded %s: %s", row.source, getattr(row, T.COL_REASONS))
    paths = [
        write_csv(runs_df, out / RUNS_CSV),
        write_csv(fits_df, out / FITS_CSV),
    ]
    metrics = T.summary_metrics(runs_df, fits_df)
    paths.append(write_json(metrics, out / METRICS_JSON))
    paths.append(
        plots.arrhenius_grid(
            [plots.Series("AIMD", runs_df, fits_df, "black")],
            md.analysis.target_temperature,
            out / FIGURE,
        )
    )
    log.info("AIMD: %d/%d runs used, %d/%d materials fitted", metrics["n_runs_used"],
             metrics["n_runs"], metrics["n_materials_fitted"], metrics["n_materials"])  # fmt: skip
    return StageResult({k: v for k, v in metrics.items() if k != "materials"}, paths)
