"""The five NASICON stages end to end on the real data, shrunk (complexity 1, small k)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from superionic.config import compose, validate
from superionic.nasicon import data as nd

DATA_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def _cfg(tmp_path: Path):
    cfg = compose([f"data_dir={DATA_DIR.resolve()}"])
    OmegaConf.update(cfg, "tracking.tracking_uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    OmegaConf.update(cfg, "tracking.artifact_dir", str(tmp_path / "mlartifacts"))
    OmegaConf.update(cfg, "descriptor.complexity", 1)
    OmegaConf.update(cfg, "descriptor.sis_size", 40)
    OmegaConf.update(cfg, "descriptor.top_n", 3)
    OmegaConf.update(cfg, "descriptor.hinge_pairs", 2000)
    OmegaConf.update(cfg, "descriptor.residual_pool_size", 8)
    OmegaConf.update(cfg, "descriptor.max_dimension", 3)
    for key, value in cfg.nasicon.paths.items():
        OmegaConf.update(cfg, f"nasicon.paths.{key}", str(tmp_path / Path(value)))
    return cfg


def test_defaults_mirror_schema_and_reject_typos():
    cfg = compose()
    assert cfg.descriptor.complexity == 2 and cfg.descriptor.sis_size == 2000
    raw = OmegaConf.to_container(cfg)
    raw["descriptor"]["sis_sise"] = 10
    with pytest.raises(Exception, match="sis_sise"):
        validate(raw)


@pytest.mark.slow
@pytest.mark.skipif(not (DATA_DIR / "nasicon").is_dir(), reason="raw data not present")
def test_stages_end_to_end(tmp_path):
    from superionic.nasicon import data, mlr, report, sis, sisso, svc

    cfg = _cfg(tmp_path)
    for module in (data, sis, mlr, sisso, svc, report):
        module.run_stage(cfg)
    p = cfg.nasicon.paths
    table = pd.read_parquet(p.data)
    assert len(table) == 3881
    assert (table[nd.ROLE].value_counts().to_dict()) == {"fit": 2483, "test": 777, "validation": 621}
    assert (table[nd.EXP_GROUP] != "").sum() == 32
    dm = json.loads(Path(p.data_metrics).read_text())
    assert dm["checks"]["train"]["t1_max_rel_deviation"] < 1e-5
    sm = json.loads(Path(p.sis_metrics).read_text())
    assert sm["sis_size"] == 40 and sm["counts_by_rung"]["1"]["domain"] > 0
    assert np.load(p.sis_matrix).shape == (40, 3881)
    mm = json.loads(Path(p.mlr_metrics).read_text())
    assert mm["n_pairs"] == 40 * 39 // 2
    qm = json.loads(Path(p.sisso_metrics).read_text())
    assert [r["union"] for r in qm["rounds"]] == [8, 16, 24]
    assert len(qm["descriptors"]) == 3 + 3 + 2
    table = pd.read_csv(p.sisso_table)
    assert table["chosen"].sum() == 1
    vm = json.loads(Path(p.svc_metrics).read_text())
    assert vm["sisso"]["dimension"] == qm["chosen"]["dimension"]
    for name in ("sisso", "search", "paper"):
        assert vm[name]["equation_agrees_with_model"] is True
        assert 0.5 < vm[name]["val_accuracy_mean"] < 1
    assert vm["experimental_recall"]["all"]["n"] == 32
    text = Path(p.report).read_text()
    assert "Best 2D descriptor of the all-pairs search" in text and "SISSO residual rounds, 1D to 3D" in text
    assert all(Path(p.figures, f"fig5{a}_{n}.png").exists() for a in "ab" for n in ("sisso", "search", "paper"))
    # Deterministic: the data and SIS stages give identical outputs again.
    before = (Path(p.data_metrics).read_text(), Path(p.sis_metrics).read_text(), Path(p.mlr_top).read_text())
    for module in (data, sis, mlr):
        module.run_stage(cfg)
    assert before == (Path(p.data_metrics).read_text(), Path(p.sis_metrics).read_text(), Path(p.mlr_top).read_text())
