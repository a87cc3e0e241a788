"""Names of output files that more than one module reads or writes.

A stage that only needs to *find* another stage's output imports its name
from here instead of from that stage's module, so it does not inherit the
producer's imports as DVC code deps (``tests/test_dvc_deps.py``).
"""

SCREEN_PREDICT_METRICS = "predict_metrics.json"
SCREEN_REDISCOVERY_METRICS = "rediscovery_metrics.json"
EXPLORE_METRICS = "metrics.json"
MD_COMPARISON_METRICS = "comparison_metrics.json"

# --- screening outputs under ``screen.report_dir`` (written by the named stage, read by screen-report) ---
SCREEN_POOL_METRICS = "pool_metrics.json"  # pool
SCREEN_POOL2024_METRICS = "pool2024_metrics.json"  # pool2024
SCREEN_THERMO_METRICS = "thermo_metrics.json"  # thermo
SCREEN_WANG_CHECK = "wang2024_check.csv"  # thermo: 2019 windows beside Wang et al. 2024
SCREEN_WANG_CHECK_FIGURE = "wang2024_check.png"  # thermo
SCREEN_VOLTAGE_METRICS = "voltage_metrics.json"  # voltage
SCREEN_VOLTAGE_AGREEMENT = "voltage_gga_vs_wang.csv"  # voltage
SCREEN_FUNNEL_COUNTS = "funnel_counts.csv"  # funnel
SCREEN_FUNNEL_ANIONS = "funnel_anions.csv"  # funnel
SCREEN_FUNNEL_SWEEP = "funnel_sweep.csv"  # funnel
SCREEN_FUNNEL_METRICS = "funnel_metrics.json"  # funnel
SCREEN_FUNNEL_FIGURE = "funnel.png"  # funnel
SCREEN_RANKED = "ranked_candidates.csv"  # screen-predict
SCREEN_UNKNOWN_RANKED = "ranked_unknown_window.csv"  # screen-predict
SCREEN_MD_HANDOFF = "md_candidates.csv"  # screen-predict
SCREEN_RANKING_SWEEP = "ranking_sweep.csv"  # screen-predict
SCREEN_VOTES = "votes_histogram.csv"  # screen-predict
SCREEN_VOTES_FIGURE = "votes.png"  # screen-predict
SCREEN_MAP_FIGURE = "p_vs_vox.png"  # screen-predict
SCREEN_KNOWN_CONDUCTORS = "known_conductors.csv"  # rediscovery
SCREEN_REDISCOVERY_FATES = "rediscovery_fates.csv"  # rediscovery
