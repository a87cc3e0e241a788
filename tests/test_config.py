import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError

from superionic.config import compose, compose_raw, load_params, validate
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_every_dataset_and_feature_option_composes(monkeypatch):
    monkeypatch.delenv("SUPERIONIC_DATA_DIR", raising=False)
    for overrides in (["dataset=xu"], ["dataset=kang"], ["dataset=literature"], ["features=cd_struct"]):
        cfg = compose(overrides)
        assert cfg.data_dir == "../shared/datasets"
    assert compose(["dataset=xu"]).dataset.variant == "xu"
    assert compose(["features=cd_struct"]).features.structural is True


def test_misspelt_key_fails_with_its_name():
    raw = OmegaConf.to_container(compose_raw())
    raw["dataset"]["label_treshold"] = 1e-3
    with pytest.raises(ConfigKeyError, match="dataset.label_treshold"):
        validate(raw)


def test_wrong_type_fails():
    raw = OmegaConf.to_container(compose_raw())
    raw["seed"] = "zero"
    with pytest.raises(Exception, match="seed"):
        validate(raw)


def test_data_dir_overridable_by_environment(monkeypatch):
    monkeypatch.setenv("SUPERIONIC_DATA_DIR", "/data/elsewhere")
    assert compose().data_dir == "/data/elsewhere"


def test_committed_params_yaml_matches_conf(monkeypatch):
    """`dvc repro` reads params.yaml: it must be what conf/ composes to."""
    monkeypatch.delenv("SUPERIONIC_DATA_DIR", raising=False)
    committed = OmegaConf.to_container(OmegaConf.load(REPO_ROOT / "params.yaml"))
    assert committed == OmegaConf.to_container(compose_raw()), "run `superionic compose-params`"
    load_params(REPO_ROOT / "params.yaml")


@pytest.mark.parametrize(
    ("override", "key"),
    [("classifier.n_trials=-5", "classifier.n_trials"), ("dataset.label_threshold=-1e-4", "dataset.label_threshold"),
     ("screen.p_min=1.5", "screen.p_min"), ("classifier.test_size=1.0", "classifier.test_size")],
)
def test_out_of_range_values_are_refused_with_their_key(override, key):
    from superionic.config import compose

    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        compose([override])


def test_cli_config_errors_are_one_line_and_traceback_only_with_debug(tmp_path, capsys):
    from superionic.cli import main

    out = str(tmp_path / "p.yaml")
    assert main(["compose-params", "classifer.n_trials=3", "--output", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "classifer" in err and "Traceback" not in err
    assert main(["compose-params", "classifier.n_trials=-5", "--output", out]) == 2
    assert "classifier.n_trials" in capsys.readouterr().err
    with pytest.raises(ValueError, match="classifier.n_trials"):
        main(["--debug", "compose-params", "classifier.n_trials=-5", "--output", out])


def test_credentials_are_redacted():
    from superionic.tracking import redact

    text = "study_storage: postgresql://optuna:s3cret@db:5432/studies, other: https://host/x"
    assert redact(text) == "study_storage: postgresql://optuna:***@db:5432/studies, other: https://host/x"
    assert redact("sqlite:///optuna.db") == "sqlite:///optuna.db"


def test_dead_tracking_server_fails_fast_with_its_uri(monkeypatch):
    import socket
    import time

    from superionic.config import compose
    from superionic.tracking import stage_run

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://user:pw@127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = compose()
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}") as info:
        with stage_run("funnel", cfg):
            pass
    assert time.perf_counter() - start < 60
    assert "pw" not in str(info.value)


def test_experiment_created_concurrently_is_reused(tmp_path, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException

    from superionic.config import compose
    from superionic.tracking import _configure

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose([f"tracking.tracking_uri=sqlite:///{tmp_path / 'm.db'}", f"tracking.artifact_dir={tmp_path / 'a'}"])
    real_create = mlflow.create_experiment

    def racing_create(name, **kwargs):  # the other worker wins the race
        real_create(name, **kwargs)
        raise MlflowException("RESOURCE_ALREADY_EXISTS: experiment exists")

    monkeypatch.setattr(mlflow, "create_experiment", racing_create)
    _configure(cfg)
    assert mlflow.get_experiment_by_name(cfg.tracking.experiment) is not None


def test_cli_help_groups_commands_by_track_and_version(capsys):
    from superionic import __version__
    from superionic.cli import STAGES, main

    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "screening (Materials Project) stages:" in text and "classifier (Kang 2023) stages:" in text
    for stage in STAGES:  # one line each, with a description
        line = next(line for line in text.splitlines() if line.strip().startswith(stage + " "))
        assert len(line.split(None, 1)) == 2
    assert main(["--version"]) == 0 and __version__ in capsys.readouterr().out


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [("classifier.calibration=sigmod", "classifier.calibration", "sigmoid, isotonic, none"),
     ("generalize.calibration=none", "generalize.calibration", "sigmoid, isotonic"),
     ("classifier.member_selection=grouped_source", "classifier.member_selection", "grouped_chemsys"),
     ("md.mlip.device=gpu", "md.mlip.device", "cpu, cuda, auto"),
     ("screen.release=mp2020", "screen.release", "mp2024, mp2019")],
)
def test_closed_choices_fail_with_the_allowed_values(override, key, allowed):
    with pytest.raises(Exception, match=key.replace(".", r"\.")) as info:
        compose([override])
    assert allowed in str(info.value)


def test_closed_choices_compare_as_strings():
    cfg = compose()
    assert cfg.classifier.calibration == "sigmoid" and f"{cfg.md.mlip.thermostat}" == "bussi"
    assert OmegaConf.to_container(cfg.explore, enum_to_str=True)["compensation"] == "li"


def test_schemas_hold_no_values_only_conf_does():
    """A key dropped from conf/ must fail at load, not fall back to a second default in Python."""
    raw = OmegaConf.to_container(compose_raw())
    del raw["classifier"]["n_splits"], raw["md"]["mlip"]["device"]
    with pytest.raises(ValueError, match=r"classifier\.n_splits.*md\.mlip\.device"):
        validate(raw)


def test_md_variants_state_only_what_differs_from_the_default():
    default, production = compose(), compose(["md=production"])
    assert production.md.analysis == default.md.analysis and production.md.aimd == default.md.aimd
    assert production.md.mlip.device == "cuda" and production.md.mlip.steps == 30000
    assert production.md.mlip.thermostat == default.md.mlip.thermostat
