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
