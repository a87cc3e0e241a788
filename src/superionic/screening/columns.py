"""Column names of the screening tables (one place, no scattered literals)."""

# --- raw Materials Project / Wang 2024 columns ---------------------------------
RAW_TASK_ID = "task_id"
RAW_PRETTY_FORMULA = "pretty_formula"
RAW_BAND_GAP = "band_gap"
RAW_COMPOSITION = "composition"
RAW_FORMATION_ENERGY = "formation_energy_per_atom"
WANG_FORMULA = "formula"
WANG_ICSD = "ICSD_id"
WANG_RED = "ESW_Red (V)"
WANG_OX = "ESW_Oxi (V)"

# --- pool -------------------------------------------------------------------------
TASK_ID = "task_id"
FORMULA = "formula"  # MP pretty formula as published
REDUCED_FORMULA = "reduced_formula"  # pymatgen reduced formula (matching key)
CHEMSYS = "chemsys"  # "-".join(sorted elements)
ELEMENTS = "elements"  # same as chemsys, kept for readability of tables
N_ELEMENTS = "n_elements"
BAND_GAP = "band_gap"
ANION_CLASS = "anion_class"
ANIONS = "anions"  # "-".join of the elements counted as anions
ANION_RULE = "anion_rule"

# --- thermo -----------------------------------------------------------------------
GROUND_STATE = "ground_state"  # task id is the composition's lowest-energy entry
FORMATION_ENERGY = "formation_energy"  # eV/atom, elements at 0
E_HULL = "e_hull"  # eV/atom; NaN when not a ground state (energy unknown)
ON_HULL = "on_hull"
V_OX = "v_ox"  # V vs Li/Li+, upper end of the stability window
V_RED = "v_red"  # V vs Li/Li+, lower end
THERMO_SYSTEM = "thermo_system"  # chemical system of the phase diagram used
THERMO_NOTE = "thermo_note"
# Compositions of the entry's own chemical system that exist in the
# all-polymorphs file but have no formation energy in the snapshot (their
# absence can only raise the hull: E_hull too low, windows too wide).
N_MISSING_PHASES = "n_missing_phases"
MISSING_PHASES = "missing_phases"

# --- funnel -----------------------------------------------------------------------
PASS_NO_TM = "pass_no_tm"
PASS_BAND_GAP = "pass_band_gap"
PASS_E_HULL = "pass_e_hull"
PASS_V_OX = "pass_v_ox"
SURVIVES = "survives"
FAILED_AT = "failed_at"  # first filter failed (empty when surviving)
FAIL_REASON = "fail_reason"

# --- predictions ------------------------------------------------------------------
AD_DISTANCE = "ad_distance"
AD_FLAG = "applicability"  # "near" / "far"
IN_TRAINING = "in_training"
TRAINING_LABEL = "training_label"
CANDIDATE = "candidate"

# --- 2024 release and cross-release columns ---------------------------------------
RAW_MATERIAL_ID = "material_id"
RAW_FORMULA_2024 = "formula"
RAW_UNIT_CELL = "composition"
RAW_NSITES = "nsites"
RAW_E_ABOVE_HULL = "energy_above_hull"
GAP_ID = "MP ID"
GAP_FORMULA = "Formula"
GAP_E_HULL = "Energy Above Hull (eV)"
GAP_BAND_GAP = "Band Gap (eV)"

RELEASE = "release"  # which Materials Project release a row comes from
NSITES = "nsites"
BAND_GAP_NOTE = "band_gap_note"  # where the band gap comes from, or why it is unknown
E_HULL_NOTE = "e_hull_note"  # why E_hull is unknown (empty when known)
V_OX_SOURCE = "v_ox_source"  # which source gave V_ox (see superionic.screening.voltage)
V_OX_STATUS = "v_ox_status"  # pass / fail / unknown at the V_ox filter

# --- voltage (stage `voltage`): where each V_ox comes from, and its inputs ----------
SOURCE_GGA = "mp2019-gga"
SOURCE_WANG = "wang2024"
SOURCE_ML = "ml-estimate"
SOURCE_UNKNOWN = "unknown"
SOURCES = [SOURCE_GGA, SOURCE_WANG, SOURCE_ML, SOURCE_UNKNOWN]

GGA_V_OX = "gga_v_ox"
GGA_V_RED = "gga_v_red"
GGA_ON_HULL = "gga_on_hull"  # formula is a ground state on the 2019 hull
GGA_MISSING = "gga_missing_competitors"  # 2024 hull compositions of the system without a 2019 energy
GGA_COMPLETE = "gga_complete"
WANG_V_OX = "wang_v_ox"
WANG_V_RED = "wang_v_red"
ML_V_OX = "ml_v_ox"
V_OX_ERROR = "v_ox_error"  # grouped-CV RMSE of the estimate (ml-estimate rows only)

# --- funnel steps: rows of funnel_counts.csv, columns of funnel_anions.csv / funnel_sweep.csv ---
STEPS = ["pool", "no_transition_metal", "band_gap", "e_hull", "v_ox"]
UNKNOWN_WINDOW_STEP = "v_ox_unknown"  # extra row of the counts: reached step 4, window unknown

# --- Wang 2024 check (stage `thermo`, superionic.screening.esw) --------------------
DIFF_V_OX = "diff_v_ox"  # ours minus Wang's
DIFF_V_RED = "diff_v_red"
HINT = "hint"  # likely cause of a disagreement

# --- ranking (stage `screen-predict`) and its rediscovery refit ---------------------
P = "p_superionic"  # mean calibrated probability over the split-models
P_STD = "p_std"
P_LOW = "p_low"
P_HIGH = "p_high"
NEIGHBORS = "nearest_training"
STATUS = "status"
RANK = "rank"
VOTES = "votes"  # first column of the votes histogram: number of split-models voting superionic
P_REFIT = "p_refit"  # stage `rediscovery`: P from the refit without the held-out systems
