"""The stage runner: one MLflow run per stage with its tags, wall time and returned metrics; progress lines."""

from __future__ import annotations

import importlib
import logging

import pytest
from omegaconf import OmegaConf

from superionic.cli import STAGES, TOOLS, stage_entry
from superionic.stage import WALL_METRIC, StageResult, progress, progress_line, stage, stage_name

# being rewritten elsewhere; they open their MLflow run in their body until they move to @stage
NOT_YET_ON_THE_RUNNER: set[str] = set()


def _cfg(tmp_path):
    return OmegaConf.create({
        "seed": 7,
        "classifier": {"n_splits": 3},
        "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "artifact_dir": str(tmp_path / "art"),
                     "experiment": "stage-test", "request_retries": 0, "request_timeout_s": 1},
    })  # fmt: skip


def test_stage_logs_tags_params_wall_time_metrics_and_artifacts(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "tidy-vole")
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "report.md"

    @stage("toy", sections=["classifier"])
    def run_stage(cfg):
        report.write_text("# toy\n")
        return StageResult({"accuracy": 0.75, "nested": {"n": 3}, "label": "text is skipped"}, [report])

    result = run_stage(_cfg(tmp_path))
    assert result.metrics["accuracy"] == 0.75
    assert stage_name(run_stage) == "toy" and run_stage.__name__ == "run_stage"
    run = mlflow.search_runs(experiment_names=["stage-test"], output_format="list")[0]
    assert run.info.run_name == "toy" and run.info.status == "FINISHED"
    assert run.data.tags["dvc_stage"] == "toy" and run.data.tags["dvc_exp_name"] == "tidy-vole"
    assert {"git_commit", "git_dirty"} <= set(run.data.tags)
    assert run.data.params == {"classifier.n_splits": "3"}
    assert run.data.metrics["accuracy"] == 0.75 and run.data.metrics["nested.n"] == 3
    assert run.data.metrics[WALL_METRIC] >= 0
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"report.md", "config.yaml"} <= artifacts


def test_stage_without_result_logs_wall_time_and_a_failing_stage_fails_its_run(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)

    @stage("quiet")
    def quiet(cfg):
        return None

    @stage("broken")
    def broken(cfg):
        raise ValueError("bad input")

    assert quiet(_cfg(tmp_path)) is None
    with pytest.raises(ValueError, match="bad input"):
        broken(_cfg(tmp_path))
    runs = {r.info.run_name: r for r in mlflow.search_runs(experiment_names=["stage-test"], output_format="list")}
    assert set(runs["quiet"].data.metrics) == {WALL_METRIC}
    assert runs["broken"].info.status == "FAILED" and WALL_METRIC not in runs["broken"].data.metrics


def _entry_stage_name(module: str) -> str | None:
    return stage_name(importlib.import_module(module).run_stage)


@pytest.mark.parametrize("command", sorted(STAGES))
def test_every_stage_command_runs_the_stage_it_names(command):
    if command in NOT_YET_ON_THE_RUNNER:
        assert _entry_stage_name(STAGES[command]) is None, f"{command} is on the runner now: drop it from the list"
        return
    assert _entry_stage_name(STAGES[command]) == command
    assert stage_entry(command) is importlib.import_module(STAGES[command]).run_stage


def test_the_explore_tool_runs_the_explore_stage():
    assert _entry_stage_name(TOOLS["explore"]) == "explore"


def test_the_cli_refuses_a_stage_decorated_with_another_name(monkeypatch):
    monkeypatch.setitem(STAGES, "ingest", STAGES["dataset"])
    with pytest.raises(RuntimeError, match="stage 'dataset'"):
        stage_entry("ingest")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_logs_throttled_lines_with_eta_and_always_the_last(caplog):
    clock = FakeClock()
    seen = []
    with caplog.at_level(logging.INFO, logger="superionic.stage"):
        for item in progress(range(400), label="thermo", unit="phase diagrams", every_s=25.0, clock=clock):
            seen.append(item)
            clock.now += 0.25  # a quarter second per item: a line every 100 items
    assert seen == list(range(400))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "thermo: phase diagrams 100/400 (25%), elapsed 0:00:25, ETA 0:01:15",
        "thermo: phase diagrams 200/400 (50%), elapsed 0:00:50, ETA 0:00:50",
        "thermo: phase diagrams 300/400 (75%), elapsed 0:01:15, ETA 0:00:25",
        "thermo: phase diagrams 400/400 (100%), elapsed 0:01:40, ETA 0:00:00",
    ]


def test_progress_without_a_length_and_when_stopped_early(caplog):
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger="superionic.stage"):
        assert list(progress(iter("abc"), label="md", every_s=60.0, clock=clock)) == ["a", "b", "c"]
        for item in progress(iter("xyz"), total=3, label="cut", clock=clock):
            break
    assert [r.getMessage() for r in caplog.records] == ["md: 3, elapsed 0:00:00"]


def test_progress_line_formats_counts_and_eta():
    assert progress_line("m 900 K", 250, 1000, 30.0) == "m 900 K: step 250/1000 (25%), elapsed 0:00:30, ETA 0:01:30"
    assert progress_line("m", 0, 10, 0.0).endswith("ETA ?")
    # continued at step 200 after 100 s: 50 steps in the 30 s since, 750 left at that rate
    assert progress_line("m", 250, 1000, 130.0, resumed_at=(200, 100.0)).endswith("elapsed 0:02:10, ETA 0:07:30")
    assert progress_line("m", 200, 1000, 100.0, resumed_at=(200, 100.0)).endswith("ETA ?")
    assert progress_line("ensemble lgbm", 3, 5, 3725.4, unit="") == \
        "ensemble lgbm: 3/5 (60%), elapsed 1:02:05, ETA 0:41:24"  # fmt: skip


def _shown(message: str, category: type[Warning], module: str) -> bool:
    import warnings

    from superionic.stage import filter_known_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filter_known_warnings()
        warnings.warn_explicit(message, category, "x.py", 1, module=module)
    return bool(caught)


def test_known_third_party_noise_is_filtered_and_nothing_else():
    noise = "Converting a tensor with requires_grad=True to a scalar may lead to unexpected behavior."
    assert not _shown(noise, UserWarning, "chgnet.model.model")
    assert not _shown("To copy construct from a tensor, it is recommended to use sourceTensor.detach()",
                      UserWarning, "chgnet.model.model")  # fmt: skip
    assert _shown(noise, UserWarning, "superionic.md.mlip")  # only where CHGNet raises it
    assert _shown("The implementation of `fixcm=True` in `Langevin` does not strictly sample the correct NVT",
                  FutureWarning, "ase.md.langevin")  # fmt: skip
