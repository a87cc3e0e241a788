"""Stage test: ingest -> featurize -> dataset through DVC in a temporary copy of the repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, write_tiny_conductivity
from superionic.config import compose_raw, dump_params


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_foundation_stages_run_through_dvc_and_are_idempotent(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for item in ("dvc.yaml", "conf", "src", ".dvc/config"):
        source = REPO_ROOT / item
        target = repo / item
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target) if source.is_dir() else shutil.copy(source, target)
    data_dir = write_tiny_conductivity(tmp_path / "datasets")
    dump_params(compose_raw([f"data_dir={data_dir}", "dataset=kang", "features=cd_struct"]), repo / "params.yaml")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    _run(["git", "init", "-q"], repo, env)
    first = _run([sys.executable, "-m", "dvc", "repro", "dataset"], repo, env)
    assert "Running stage 'ingest'" in first and "Running stage 'dataset'" in first
    second = _run([sys.executable, "-m", "dvc", "repro", "dataset"], repo, env)
    assert "Running stage" not in second

    from superionic.data.dataset import load_dataset

    frame, features = load_dataset(repo / "data/processed/dataset.parquet")
    assert len(features) == 150 and len(frame) == 3  # kang rows minus the missing-subscript one
    assert (repo / "reports/data/ingest/rejected_rows.csv").read_text().count("missing subscript") == 1
    assert "## Dataset variants" in (repo / "reports/data/dataset/README.md").read_text()

    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["superionic"])
    assert set(runs["tags.dvc_stage"]) == {"ingest", "featurize", "dataset"}
    assert runs["tags.git_commit"].notna().all() and runs["tags.version.pymatgen"].notna().all()
