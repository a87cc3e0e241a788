"""Ablation collector: `dvc exp show --json` -> comparison tables."""

from __future__ import annotations

from superionic.classifier.ablation import collect, render

METRICS = "reports/classifier/metrics.json"
MODELS = ["gb", "lgbm"]


def _exp(name, variant, features, n, acc_gb, acc_lgbm, std=0.02):
    metrics = {
        "dataset": {"n_materials": n, "positive_rate": 0.4},
        "paper": {"gb": {"accuracy_mean": acc_gb, "accuracy_std": std},
                  "lgbm": {"accuracy_mean": acc_lgbm, "accuracy_std": std}},
        "grouped": {"chemsys": {"status": "ok", "models": {"gb": {"accuracy": acc_gb - 0.1},
                                                           "lgbm": {"accuracy": acc_lgbm - 0.1}}},
                    "family": {"status": "unavailable: 1 family group(s) with a value"}},
    }
    return {"rev": name, "name": name, "data": {
        "params": {"params.yaml": {"data": {"dataset": {"variant": variant}, "features": {"name": features}}}},
        "metrics": {METRICS: {"data": metrics}}}}


def _show():
    # the shape of DVC 3: baseline rows, each with experiments holding revs
    return [
        {"rev": "workspace", "name": None, "data": {"params": {}, "metrics": {}}},
        {"rev": "abc", "name": "main", "data": {"params": {}, "metrics": {}}, "experiments": [
            {"name": "e1", "revs": [_exp("e1", "xu", "cd", 120, 0.80, 0.82)]},
            {"name": "e2", "revs": [_exp("e2", "xu", "cd_struct", 120, 0.90, 0.83)]},
            {"name": "e3", "revs": [_exp("e3", "kang", "cd", 320, 0.85, 0.86)]},
            {"name": "e4", "revs": [_exp("e4", "literature", "cd", 700, 0.83, 0.84)]},
        ]},
    ]


def test_collect_reads_every_experiment():
    frame = collect(_show(), METRICS, MODELS)
    assert sorted(frame["experiment"]) == ["e1", "e2", "e3", "e4"]
    row = frame.set_index("experiment").loc["e2"]
    assert row["features"] == "cd_struct" and row["paper_gb"] == 0.90 and row["chemsys_gb"] == 0.80
    assert row["family_gb"] is None


def test_render_answers_both_questions():
    frame = collect(_show(), METRICS, MODELS)
    text = render(frame, MODELS, MODELS, {"gb": "GB", "lgbm": "LightGBM"})
    assert "## Does structure help?" in text and "## Does size help?" in text
    assert "`xu`, GB: cd 0.800 -> cd_struct 0.900 (difference +0.100" in text
    assert "better with structure" in text
    assert "`xu`, LightGBM: cd 0.820 -> cd_struct 0.830" in text and "within the split-to-split spread" in text
    size = text.split("## Does size help?")[1]
    assert size.index("| xu |") < size.index("| kang |") < size.index("| literature |")


def test_no_experiments_is_explained():
    text = render(collect([], METRICS, MODELS), MODELS, MODELS, {"gb": "GB", "lgbm": "LightGBM"})
    assert "No experiment" in text


def test_experiments_are_read_from_their_commits_whatever_the_baseline(tmp_path, monkeypatch):
    import json
    import subprocess

    from superionic.classifier.ablation import experiments_from_git

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    metrics = "reports/classifier/metrics.json"
    (tmp_path / "reports/classifier").mkdir(parents=True)
    git("init", "-q")
    for key, value in (("user.email", "t@t"), ("user.name", "t")):
        git("config", key, value)
    for name, variant in (("xu-run", "xu"), ("kang-run", "kang")):
        (tmp_path / "params.yaml").write_text(f"dataset:\n  variant: {variant}\nfeatures:\n  name: cd\n")
        (tmp_path / metrics).write_text(json.dumps({"paper": {"gb": {"accuracy_mean": 0.8}}, "dataset": {}}))
        git("add", "-A")
        git("commit", "-qm", name)
        # DVC files an experiment under refs/exps/<baseline>/<name>; the baseline need not be HEAD
        git("update-ref", f"refs/exps/ab/cdef/{name}", "HEAD")
    git("update-ref", "refs/exps/exec/EXEC_HEAD", "HEAD")
    monkeypatch.chdir(tmp_path)
    found = experiments_from_git(metrics)
    assert [e["name"] for e in found] == ["workspace", "kang-run", "xu-run"]
    frame = collect(found, metrics, MODELS)
    assert set(frame["dataset"]) == {"xu", "kang"}
