"""The shared report renderer: number and table filters, strict undefined names, shipped templates."""

from __future__ import annotations

import math
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import pytest

from superionic.reports import markdown
from superionic.reports.render import TEMPLATE_DIR, environment, render


def _render(source: str, **context) -> str:
    return environment().from_string(source).render(**context)


@pytest.mark.parametrize(("source", "context", "expected"), [
    ("{{ x|fixed }}", {"x": 0.84321}, "0.843"),
    ("{{ x|fixed(1) }}", {"x": 2.25}, "2.2"),
    ("{{ x|fixed }}", {"x": float("nan")}, "n/a"),
    ("{{ x|fixed }}", {"x": None}, "n/a"),
    ("{{ x|fixed }}", {"x": 20}, "20"),
    ("{{ x|fixed }}", {"x": np.float64(0.5)}, "0.500"),
    ("{{ x|pct }}", {"x": 0.847}, "84.7 %"),
    ("{{ x|pct(2) }}", {"x": 0.16512}, "16.51 %"),
    ("{{ x|thousands }}", {"x": 20237}, "20,237"),
    ("{{ x|thousands }}", {"x": 1234.5}, "1,234.5"),
    ("{{ x|pm(e) }}", {"x": 0.8123, "e": 0.0041}, "0.812 ± 0.004"),
    ("{{ x|pm(e, 1) }}", {"x": 12.34, "e": 0.56}, "12.3 ± 0.6"),
    ("{{ x|pm(e, 2, '–') }}", {"x": 0.4912, "e": float("nan")}, "0.49 ± –"),
    ("{{ x|pm(e, 2, '–') }}", {"x": float("inf"), "e": 0.1}, "–"),
    ("{{ x|num }}", {"x": 1.005}, "1.00"),
    ("{{ x|num('.2e') }}", {"x": 2}, "2.00e+00"),
    ("{{ x|num }}", {"x": None}, "–"),
    ("{{ x|num('.1f', 'n/a') }}", {"x": float("-inf")}, "n/a"),
    ("{{ x|fmt('.4g') }}", {"x": 3.0769e-07}, "3.077e-07"),
    ("{{ x|fmt('g') }}", {"x": 3.0}, "3"),
    ("{{ p|assignments }}", {"p": {"n": 250, "lr": 0.084421, "w": None}}, "lr=0.08442, n=250, w=None"),
])
def test_number_filters(source, context, expected):
    assert _render(source, **context) == expected


def test_filters_match_the_f_strings_they_replace():
    for x in (0.0, 0.1234567, 0.847, 0.8205, 1.0, 0.16499999):
        assert _render("{{ x|pct }}", x=x) == f"{100 * x:.1f} %"
        assert _render("{{ x|fixed }}", x=x) == f"{x:.3f}"


def test_md_table_filter():
    rows = [["a|b", 0.12345, None], ["c", float("nan"), 7]]
    assert _render("{{ rows|md_table(['x', 'y', 'z']) }}", rows=rows) == (
        "| x | y | z |\n|---|---|---|\n| a\\|b | 0.1235 |  |\n| c |  | 7 |")
    assert _render("{{ rows|md_table(['x', 'y', 'z'], floatfmt='.3f', missing='n/a', escape=false) }}",
                   rows=rows) == "| x | y | z |\n|---|---|---|\n| a|b | 0.123 | n/a |\n| c | n/a | 7 |"


def test_frame_table_is_the_markdown_table_writer():
    frame = pd.DataFrame({"name": ["x", "y|z"], "value": [1.5, math.nan], "n": [1, 2]})
    assert _render("{{ f|frame_table }}", f=frame) == markdown.table(frame)
    assert markdown.table(frame) == "| name | value | n |\n|---|---|---|\n| x | 1.5 | 1 |\n| y\\|z |  | 2 |"


def test_a_missing_value_fails_naming_it():
    with pytest.raises(jinja2.UndefinedError, match="missing_value"):
        _render("before {{ missing_value|fixed }} after")
    with pytest.raises(jinja2.UndefinedError, match="accuracy"):
        _render("{{ row.accuracy }}", row={"f1": 0.5})
    with pytest.raises(jinja2.UndefinedError, match="cfg"):
        render("nasicon.md.j2", {})


