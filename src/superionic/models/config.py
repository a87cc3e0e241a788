"""Schemas for the classifier track (``model`` group and ``classifier`` section)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelSpec:
    """One classifier: estimator, fixed parameters and its Optuna search space."""

    estimator: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)
    # name -> {type: int|float|categorical, low, high, log, choices}
    search_space: dict[str, Any] = field(default_factory=dict)
    scale: bool = True


# The ``model`` group places one ModelSpec per classifier under ``models.<key>``.
ModelsConfig = dict[str, ModelSpec]


@dataclass
class ClassifierConfig:
    n_trials: int = 20
    n_splits: int = 100
    test_size: float = 0.2
    n_jobs: int = 1
