"""Column names of the tidy conductivity tables (one place, no scattered literals)."""

SOURCE = "source"
ROW = "row"  # spreadsheet-style row number in the source file (header is row 1)
FORMULA_RAW = "formula_raw"
SIGMA_RAW = "sigma_raw"
TEMPERATURE_C = "temperature_c"
DOI = "doi"
FAMILY = "family"
SPACE_GROUP = "space_group"
LATTICE_A = "a"
LATTICE_C = "c"
VOLUME = "volume"

FORMULA = "formula"  # cleaned formula after repairs
COMPOSITION = "composition"  # scale-free key: fractional amounts, alphabetical
AMOUNTS = "amounts"  # exact composition as a pymatgen-readable formula (featurizer input)
REDUCED_FORMULA = "reduced_formula"
CHEMSYS = "chemsys"
MOBILE_ION = "mobile_ion"
SIGMA = "sigma"
LOG10_SIGMA = "log10_sigma"
SIGMA_CENSORED = "sigma_censored"  # True when the source gives only an upper bound
IS_COMPOSITE = "is_composite"
REPAIRS = "repairs"
REASON = "reason"

LABEL = "label"
N_RECORDS = "n_records"
SOURCES = "sources"
LABEL_CONFLICT = "label_conflict"

# Raw columns every source reader must deliver.
RAW_COLUMNS = [
    SOURCE, ROW, FORMULA_RAW, SIGMA_RAW, TEMPERATURE_C, DOI, FAMILY,
    SPACE_GROUP, LATTICE_A, LATTICE_C, VOLUME,
]

# --- trust columns of the deployed classifier's predictions (superionic.classifier.generalize) ---
P_CALIBRATED = "p_calibrated"
ABSTAIN = "abstain"