def test_block_tags_leave_no_blank_lines_and_the_final_newline_stays():
    assert _render("a\n{% if true %}\nb\n{% endif %}\nc\n") == "a\nb\nc\n"
    assert _render("{% for x in xs %}\n  {% if x %}\n- {{ x }}\n  {% endif %}\n{% endfor %}\n", xs=[1, 0, 2]) \
        == "- 1\n- 2\n"


def test_templates_ship_with_the_package():
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["superionic.reports"]
    shipped = {p for pattern in patterns for p in (TEMPLATE_DIR.parent).glob(pattern)}
    assert set(TEMPLATE_DIR.glob("*.md.j2")) <= shipped
    assert {"classifier.md.j2", "nasicon.md.j2", "screening.md.j2", "md.md.j2", "md_barrier.md.j2",
            "generalization.md.j2", "generalization_variants.md.j2", "classifier_generalization.md.j2",
            "data.md.j2", "explore.md.j2", "structure_ablation.md.j2"} <= {p.name for p in shipped}


# Byte-identity of the templated reports: rendered from the stage outputs git tracks, they must equal the
# reports git tracks (written by the string-building code the templates replaced). The few inputs DVC caches
# instead of git (the SIS feature list, the tuned parameters) are rebuilt from the report's own table; every
# input of screening.md is git-tracked (reports/screening/), so it needs no stand-in.

def _table_after(text: str, header: str) -> list[list[str]]:
    lines = text.split("\n")
    start = lines.index(header) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def _scalar(text: str):
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@pytest.fixture
def tracked_params(monkeypatch):
    from conftest import REPO_ROOT
    from superionic.config import load_params

    monkeypatch.chdir(REPO_ROOT)
    return REPO_ROOT, load_params(REPO_ROOT / "params.yaml")


def test_nasicon_report_renders_byte_identical_from_tracked_outputs(tracked_params, tmp_path):
    from omegaconf import OmegaConf

    from superionic.nasicon import report

    root, cfg = tracked_params
    expected = (root / cfg.nasicon.paths.report).read_text(encoding="utf-8")
    sis = pd.DataFrame(_table_after(expected, "| rank | expression | r |"), columns=["rank", "expression", "r"])
    sis["expression"] = sis["expression"].str.strip("`")
    sis.to_csv(tmp_path / "sis_features.csv", index=False)
    OmegaConf.update(cfg, "nasicon.paths.sis_features", str(tmp_path / "sis_features.csv"))
    text = render(report.TEMPLATE, report.context(cfg, Path(cfg.nasicon.paths.figures)))
    assert text == expected


def test_classifier_report_renders_byte_identical_from_tracked_outputs(tracked_params, tmp_path):
    import json

    from omegaconf import OmegaConf

    from superionic.classifier import report

    root, cfg = tracked_params
    expected = (root / cfg.classifier.report).read_text(encoding="utf-8")
    by_label = {(cfg.models[m].label or m): m for m in cfg.classifier.model_names}
    best = {}
    for label, accuracy, trials, params in _table_after(expected, "| model | CV accuracy | trials | parameters |"):
        pairs = [item.split("=", 1) for item in params.split(", ")] if params else []
        best[by_label[label]] = {"accuracy": float(accuracy), "n_complete": int(trials),
                                 "params": {k: _scalar(v) for k, v in pairs}}
    (tmp_path / "best_params.json").write_text(json.dumps({"models": best}), encoding="utf-8")
    OmegaConf.update(cfg, "classifier.best_params", str(tmp_path / "best_params.json"))
    text = render(report.TEMPLATE, report.context(cfg))
    assert text == expected


def test_screening_report_renders_byte_identical_from_tracked_outputs(tracked_params):
    from superionic.screening import report

    root, cfg = tracked_params
    expected = (root / cfg.screen.report).read_text(encoding="utf-8")
    text = render(report.TEMPLATE, report.context(cfg))
    assert text == expected


def test_screening_report_takes_the_papers_numbers_from_the_configuration(tracked_params):
    """The Kang 2023 counts are rendered from references.kang2023, not typed into the template."""
    from omegaconf import OmegaConf

    from superionic.screening import report

    _, cfg = tracked_params
    OmegaConf.update(cfg, "references.kang2023.funnel.pool", 12345)
    OmegaConf.update(cfg, "references.kang2023.unanimous.both", 7)
    text = render(report.TEMPLATE, report.context(cfg))
    assert "Paper: 12,345 → 3,190" in text and "The paper started from 12,345 Li materials" in text
    assert "| all members | 0 | 7 |" in text
    assert "20,237" not in text and "20237" not in (Path(report.__file__).parent.parent / "reports" / "templates"
                                                    / report.TEMPLATE).read_text(encoding="utf-8")


