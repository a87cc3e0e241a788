"""Schema for the ``md`` group (AIMD trajectory analysis and MLIP molecular dynamics).

Values live in ``conf/md/default.yaml`` only (a short MLIP run that fits in the
default ``dvc repro`` on 2 CPU cores); ``conf/md/production.yaml`` and
``conf/md/validation.yaml`` state what they change on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from omegaconf import MISSING


class Thermostat(StrEnum):
    """NVT thermostat of the MLIP runs."""

    # stochastic velocity rescaling: global, barely perturbs the dynamics
    bussi = "bussi"
    langevin = "langevin"


class Device(StrEnum):
    """Where the MLIP is evaluated; ``auto`` takes CUDA when torch sees it."""

    cpu = "cpu"
    cuda = "cuda"
    auto = "auto"


@dataclass
class AnalysisConfig:
    """MSD -> diffusivity -> Arrhenius analysis, shared by the AIMD and MLIP stages.

    Every exclusion rule below is applied to every run of both stages; the
    reasons are written per run, nothing is dropped silently.
    """

    mobile_specie: str = MISSING
    # subtract the framework's (non-mobile sites') mean displacement per frame from
    # every site before the MSD, as pymatgen's DiffusionAnalyzer does: a drifting
    # cell centre of mass is no ion transport but would bias D
    drift_correction: bool = MISSING
    # Linear MSD fit window as fractions of the trajectory length: skip the
    # ballistic/vibrational start and the long-lag tail that has few time origins.
    fit_start_fraction: float = MISSING
    fit_end_fraction: float = MISSING
    # He et al. 2018 (npj Comput. Mater. 4, 18): RSD(D) = 3.43/sqrt(N_eff) + 0.04,
    # N_eff = N_mobile * MSD(t_total) / a^2 with the average hop distance a (A).
    site_distance: float = MISSING
    # Run exclusion rules --------------------------------------------------------
    # too few effective hops: RSD(D) above this means D is not resolved from 0
    max_relative_error: float = MISSING
    # too few mobile ions in the cell for ion statistics (also catches truncated cells)
    min_mobile_ions: int = MISSING
    # too few recorded frames for a multiple-origin MSD
    min_frames: int = MISSING
    # framework (non-mobile species) moving: melting / decomposition. Flagged when
    # some framework species has MSD at the fit-window end above the floor (A^2,
    # well beyond thermal vibration) AND its diffusivity exceeds this ratio of D_mobile.
    framework_msd_floor: float = MISSING
    framework_ratio_max: float = MISSING
    # Arrhenius fit rules --------------------------------------------------------
    # fewer usable temperatures than this -> no fit (reported as such)
    min_points: int = MISSING
    # weighted fit inconsistent (chi^2 p-value below this, >= 3 points) -> the
    # highest-temperature point is dropped as non-Arrhenius and the fit redone
    arrhenius_p_min: float = MISSING
    target_temperature: float = MISSING
    confidence: float = MISSING


@dataclass
class AIMDConfig:
    """The reference AIMD trajectories (Kang et al. 2023)."""

    # folder with <mp-id>/<T>K.json.gz
    data: str = MISSING
    # runs shorter than this (ps) are truncated and excluded
    min_duration_ps: float = MISSING


@dataclass
class MLIPRun:
    """One explicit MLIP run (``md.mlip.runs``): its own temperature and length."""

    material: str = MISSING
    temperature: float = MISSING
    steps: int = MISSING


@dataclass
class MLIPConfig:
    """Pretrained universal potential NVT molecular dynamics."""

    # CHGNet checkpoint bundled in the chgnet package: 0.3.0 | 0.2.0 | r2scan
    model: str = MISSING
    # AIMD materials (mp ids under md.aimd.data) whose starting structures are
    # simulated; empty list = all of them
    materials: list[str] = MISSING
    # optional folder of *.cif files (material id = file stem)
    cif_dir: str | None = MISSING
    # optional CSV of screening candidates with Materials Project ids; fetched
    # with mp-api when MP_API_KEY is set and mp-api is installed, else reported
    candidates_csv: str | None = MISSING
    candidates_id_column: str = MISSING
    temperatures: list[float] = MISSING
    # explicit (material, temperature, steps) runs in place of materials x
    # temperatures at ``steps`` (then materials must be empty); [] = the product
    runs: list[MLIPRun] = MISSING
    # run only these of md.mlip.runs ([] = all): a material (all its runs) or
    # one run as material/<T>K; part of a protocol, e.g. the cheap runs of
    # md=validation on a CPU
    runs_only: list[str] = MISSING
    timestep_fs: float = MISSING
    equilibration_steps: int = MISSING
    steps: int = MISSING
    # positions recorded every this many steps for the MSD
    sample_interval: int = MISSING
    # a progress log line (step, elapsed, ETA) every this many production steps
    progress_interval: int = MISSING
    # replicate the cell until every lattice vector is at least this long (A); 0 = as given
    supercell_min_length: float = MISSING
    thermostat: Thermostat = MISSING
    # thermostat time constant (fs); Langevin friction = 1/this
    thermostat_time_fs: float = MISSING
    device: Device = MISSING
    # advance all runs in lockstep through the fast CHGNet engine
    # (superionic.md.batched, superionic.md.chgnet_fast), in n_jobs batches of
    # one process each; false: CHGNet's own ASE loop, one per run
    batch: bool = MISSING
    # keep finished runs in md.out_dir whose saved record matches their run,
    # instead of starting the folder afresh: a long protocol runs in pieces;
    # with batch, a run made longer continues its finished shorter run
    resume: bool = MISSING
    # batched runs save their state every this many production steps (a
    # multiple of sample_interval; 0 = never); with resume, a stopped run
    # continues from it on the same trajectory
    checkpoint_interval: int = MISSING
    # torch CPU threads per process, and independent runs at once (processes)
    threads: int = MISSING
    n_jobs: int = MISSING
    # runs shorter than this (ps) are excluded; short default runs lower it and
    # the report labels them as such
    min_duration_ps: float = MISSING
    # label printed in the report (e.g. "short smoke-scale runs")
    label: str = MISSING


@dataclass
class MDConfig:
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    aimd: AIMDConfig = field(default_factory=AIMDConfig)
    mlip: MLIPConfig = field(default_factory=MLIPConfig)
    # outputs
    out_dir: str = MISSING
    report: str = MISSING
    report_dir: str = MISSING
    # target He et al. RSD(D) of the validation protocol's run lengths (md-report's plan)
    validation_rsd: float = MISSING
    # temperatures (K) of the validation protocol, where the MLIP framework stays solid
    validation_temperatures: list[float] = MISSING
    # 95 % half width (eV) the validation's ΔEa must reach
    validation_resolution_ev: float = MISSING
    # where `make md-validation` writes, and md-report reads, the validation run's outputs
    validation_dir: str = MISSING
