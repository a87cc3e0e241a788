"""Typed configuration: one dataclass schema per ``conf/`` group.

``conf/`` is the single source of truth. DVC's Hydra integration composes it
into ``params.yaml`` (``dvc exp run``); ``superionic compose-params`` does the
same for ``dvc repro``. Every stage reads ``params.yaml`` through
:func:`load_params`, which merges it onto these schemas in struct mode, so a
misspelt or unknown key fails with its full dotted name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from superionic.explore.config import Compensation, ExploreConfig
from superionic.md.config import Device, MDConfig, Thermostat
from superionic.classifier.config import (
    ClassifierConfig,
    EnsembleCalibration,
    GeneralizeConfig,
    ModelsConfig,
    Sampler,
)
from superionic.nasicon.config import DescriptorConfig, NasiconConfig, SisTarget
from superionic.reports.config import ReferencesConfig
from superionic.screening.config import ScreenConfig

# Compensation, Device, EnsembleCalibration, Sampler, SisTarget and Thermostat
# are re-exported for the stage code that checks a value it is handed directly
# (not through params.yaml): like this loader, those checks only accept or
# refuse a value, so a stage imports them from here (exempt in
# tests/test_dvc_deps.py) and need not list the schema files as DVC deps.
__all__ = [
    "ClusterKind", "Compensation", "Config", "DedupRule", "Device", "EnsembleCalibration", "Sampler",
    "SisTarget", "Thermostat", "compose", "compose_raw", "dump_params", "load_params", "validate",
]  # fmt: skip

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


class ClusterKind(StrEnum):
    """Where Dask runs: this machine, a running scheduler, or Slurm jobs."""

    local = "local"
    address = "address"
    slurm = "slurm"


class DedupRule(StrEnum):
    """How duplicates (same reduced formula) collapse to one log10 sigma."""

    median = "median"
    max = "max"


@dataclass
class TrackingConfig:
    experiment: str = MISSING
    # MLFLOW_TRACKING_URI, when set, wins over this so a team can point every
    # stage at a shared tracking server without editing the config.
    tracking_uri: str = MISSING
    artifact_dir: str = MISSING
    request_retries: int = MISSING
    request_timeout_s: float = MISSING


@dataclass
class ClusterConfig:
    """Where Dask runs fanned-out work (superionic.cluster)."""

    kind: ClusterKind = MISSING
    n_workers: int = MISSING
    address: str | None = MISSING
    connect_timeout_s: float = MISSING
    jobqueue: dict[str, Any] = MISSING


@dataclass
class PathsConfig:
    """Outputs of the foundation stages (dvc.yaml interpolates these)."""

    interim: str = MISSING
    # *_reports: a stage's own output folder (its report files live inside it)
    ingest_reports: str = MISSING
    rejected_rows: str = MISSING
    repairs: str = MISSING
    ingest_metrics: str = MISSING
    composition_features: str = MISSING
    featurize_reports: str = MISSING
    featurize_metrics: str = MISSING
    dataset: str = MISSING
    dataset_reports: str = MISSING
    data_report: str = MISSING
    duplicate_conflicts: str = MISSING
    dataset_metrics: str = MISSING


@dataclass
class HeadlineConfig:
    """The flat headline metrics file (superionic.reports.headline)."""

    metrics: str = MISSING


@dataclass
class IngestConfig:
    """Reading and cleaning the literature conductivity sources."""

    # Room-temperature window in degrees Celsius, inclusive. Sources without a
    # temperature column are room-temperature databases by construction.
    room_temperature_min_c: float = MISSING
    room_temperature_max_c: float = MISSING


@dataclass
class DatasetConfig:
    """The ``dataset`` group: which variant feeds the classifier, and its sources.

    Each option, conf/dataset/<variant>.yaml, is placed twice: under ``dataset``
    (the selected one) and under ``datasets.<variant>`` (all of them; the data
    report summarises every variant with the selected threshold and rule).
    """

    # The option's name, the same as its file name (checked by validate).
    variant: str = MISSING
    # The source files it merges: keys of SOURCES in superionic.data.sources.
    sources: list[str] = MISSING
    # Superionic label: sigma >= threshold (S/cm).
    label_threshold: float = MISSING
    # How duplicates (same reduced formula) collapse to one material:
    # "median" takes the median log10 sigma, "max" the highest.
    dedup_rule: DedupRule = MISSING


@dataclass
class FeaturesConfig:
    """The ``features`` group: composition descriptors, optionally structure."""

    name: str = MISSING
    structural: bool = MISSING


@dataclass
class Config:
    data_dir: str = MISSING
    seed: int = MISSING
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    headline: HeadlineConfig = field(default_factory=HeadlineConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    # Every dataset option by name (conf/config.yaml places each conf/dataset/ file here too).
    datasets: dict[str, DatasetConfig] = MISSING
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    models: ModelsConfig = MISSING
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    generalize: GeneralizeConfig = field(default_factory=GeneralizeConfig)
    # Curated structure families: canonical name -> source spellings (conf/families/).
    families: dict[str, list[str]] = MISSING
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    explore: ExploreConfig = field(default_factory=ExploreConfig)
    descriptor: DescriptorConfig = field(default_factory=DescriptorConfig)
    nasicon: NasiconConfig = field(default_factory=NasiconConfig)
    md: MDConfig = field(default_factory=MDConfig)
    references: ReferencesConfig = field(default_factory=ReferencesConfig)


# Values a schema type cannot bound: (dotted key, test, what is allowed).
RANGES: list[tuple[str, Any, str]] = [
    ("dataset.label_threshold", lambda v: v > 0, "> 0 S/cm"),
    ("tracking.request_retries", lambda v: 0 <= v <= 10, "in [0, 10]"),
    ("tracking.request_timeout_s", lambda v: v > 0, "> 0 s"),
    ("cluster.n_workers", lambda v: v >= 1, ">= 1"),
    ("classifier.n_trials", lambda v: v >= 1, ">= 1"),
    ("classifier.worker_index", lambda v: v >= 0, ">= 0"),
    ("classifier.heartbeat_s", lambda v: v >= 1, ">= 1"),
    ("classifier.grace_s", lambda v: v >= 2, ">= 2"),
    ("classifier.tune_repeats", lambda v: v >= 1, ">= 1"),
    ("classifier.n_splits", lambda v: v >= 1, ">= 1"),
    ("classifier.test_size", lambda v: 0 < v < 1, "in (0, 1)"),
    ("classifier.group_folds", lambda v: v >= 2, ">= 2"),
    ("classifier.n_jobs", lambda v: v >= 1 or v == -1, ">= 1 or -1"),
    ("generalize.folds", lambda v: v >= 2, ">= 2"),
    ("generalize.inner_folds", lambda v: v >= 2, ">= 2"),
    ("generalize.calibration_bins", lambda v: v >= 2, ">= 2"),
    ("generalize.coverage", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("generalize.n_jobs", lambda v: v >= 1 or v == -1, ">= 1 or -1"),
    ("generalize.structure.folds", lambda v: v >= 2, ">= 2"),
    ("generalize.structure.repeats", lambda v: v >= 1, ">= 1"),
    ("screen.ad_neighbors", lambda v: v >= 1, ">= 1"),
    ("screen.workers", lambda v: v >= 1, ">= 1"),
    ("screen.chunk_size", lambda v: v >= 1, ">= 1"),
    ("screen.ad_quantile", lambda v: 0 < v < 1, "in (0, 1)"),
    ("screen.p_min", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("screen.interval", lambda v: 0 < v < 1, "in (0, 1)"),
    ("screen.top_n", lambda v: v >= 1, ">= 1"),
    ("screen.md_handoff_top", lambda v: v >= 0, ">= 0"),
    ("screen.n_neighbors_shown", lambda v: v >= 0, ">= 0"),
    ("screen.rediscovery.n_splits", lambda v: v >= 1, ">= 1"),
    ("screen.vox_model.cv_folds", lambda v: v >= 2, ">= 2"),
    ("references.ouyang2021.boundary.relation", lambda v: v in ("<", "<="), "< or <="),
]


def validate(raw: DictConfig | dict[str, Any]) -> DictConfig:
    """Merge ``raw`` onto the schema; unknown keys, wrong types and out-of-range values raise."""
    schema = OmegaConf.structured(Config)
    merged = OmegaConf.merge(schema, raw)
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise ValueError(f"configuration is missing required keys: {', '.join(missing)}")
    bad = [f"{key} = {OmegaConf.select(merged, key)} (must be {allowed})"
           for key, ok, allowed in RANGES if not ok(OmegaConf.select(merged, key))]
    if bad:
        raise ValueError("configuration values out of range: " + "; ".join(bad))
    _check_dataset_sources(merged)
    return merged


def _check_dataset_sources(cfg: DictConfig) -> None:
    """Every dataset option names itself and lists known, distinct sources; the selected one is among them."""
    from superionic.data.sources import SOURCES

    lists = {"dataset.sources": list(cfg.dataset.sources)}
    for name, option in cfg.datasets.items():
        if option.variant != name:
            raise ValueError(f"datasets.{name}.variant = {option.variant!r}: must be {name!r} (the option's name)")
        lists[f"datasets.{name}.sources"] = list(option.sources)
    for key, sources in lists.items():
        unknown = [s for s in sources if s not in SOURCES]
        if unknown:
            raise ValueError(f"{key}: unknown source(s) {unknown}; known sources: {sorted(SOURCES)}")
        if not sources or len(set(sources)) != len(sources):
            raise ValueError(f"{key} = {sources}: must list at least one source, each once")
    if cfg.dataset.variant not in cfg.datasets:
        raise ValueError(
            f"dataset.variant = {cfg.dataset.variant!r} is not one of datasets {list(cfg.datasets)}: "
            f"add '- dataset@datasets.{cfg.dataset.variant}: {cfg.dataset.variant}' to the defaults of conf/config.yaml"
        )


def compose_raw(overrides: list[str] | None = None, conf_dir: Path | None = None) -> DictConfig:
    """Compose ``conf/`` exactly as DVC's Hydra integration does (same key order)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir or CONF_DIR), version_base=None):
        cfg = hydra_compose(config_name="config", overrides=list(overrides or []))
    OmegaConf.resolve(cfg)
    return cfg


def compose(overrides: list[str] | None = None, conf_dir: Path | None = None) -> DictConfig:
    """Compose ``conf/`` and validate it against the schemas."""
    return validate(compose_raw(overrides, conf_dir))


def load_params(path: str | Path = "params.yaml") -> DictConfig:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: run stages from the project root, or `superionic compose-params`"
        )
    return validate(OmegaConf.load(path))


def dump_params(cfg: DictConfig, path: str | Path = "params.yaml") -> None:
    from superionic.io import write_text

    write_text(OmegaConf.to_yaml(cfg, resolve=True), path)
