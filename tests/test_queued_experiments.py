"""Queued experiments (``dvc exp run --queue``) run in a temporary copy of the workspace.

DVC runs them under ``<workspace>/.dvc/tmp/exps/`` and deletes the copy
afterwards, passing the workspace in ``DVC_ROOT``. What must outlive the copy
(the MLflow store and artifacts, Optuna studies) is anchored at ``DVC_ROOT``
by code. The raw data cannot be: DVC itself resolves the ``${data_dir}`` deps
inside the copy before any stage code runs, so a queued run needs an absolute
``data_dir``, which the README's queue commands pass.
"""

from __future__ import annotations

import re

from conftest import REPO_ROOT
from superionic.tracking import anchored_uri, workspace_root


def _temporary_copy(workspace):
    # the layout DVC's queue uses (dvc.repo.experiments.executor.local.TempDirExecutor)
    copy = workspace / ".dvc" / "tmp" / "exps" / "tmpa1b2c3"
    copy.mkdir(parents=True)
    return copy


def test_a_queued_run_resolves_to_the_workspace_not_its_copy(tmp_path):
    workspace = tmp_path / "superionic"
    copy = _temporary_copy(workspace)
    env = {"DVC_ROOT": str(workspace), "DVC_EXP_NAME": "bushy-kiln"}
    root = workspace_root(env, cwd=copy)
    assert root == workspace.resolve()
    assert anchored_uri("sqlite:///mlflow.db", root) == f"sqlite:///{workspace.resolve() / 'mlflow.db'}"
    assert anchored_uri("sqlite:///optuna.db", root) == f"sqlite:///{workspace.resolve() / 'optuna.db'}"


def test_outside_dvc_the_working_directory_is_the_workspace(tmp_path):
    assert workspace_root({}, cwd=tmp_path) == tmp_path.resolve()
    assert workspace_root({"DVC_ROOT": ""}, cwd=tmp_path) == tmp_path.resolve()
    # dvc repro in the workspace: DVC_ROOT is the workspace itself
    assert workspace_root({"DVC_ROOT": str(tmp_path)}, cwd=tmp_path / "sub") == tmp_path.resolve()


def test_a_relative_dvc_root_is_read_from_the_working_directory(tmp_path):
    copy = _temporary_copy(tmp_path)
    assert workspace_root({"DVC_ROOT": "../../../.."}, cwd=copy) == tmp_path.resolve()


def test_absolute_and_remote_stores_are_left_alone(tmp_path):
    root = workspace_root({"DVC_ROOT": str(tmp_path)}, cwd=tmp_path)
    for uri in (f"sqlite:///{tmp_path}/elsewhere/mlflow.db", "http://tracking:5000",
                "postgresql://user:pw@db/mlflow", "sqlite:///:memory:"):
        assert anchored_uri(uri, root) == uri


def test_readme_queues_experiments_with_an_absolute_data_dir():
    """The committed data_dir is relative; every queued command in the README must override it."""
    queued = [line for line in (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
              if re.search(r"dvc exp run\b.*--queue", line)]
    assert queued, "the README shows no queued experiment"
    relative = [line for line in queued if not re.search(r"data_dir=\$\(realpath ", line)]
    assert not relative, f"queued without an absolute data_dir: {relative}"
