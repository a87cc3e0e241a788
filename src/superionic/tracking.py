"""The one MLflow helper every stage uses.

Each stage run records: the resolved configuration (as params and as a YAML
artifact), the git commit (and whether code or configuration had uncommitted
changes), the versions of the packages that shape the numbers, the DVC stage
name and, for a DVC experiment, its name and baseline commit.

A relative local store (``sqlite:///mlflow.db``, the artifact folder) is
anchored at the workspace root, which DVC passes to every stage as
``DVC_ROOT``: queued experiments run in temporary copies under
``.dvc/tmp/exps/`` that DVC deletes, and their runs must land in the
workspace's store, not in the copy.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

TRACKED_PACKAGES = (
    "superionic",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "lightgbm",
    "xgboost-cpu",
    "optuna",
    "matminer",
    "pymatgen",
    "torch",
    "chgnet",
    "ase",
    "dvc",
    "hydra-core",
    "mlflow",
)

# MLflow refuses param values longer than this; longer ones go to the YAML artifact only.
_MAX_PARAM_LEN = 500


# user:password@ in any URL (database, tracking server, object store)
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][\w+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@")


def redact(text: str) -> str:
    """Replace the password of every URL in ``text`` by ``***``."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


# What defines the results: a change here makes a run "dirty". DVC rewrites its
# outputs (reports, dvc.lock, params.yaml) during every repro; those are results.
CODE_PATHS = ("src", "conf", "dvc.yaml", "pyproject.toml", "Makefile")


def workspace_root(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """The DVC workspace a stage belongs to (the parent repository for a queued experiment).

    ``env`` and ``cwd`` default to the process's; DVC sets ``DVC_ROOT`` for every
    stage, to the parent workspace in a temporary copy, so without it (a stage
    run by hand) the working directory is the workspace.
    """
    env = os.environ if env is None else env
    base = Path.cwd() if cwd is None else Path(cwd)
    root = env.get("DVC_ROOT")
    # a relative DVC_ROOT is read from cwd; an absolute one replaces it
    return (base / root).resolve() if root else base.resolve()


def anchored_uri(uri: str, root: Path) -> str:
    """A relative ``sqlite:///path`` resolved against ``root``; other URIs unchanged."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and uri != prefix + ":memory:":
        return prefix + str((root / uri[len(prefix):]).resolve())
    return uri


def experiment_tags() -> dict[str, str]:
    """The DVC experiment name and baseline commit, when DVC runs the stage as an experiment."""
    names = {"DVC_EXP_NAME": "dvc_exp_name", "DVC_EXP_BASELINE_REV": "dvc_exp_baseline"}
    return {tag: os.environ[var] for var, tag in names.items() if os.environ.get(var)}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not-installed"
    return versions


def git_commit(cwd: Path | None = None) -> tuple[str, bool]:
    """Return (commit, dirty); ("unknown", True) outside a git checkout.

    Dirty means uncommitted changes to tracked code or configuration
    (:data:`CODE_PATHS`), not to the outputs DVC rewrites.
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return commit, bool(status.strip())


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def check_server(uri: str, timeout_s: float) -> None:
    """Fail at once, the URI named (password redacted), when an HTTP tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ConnectionError(f"MLflow tracking server {redact(uri)} does not answer: {exc}") from exc


def _configure(cfg: DictConfig) -> None:
    # MLflow's own defaults retry a dead server for minutes; bound them first.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(cfg.tracking.request_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(1, cfg.tracking.request_timeout_s))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    import mlflow
    from mlflow.exceptions import MlflowException

    root = workspace_root()
    uri = anchored_uri(os.environ.get("MLFLOW_TRACKING_URI") or cfg.tracking.tracking_uri, root)
    check_server(uri, cfg.tracking.request_timeout_s)
    mlflow.set_tracking_uri(uri)
    name = cfg.tracking.experiment
    if mlflow.get_experiment_by_name(name) is None:
        artifact_location = None
        if uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri:
            # A local backend keeps artifacts in a local folder beside it.
            artifact_location = (root / cfg.tracking.artifact_dir).resolve().as_uri()
        try:
            mlflow.create_experiment(name, artifact_location=artifact_location)
        except MlflowException as exc:
            # Another stage created it between our look-up and our create: use theirs.
            if mlflow.get_experiment_by_name(name) is None:
                raise ConnectionError(f"MLflow at {redact(uri)}: cannot create experiment {name!r}: {exc}") from exc
    mlflow.set_experiment(name)


@contextlib.contextmanager
def stage_run(
    stage: str,
    cfg: DictConfig,
    sections: list[str] | None = None,
    run_name: str | None = None,
    nested: bool = False,
) -> Iterator[Any]:
    """Open an MLflow run for a DVC stage and record its provenance.

    ``sections`` limits the params logged to the config sections the stage
    reads (the whole resolved config is always stored as ``config.yaml``).
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    if not nested:
        _configure(cfg)
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    commit, dirty = git_commit()
    with mlflow.start_run(run_name=run_name or stage, nested=nested) as run:
        mlflow.set_tags(
            {
                "dvc_stage": stage,
                "git_commit": commit,
                "git_dirty": str(dirty),
                **experiment_tags(),
                **{f"version.{k}": v for k, v in package_versions().items()},
            }
        )
        chosen = container if sections is None else {s: container[s] for s in sections}
        params = loggable_params(chosen)
        if params:
            mlflow.log_params(params)
        mlflow.log_text(redact(OmegaConf.to_yaml(cfg, resolve=True)), "config.yaml")
        mlflow.log_dict(package_versions(), "package_versions.json")
        yield run


def loggable_params(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattened config values as MLflow params: lists and dicts as JSON, secrets redacted, and values
    longer than MLflow accepts left out (the whole config is stored as config.yaml)."""
    params = {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in flatten(mapping, prefix).items()}
    params = {k: redact(v) if isinstance(v, str) else v for k, v in params.items()}
    return {k: v for k, v in params.items() if len(str(v)) <= _MAX_PARAM_LEN}


def log_model_spec(model: str, spec: Mapping[str, Any]) -> None:
    """Tag a per-model stage's run with its model and log that model's config (``models.<model>.*``)."""
    import mlflow

    mlflow.set_tag("model", model)
    mlflow.log_params(loggable_params(spec, prefix=f"models.{model}."))


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log the numeric entries of a (possibly nested) metrics mapping."""
    import mlflow

    numeric = {
        k: float(v)
        for k, v in flatten(metrics).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    if numeric:
        mlflow.log_metrics(numeric, step=step)


def log_artifacts(paths: list[str | Path], artifact_path: str | None = None) -> None:
    import mlflow

    for path in paths:
        path = Path(path)
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=artifact_path)
        elif path.exists():
            mlflow.log_artifact(str(path), artifact_path=artifact_path)
