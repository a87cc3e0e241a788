"""The five stages end to end on a synthetic dataset (tiny budget), as dvc repro runs them."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

import superionic.classifier.data as mdata
from superionic.config import compose
from superionic.classifier import collect, ensemble, evaluate, importance, report, tune


@pytest.mark.slow
def test_stages_end_to_end(tmp_path, monkeypatch):
    frame, feats = mdata.synthetic_frame(n_rows=120, n_features=20, seed=0)
    monkeypatch.setattr(mdata, "load", lambda path: mdata.prepare(frame, feats))
    monkeypatch.chdir(tmp_path)
    cfg = compose([
        "classifier.model_names=[gnb,gb,lgbm]", "classifier.n_trials=2", "classifier.tune_repeats=2",
        "classifier.n_splits=3", "classifier.group_folds=2", "classifier.shap_splits=2",
        "classifier.shap_max_rows=30", "classifier.top_k=5",
        "classifier.log_trials=true",
        f"classifier.study_storage=sqlite:///{tmp_path / 'optuna.db'}",
        f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"tracking.artifact_dir={tmp_path / 'mlartifacts'}",
        "models.gb.search_space.n_estimators.high=50", "models.lgbm.search_space.n_estimators.high=50",
    ])
    OmegaConf.update(cfg, "paths.dataset", str(tmp_path / "unused.parquet"))
    for name in cfg.classifier.model_names:
        tune.run_stage(cfg, name)
        evaluate.run_stage(cfg, name)
    for stage in (collect, ensemble, importance, report):
        stage.run_stage(cfg)
    metrics = json.loads((tmp_path / cfg.classifier.metrics).read_text())
    assert set(metrics["paper"]) == {"gnb", "gb", "lgbm"}
    assert metrics["grouped"]["chemsys"]["status"] == "ok"
    text = (tmp_path / cfg.classifier.report).read_text()
    assert "Honest generalization" in text and "Gradient boosting" in text
    for fig in ["figures/accuracy_distribution.png", "figures/confusion_matrices.png", "figures/paper_vs_grouped.png",
                "importance/shap/shap_gb.png"]:
        assert (tmp_path / cfg.classifier.report_dir / fig).stat().st_size > 1000
    ens = ensemble.load_ensemble(tmp_path / cfg.classifier.ensemble_model)
    assert ens.member_names == ["gb", "lgbm"] and ens.n_splits == 3 and ens.feature_columns == feats
    # trials are MLflow child runs of one parent run per study
    import mlflow

    runs = mlflow.search_runs(experiment_names=[cfg.tracking.experiment])
    assert (runs["tags.mlflow.runName"].str.contains("-trial-")).sum() == 3 * 2
    # same config again: the studies are complete, nothing is re-tuned, same best parameters
    before = (tmp_path / cfg.classifier.best_params).read_text()
    for name in cfg.classifier.model_names:
        tune.run_stage(cfg, name)
    collect.run_stage(cfg)
    assert (tmp_path / cfg.classifier.best_params).read_text() == before
