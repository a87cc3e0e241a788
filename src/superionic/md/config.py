"""Schema for the ``md`` group (AIMD trajectory analysis and MLIP molecular dynamics).

Defaults are mirrored in ``conf/md/default.yaml`` (a short MLIP run that fits
in the default ``dvc repro`` on 2 CPU cores); ``conf/md/production.yaml`` is
the full protocol for a GPU or a cluster node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class AnalysisConfig:
    """MSD -> diffusivity -> Arrhenius analysis, shared by the AIMD and MLIP stages.

    Every exclusion rule below is applied to every run of both stages; the
    reasons are written per run, nothing is dropped silently.
    """

    mobile_specie: str = "Li"
    # subtract the framework's (non-mobile sites') mean displacement per frame from
    # every site before the MSD, as pymatgen's DiffusionAnalyzer does: a drifting
    # cell centre of mass is no ion transport but would bias D
    drift_correction: bool = MISSING
    # Linear MSD fit window as fractions of the trajectory length: skip the
    # ballistic/vibrational start and the long-lag tail that has few time origins.
    fit_start_fraction: float = 0.1
    fit_end_fraction: float = 0.5
    # He et al. 2018 (npj Comput. Mater. 4, 18): RSD(D) = 3.43/sqrt(N_eff) + 0.04,
    # N_eff = N_mobile * MSD(t_total) / a^2 with the average hop distance a (A).
    site_distance: float = 3.0
    # Run exclusion rules --------------------------------------------------------
    # too few effective hops: RSD(D) above this means D is not resolved from 0
    max_relative_error: float = 1.0
    # too few mobile ions in the cell for ion statistics (also catches truncated cells)
    min_mobile_ions: int = 8
    # too few recorded frames for a multiple-origin MSD
    min_frames: int = 50
    # framework (non-mobile species) moving: melting / decomposition. Flagged when
    # some framework species has MSD at the fit-window end above the floor (A^2,
    # well beyond thermal vibration) AND its diffusivity exceeds this ratio of D_mobile.
    framework_msd_floor: float = 1.0
    framework_ratio_max: float = 0.05
    # Arrhenius fit rules --------------------------------------------------------
    # fewer usable temperatures than this -> no fit (reported as such)
    min_points: int = 2
    # weighted fit inconsistent (chi^2 p-value below this, >= 3 points) -> the
    # highest-temperature point is dropped as non-Arrhenius and the fit redone
    arrhenius_p_min: float = 0.01
    target_temperature: float = 300.0
    confidence: float = 0.95


@dataclass
class AIMDConfig:
    """The reference AIMD trajectories (Kang et al. 2023)."""

    # folder with <mp-id>/<T>K.json.gz
    data: str = "${data_dir}/aimd"
    # runs shorter than this (ps) are truncated and excluded
    min_duration_ps: float = 20.0


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
    model: str = "0.3.0"
    # AIMD materials (mp ids under md.aimd.data) whose starting structures are
    # simulated; empty list = all of them
    materials: list[str] = field(default_factory=list)
    # optional folder of *.cif files (material id = file stem)
    cif_dir: str | None = None
    # optional CSV of screening candidates with Materials Project ids; fetched
    # with mp-api when MP_API_KEY is set and mp-api is installed, else reported
    candidates_csv: str | None = None
    candidates_id_column: str = "task_id"
    temperatures: list[float] = field(default_factory=lambda: [1100.0, 1400.0])
    # explicit (material, temperature, steps) runs in place of materials x
    # temperatures at ``steps`` (then materials must be empty); [] = the product
    runs: list[MLIPRun] = MISSING
    timestep_fs: float = 2.0
    equilibration_steps: int = 100
    steps: int = 500
    # positions recorded every this many steps for the MSD
    sample_interval: int = 5
    # a progress log line (step, elapsed, ETA) every this many production steps
    progress_interval: int = MISSING
    # replicate the cell until every lattice vector is at least this long (A); 0 = as given
    supercell_min_length: float = 0.0
    # bussi (stochastic velocity rescaling: global, barely perturbs dynamics) | langevin
    thermostat: str = "bussi"
    # thermostat time constant (fs); Langevin friction = 1/this
    thermostat_time_fs: float = 100.0
    # cpu | cuda | auto (cuda when available)
    device: str = "cpu"
    # advance all runs together, one batched model evaluation per MD step
    # (superionic.md.batched), in n_jobs batches; false: one ASE loop per run
    batch: bool = MISSING
    # torch CPU threads per process, and independent runs at once (processes)
    threads: int = 1
    n_jobs: int = 2
    # runs shorter than this (ps) are excluded; short default runs lower it and
    # the report labels them as such
    min_duration_ps: float = 20.0
    # label printed in the report (e.g. "short smoke-scale runs")
    label: str = "production"


@dataclass
class MDConfig:
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    aimd: AIMDConfig = field(default_factory=AIMDConfig)
    mlip: MLIPConfig = field(default_factory=MLIPConfig)
    # outputs
    out_dir: str = "data/md"
    report: str = "reports/md.md"
    report_dir: str = "reports/md"
