"""Tracking provenance: the store a queued experiment writes to, its tags, an honest git_dirty."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from superionic.tracking import anchored_uri, experiment_tags, git_commit, workspace_root


def test_relative_local_store_is_anchored_at_the_workspace(tmp_path, monkeypatch):
    root = tmp_path / "workspace"
    assert anchored_uri("sqlite:///mlflow.db", root) == f"sqlite:///{root / 'mlflow.db'}"
    assert anchored_uri(f"sqlite:///{tmp_path}/x.db", root) == f"sqlite:///{tmp_path}/x.db"  # absolute stays
    for uri in ("http://host:5000", "postgresql://u:p@h/db", "sqlite:///:memory:"):
        assert anchored_uri(uri, root) == uri
    # a queued experiment runs in .dvc/tmp/exps/...; DVC names the parent workspace in DVC_ROOT
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(root))
    assert workspace_root() == root.resolve()
    monkeypatch.delenv("DVC_ROOT")
    assert workspace_root() == tmp_path.resolve()


def test_experiment_tags_come_from_dvc(monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    assert experiment_tags() == {}
    monkeypatch.setenv("DVC_EXP_NAME", "bushy-kiln")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "abc123")
    assert experiment_tags() == {"dvc_exp_name": "bushy-kiln", "dvc_exp_baseline": "abc123"}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.mark.parametrize(("changed", "dirty"), [
    ("reports/classifier.md", False), ("dvc.lock", False), ("params.yaml", False),
    ("src/superionic/x.py", True), ("conf/config.yaml", True), ("dvc.yaml", True),
])  # fmt: skip
def test_git_dirty_means_code_or_config_changed_not_dvc_outputs(tmp_path, changed, dirty):
    repo = tmp_path / "repo"
    files = ["reports/classifier.md", "dvc.lock", "params.yaml", "src/superionic/x.py", "conf/config.yaml", "dvc.yaml"]
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("v1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    assert git_commit(repo)[1] is False
    (repo / changed).write_text("v2\n")
    assert git_commit(repo)[1] is dirty
