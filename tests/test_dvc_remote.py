"""The project's DVC remote: named in .dvc/config, and push/pull restore outputs on a fresh clone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT

PROJECT_CONFIG = REPO_ROOT / ".dvc" / "config"


def _project_remote() -> tuple[str, str]:
    """(name, url as written) of the default remote in the committed .dvc/config."""
    # DVC's own loader makes a relative url absolute; read the file as committed (DVC's INI reader)
    from configobj import ConfigObj

    config = ConfigObj(str(PROJECT_CONFIG))
    name = config.get("core", {}).get("remote")
    assert name, ".dvc/config names no default remote (`dvc remote add --project -d NAME URL`)"
    section = f'remote "{name}"'
    assert section in config, f"default remote {name!r} is not defined in .dvc/config"
    return name, config[section]["url"]


def test_project_names_a_default_remote_outside_the_clone():
    _, url = _project_remote()
    if "://" in url:
        return  # a cloud or SSH remote is outside the clone by construction
    # a committed absolute path would point at one person's disk
    assert not Path(url).is_absolute(), f"default remote {url!r}: commit a relative path"
    # DVC resolves a relative url against the folder of the config file
    location = (REPO_ROOT / ".dvc" / url).resolve()
    assert REPO_ROOT.resolve() not in location.parents, f"remote {location} is inside the clone"


def _dvc(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    # the dvc of the interpreter running the tests, not whichever is first on PATH
    executable = Path(sys.executable).parent / "dvc"
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "dvc"]
    result = subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_push_then_pull_on_a_fresh_copy_restores_the_data(tmp_path):
    """The project's remote config in a throwaway repo: its relative url lands beside that repo, in tmp_path."""
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        # no user or machine DVC settings, no shared site cache: only what this test sets
        "DVC_GLOBAL_CONFIG_DIR": str(tmp_path / "global"),
        "DVC_SYSTEM_CONFIG_DIR": str(tmp_path / "system"),
        "DVC_SITE_CACHE_DIR": str(tmp_path / "site-cache"),
    }
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(["init", "-q"], repo, env)
    shutil.copy(PROJECT_CONFIG, repo / ".dvc" / "config")
    _, url = _project_remote()
    remote = (repo / ".dvc" / url).resolve()
    assert tmp_path.resolve() in remote.parents, f"the remote would leave the test folder: {remote}"

    data = repo / "model.bin"
    payload = b"fitted weights \x00\x01\x02\n"
    data.write_bytes(payload)
    _dvc(["add", "-q", data.name], repo, env)
    _dvc(["push"], repo, env)  # to the default remote, created on first push
    assert any(path.is_file() for path in remote.rglob("*")), f"nothing pushed to {remote}"

    # what a fresh clone has: the .dvc file, neither the data nor a cache
    shutil.rmtree(repo / ".dvc" / "cache")
    data.unlink()
    _dvc(["pull"], repo, env)
    assert data.read_bytes() == payload