def test_md_report_renders_byte_identical_from_tracked_outputs(tracked_params):
    """All of md-report's inputs are tracked (reports/md/*.csv, mlip_metrics.json): nothing to rebuild."""
    from superionic.md import report

    root, cfg = tracked_params
    md = cfg.md
    aimd_runs, aimd_fits, mlip_runs, mlip_fits, mlip_metrics, timing = report.read_inputs(md)
    comp = report.compare_fits(aimd_fits, mlip_fits)
    pairs = report.same_temperature_pairs(aimd_runs, mlip_runs)
    text = report.render(cfg, aimd_runs, aimd_fits, mlip_runs, mlip_fits, mlip_metrics, timing, comp, pairs,
                         report.comparison_metrics(comp, pairs))
    assert text == (root / md.report).read_text(encoding="utf-8")


@pytest.mark.parametrize(("half_width", "factor", "expected"), [
    (0.09, 1.0, "It is widened by the Birge ratio: the materials' ΔEa scatter more than their errors predict "
                "(Birge ratio 1.50; p = 0.04 for one common ΔEa)."),
    (0.2, 1.0, "what widens it is that the materials' ΔEa scatter more than their errors predict "
               "(Birge ratio 1.50; p = 0.04 for one common ΔEa): if they soften"),
    (0.2, 2.0, "but the materials' ΔEa scatter more than their errors predict (Birge ratio 1.50, by which the "
               "interval is widened; p = 0.04 for one common ΔEa): if they soften"),
])  # fmt: skip
def test_md_report_states_the_birge_scatter_once_in_each_pooled_branch(tracked_params, half_width, factor,
                                                                          expected):  # fmt: skip
    from superionic.md import report
    from superionic.reports.render import render

    root, cfg = tracked_params
    tables = report.read_inputs(cfg.md)
    comp = report.compare_fits(tables[1], tables[3])
    pairs = report.same_temperature_pairs(tables[0], tables[2])
    ctx = report.context(cfg, *tables, comp, pairs, report.comparison_metrics(comp, pairs))
    v = ctx["validation"]
    assert v is not None, "the tracked validation outputs give the pooled sentence"
    v["pooled"] = v["pooled"] | {"half_width": half_width}
    v |= {"birge": 1.5, "birge_p": 0.04, "pooled_factor": factor}
    text = render(report.TEMPLATE, ctx)
    assert expected in text and text.count("scatter more than their errors predict") == 1


def test_generalization_report_renders_byte_identical_from_tracked_outputs(tracked_params):
    """generalize's report from its tracked outputs; the row count (the dataset, DVC-cached) is the random
    protocol's n in variants.csv, which scores every row."""
    import json

    from superionic.classifier import generalize as G

    root, cfg = tracked_params
    g = cfg.generalize
    out = Path(g.report_dir)
    metrics = json.loads(Path(g.metrics).read_text(encoding="utf-8"))
    table = pd.read_csv(out / G.VARIANTS_CSV)
    n_rows = int(table.loc[table["protocol"] == G.RANDOM, "n"].iloc[0])
    pretrain = json.loads(Path(g.pretrain.metrics).read_text(encoding="utf-8"))
    text = G.render_report(metrics, table, pd.read_csv(out / G.SOURCES_CSV), pd.read_csv(out / G.FAMILY_CSV),
                           pretrain, cfg, n_rows)
    assert text == (root / g.report).read_text(encoding="utf-8")


def test_generalization_section_is_the_classifier_reports_section_6(tracked_params):
    """The classifier report includes the section; the ablation report appends it unnumbered."""
    from superionic.classifier import report

    root, cfg = tracked_params
    section = report.generalization_section(cfg)
    assert section.startswith("## 6. Generalization variants")
    assert section in (root / cfg.classifier.report).read_text(encoding="utf-8")
    assert report.generalization_section(cfg, number="") == section.replace("## 6. ", "## ", 1)



