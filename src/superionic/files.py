"""Names of output files that more than one module reads or writes.

A stage that only needs to *find* another stage's output imports its name
from here instead of from that stage's module, so it does not inherit the
producer's imports as DVC code deps (``tests/test_dvc_deps.py``).
"""

EXPLORE_METRICS = "metrics.json"
MD_REPORT_DIR = "md-report"  # md-report's folder under md.report_dir
MD_COMPARISON_METRICS = f"{MD_REPORT_DIR}/comparison_metrics.json"

# --- screening outputs: each stage writes into its own folder under ``screen.report_dir`` ---
SCREEN_MP_POOL_DIR = "mp-pool"
SCREEN_MP2024_POOL_DIR = "mp2024-pool"
SCREEN_THERMO_DIR = "thermo"
SCREEN_POOL_FEATURES_DIR = "pool-features"
SCREEN_VOLTAGE_DIR = "voltage"
SCREEN_FUNNEL_DIR = "funnel"
SCREEN_PREDICT_DIR = "screen-predict"
SCREEN_REDISCOVERY_DIR = "rediscovery"
# (read by screen-report and other stages)
SCREEN_POOL_METRICS = f"{SCREEN_MP_POOL_DIR}/pool_metrics.json"
SCREEN_POOL2024_METRICS = f"{SCREEN_MP2024_POOL_DIR}/pool2024_metrics.json"
SCREEN_THERMO_METRICS = f"{SCREEN_THERMO_DIR}/thermo_metrics.json"
SCREEN_WANG_CHECK = f"{SCREEN_THERMO_DIR}/wang2024_check.csv"  # 2019 windows beside Wang et al. 2024
SCREEN_WANG_CHECK_FIGURE = f"{SCREEN_THERMO_DIR}/wang2024_check.png"
SCREEN_VOLTAGE_METRICS = f"{SCREEN_VOLTAGE_DIR}/voltage_metrics.json"
SCREEN_VOLTAGE_AGREEMENT = f"{SCREEN_VOLTAGE_DIR}/voltage_gga_vs_wang.csv"
SCREEN_FUNNEL_COUNTS = f"{SCREEN_FUNNEL_DIR}/funnel_counts.csv"
SCREEN_FUNNEL_ANIONS = f"{SCREEN_FUNNEL_DIR}/funnel_anions.csv"
SCREEN_FUNNEL_SWEEP = f"{SCREEN_FUNNEL_DIR}/funnel_sweep.csv"
SCREEN_FUNNEL_METRICS = f"{SCREEN_FUNNEL_DIR}/funnel_metrics.json"
SCREEN_FUNNEL_FIGURE = f"{SCREEN_FUNNEL_DIR}/funnel.png"
SCREEN_RANKED = f"{SCREEN_PREDICT_DIR}/ranked_candidates.csv"
SCREEN_UNKNOWN_RANKED = f"{SCREEN_PREDICT_DIR}/ranked_unknown_window.csv"
SCREEN_MD_HANDOFF = f"{SCREEN_PREDICT_DIR}/md_candidates.csv"
SCREEN_RANKING_SWEEP = f"{SCREEN_PREDICT_DIR}/ranking_sweep.csv"
SCREEN_VOTES = f"{SCREEN_PREDICT_DIR}/votes_histogram.csv"
SCREEN_VOTES_FIGURE = f"{SCREEN_PREDICT_DIR}/votes.png"
SCREEN_MAP_FIGURE = f"{SCREEN_PREDICT_DIR}/p_vs_vox.png"
SCREEN_KNOWN_CONDUCTORS = f"{SCREEN_REDISCOVERY_DIR}/known_conductors.csv"
SCREEN_REDISCOVERY_FATES = f"{SCREEN_REDISCOVERY_DIR}/rediscovery_fates.csv"
SCREEN_PREDICT_METRICS = f"{SCREEN_PREDICT_DIR}/predict_metrics.json"
SCREEN_REDISCOVERY_METRICS = f"{SCREEN_REDISCOVERY_DIR}/rediscovery_metrics.json"
