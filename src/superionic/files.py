"""Names of output files that more than one module reads or writes.

A stage that only needs to *find* another stage's output imports its name
from here instead of from that stage's module, so it does not inherit the
producer's imports as DVC code deps (``tests/test_dvc_deps.py``).
"""

SCREEN_PREDICT_METRICS = "predict_metrics.json"
SCREEN_REDISCOVERY_METRICS = "rediscovery_metrics.json"
EXPLORE_METRICS = "metrics.json"
MD_COMPARISON_METRICS = "comparison_metrics.json"