def test_structure_ablation_section_renders_from_the_stages_tracked_metrics(tracked_params):
    """The section the classifier report includes, from structure_ablation.json (tracked) through the
    data-only report_context; before the stage ran it is one line pointing at the stage."""
    import json

    from superionic.classifier import structure_ablation as SA

    root, cfg = tracked_params
    metrics = json.loads((Path(cfg.generalize.report_dir) / SA.METRICS_FILE).read_text(encoding="utf-8"))
    include = '{% include "structure_ablation.md.j2" %}'
    section = _render(include, structure=SA.report_context(metrics), heading="###")
    assert section.startswith("### Does a real structure help?") and section.endswith("real structures.\n")
    assert section in (root / cfg.classifier.report).read_text(encoding="utf-8")
    assert _render(include, structure=None, heading="###") == \
        "Structure ablation not built yet: `dvc repro structure-ablation`.\n"

def test_data_report_renders_byte_identical_from_tracked_outputs(tracked_params):
    """The dataset stage's report. Tracked: the ingest metrics, rejected rows, repairs, duplicate conflicts and
    dataset metrics (written with sorted keys; the stage's key order is the report table's). The interim records
    (DVC-cached) are stubbed with the counts the report quotes, and the variant summary and family map tables
    (computed from them) are read back from the report."""
    import json
    import re

    from superionic.data import columns as C
    from superionic.data import report

    root, cfg = tracked_params
    expected = (root / cfg.paths.data_report).read_text(encoding="utf-8")
    summary_header = "| variant | sources | records | materials | duplicate_groups | conflicting_groups | superionic " \
                     "| not_superionic | superionic_fraction | li_materials | na_materials |"
    summary = pd.DataFrame([[_scalar(v) for v in row] for row in _table_after(expected, summary_header)],
                           columns=[c.strip() for c in summary_header.strip("|").split("|")])
    family_table = pd.DataFrame([[*row[:3], int(row[3])] for row in _table_after(
        expected, "| spelling | family | status | records |")], columns=["spelling", "family", "status", "records"])
    metrics_header = next(line for line in expected.split("\n") if line.startswith("| variant | materials |"))
    stored = json.loads(Path(cfg.paths.dataset_metrics).read_text(encoding="utf-8"))
    metrics = {k.strip(): stored[k.strip()] for k in metrics_header.strip("|").split("|")}
    n_bounds, largest = re.search(r"(\d+) records give only an upper bound.*largest bound is (\S+) S/cm",
                                  expected).groups()
    n_without, n_records = map(int, re.search(r"family-grouped CV: (\d+) of (\d+) records", expected).groups())
    records = pd.DataFrame({C.SIGMA: [float(largest)] * n_records,
                            C.SIGMA_CENSORED: ["<"] * int(n_bounds) + [""] * (n_records - int(n_bounds)),
                            C.FAMILY: [None] * n_without + ["x"] * (n_records - n_without)})
    text = render(report.TEMPLATE, report.context(
        json.loads(Path(cfg.paths.ingest_metrics).read_text(encoding="utf-8")),
        pd.read_csv(cfg.paths.rejected_rows, keep_default_na=False),
        pd.read_csv(cfg.paths.repairs, keep_default_na=False), summary,
        pd.read_csv(cfg.paths.duplicate_conflicts, keep_default_na=False), metrics, cfg, family_table, records))
    assert text == expected


def test_explore_report_renders_byte_identical_from_tracked_outputs(tracked_params):
    """The explore stage's report. Tracked: the ranked top rows, the measured grid points and the metrics
    (reports/explore/). The space and its dropped counts (in the stage's order; metrics.json sorts keys) are
    rebuilt from params.yaml's explore section, which is cheap and model-free; nothing is stubbed."""
    import json

    from omegaconf import OmegaConf

    from superionic.explore import stage as E
    from superionic.explore.space import build_space, enumerate_space

    root, cfg = tracked_params
    spec = OmegaConf.to_container(cfg.explore, resolve=True, enum_to_str=True)
    out = Path(spec["report_dir"])
    space = build_space(spec)
    result = E.Exploration(space, enumerate_space(space), pd.read_csv(out / E.RANKED_CSV),
                           pd.read_csv(out / E.KNOWN_CSV), {}, {})
    figures = json.loads((out / E.METRICS_JSON).read_text(encoding="utf-8"))
    text = render(E.TEMPLATE, E.context(result, figures, spec))
    assert text == (root / spec["report"]).read_text(encoding="utf-8")
