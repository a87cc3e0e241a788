"""Every stage's declared code deps are exactly the ``superionic`` modules it runs.

DVC reruns a stage only when a listed dep changes, so a module a stage imports
but does not list can change the stage's results while ``dvc status`` reports
nothing to do. For each ``superionic <command>`` stage this test finds the
module the CLI runs, follows its ``superionic`` imports statically (top-level
and function-local, ``from pkg import submodule`` included) and requires each
module file reached to be listed in the stage's ``deps`` (the file itself or a
folder above it).
"""

from __future__ import annotations

import ast
from enum import Enum
from functools import cache
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT
from superionic.cli import STAGES, TOOLS

PACKAGE = "superionic"
PACKAGE_DIR = REPO_ROOT / "src" / PACKAGE
COMMAND = "superionic"
# What the CLI calls in a stage's module (``run_stage(cfg)``; a tool's ``main(argv)``).
ENTRY_POINTS = ("run_stage", "main")

# Modules no stage needs to list: what they do cannot change a stage's outputs.
# Keep this short; everything else a stage imports is a dep. An exempt module's
# own imports are not followed (a stage reaches them only through it).
EXEMPT = {
    # MLflow only: opens runs, logs params/metrics/artifacts/tags, and anchors a
    # relative local store (MLflow's, tune's Optuna study) at the workspace root
    # so the same configured store is used from any working copy. It writes
    # nothing DVC tracks; every stage imports it, so listing it would rerun the
    # whole pipeline for a logging change.
    "superionic.tracking",
    # The stage runner (the @stage decorator around every run_stage, progress lines,
    # start-up warning filters): it opens the MLflow run through tracking, times the
    # stage and logs what the stage returns; progress() hands items on unchanged and
    # in order. Like tracking it writes nothing DVC tracks, and every stage imports
    # it; test_the_stage_runner_imports_no_other_superionic_module keeps it that way.
    "superionic.stage",
    # The params.yaml loader every stage runs through (the CLI; explore's main):
    # it checks params.yaml against the schemas and refuses it or passes it on.
    # The values a stage reads come from params.yaml, which DVC tracks key by
    # key; test_the_params_loader_passes_params_yaml_on_unchanged keeps it that way.
    "superionic.config",
}


def module_file(module: str) -> Path | None:
    """The source file of a ``superionic`` module or package, None if there is none."""
    base = PACKAGE_DIR.parent.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_package(module: str) -> bool:
    return (PACKAGE_DIR.parent.joinpath(*module.split(".")) / "__init__.py").is_file()


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute module name of ``from <node.module> import ...`` written inside ``module``."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    # the package a relative import starts from: the module's own package, one more level per extra dot
    package = parts if _is_package(module) else parts[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _with_parents(module: str) -> set[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def _import_nodes(tree: ast.Module, entry: bool) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, functions included; outside the entry module, not
    those inside its own stage entry points (only the CLI calls them, see test below)."""
    skipped = set()
    if not entry:
        for statement in tree.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef) and statement.name in ENTRY_POINTS:
                skipped |= {id(node) for node in ast.walk(statement)}
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skipped]


@cache
def direct_imports(module: str, entry: bool = False) -> frozenset[str]:
    """``superionic`` modules imported anywhere in ``module``'s source (functions included).

    ``entry``: the module is the one the stage's command runs, so its entry points run too."""
    path = module_file(module)
    assert path is not None, f"no source file for {module}"
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), entry):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = _absolute(module, node)
            # `from pkg import name`: name is a submodule when a file says so, else an attribute of pkg
            names = [origin, *(f"{origin}.{alias.name}" for alias in node.names
                               if module_file(f"{origin}.{alias.name}") is not None)]
        else:
            continue
        for name in names:
            if _ours(name):
                found |= {m for m in _with_parents(name) if module_file(m) is not None}
    found.discard(module)
    return frozenset(found)


def closure(module: str) -> set[str]:
    """``module`` and every ``superionic`` module it reaches through imports."""
    seen: set[str] = set()
    todo = [module, *_with_parents(module)]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            if current not in EXEMPT:
                todo.extend(direct_imports(current, entry=current == module))
    return seen


def _inert(path: Path) -> bool:
    """A docstring and literal assignments (``__version__``) only: running it defines no behaviour."""
    for statement in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant):
            continue
        return False
    return True


def required_files(module: str) -> set[str]:
    """Repository-relative files a stage running ``module`` must list."""
    files = set()
    for name in closure(module) - EXEMPT:
        path = module_file(name)
        assert path is not None
        if path.name == "__init__.py" and _inert(path):
            continue  # an empty package marker; one that gains code is required like any module
        files.add(path.relative_to(REPO_ROOT).as_posix())
    return files


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep.rstrip("/") or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def _stages() -> dict[str, dict]:
    return yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _command_module(cmd: str) -> str | None:
    words = cmd.split()
    if len(words) < 2 or words[0] != COMMAND:
        return None
    return STAGES.get(words[1]) or TOOLS.get(words[1])


CLI_STAGES = sorted(name for name, stage in _stages().items() if str(stage.get("cmd", "")).split()[:1] == [COMMAND])


def test_every_superionic_stage_maps_to_a_module():
    assert CLI_STAGES, "no `superionic <command>` stage found in dvc.yaml"
    unknown = {name: _stages()[name]["cmd"] for name in CLI_STAGES if _command_module(_stages()[name]["cmd"]) is None}
    assert not unknown, f"stages whose command the CLI does not know: {unknown}"


@pytest.mark.parametrize("stage", CLI_STAGES)
def test_stage_lists_every_module_it_imports(stage):
    spec = _stages()[stage]
    module = _command_module(spec["cmd"])
    assert module is not None
    deps = [dep for dep in spec.get("deps", []) if isinstance(dep, str)]
    missing = sorted(path for path in required_files(module) if not covered(path, deps))
    assert not missing, (
        f"dvc.yaml stage {stage!r} ({module}) imports code it does not list in deps; add: {', '.join(missing)}"
    )


@pytest.mark.parametrize("stage", CLI_STAGES)
def test_stage_lists_no_code_it_does_not_import(stage):
    """The other direction: a listed module the stage never imports reruns it for nothing."""
    spec = _stages()[stage]
    module = _command_module(spec["cmd"])
    assert module is not None
    required = required_files(module) | required_templates(module)
    code = [dep for dep in spec.get("deps", []) if isinstance(dep, str) and dep.startswith("src/")]
    unused = sorted(dep for dep in code if not any(covered(path, [dep]) for path in required))
    assert not unused, f"dvc.yaml stage {stage!r} ({module}) lists code it never imports; remove: {', '.join(unused)}"


def test_listed_code_deps_exist():
    """A renamed or deleted module must not linger as a dep (DVC would fail the stage)."""
    stale = {name: dep for name, spec in _stages().items() for dep in spec.get("deps", [])
             if isinstance(dep, str) and dep.startswith("src/") and not (REPO_ROOT / dep).exists()}
    assert not stale, f"deps that do not exist: {stale}"


def _differences(loaded, raw, key=""):
    """Where ``loaded`` is not ``raw``: a key params.yaml lacks, or a value the schema changed."""
    if isinstance(loaded, dict) and isinstance(raw, dict):
        found = [f"{key}{name} (not in params.yaml)" for name in loaded.keys() - raw.keys()]
        for name in loaded.keys() & raw.keys():
            found += _differences(loaded[name], raw[name], f"{key}{name}.")
        return found
    if isinstance(loaded, list) and isinstance(raw, list) and len(loaded) == len(raw):
        return [d for i, (a, b) in enumerate(zip(loaded, raw)) for d in _differences(a, b, f"{key}{i}.")]
    if not _same_value(loaded, raw):
        return [f"{key.rstrip('.')}: {raw!r} -> {loaded!r}"]
    return []


def _same_value(loaded, raw) -> bool:
    if type(loaded) is type(raw):
        return loaded == raw
    # the two conversions a schema may make, both keeping the value: an int into a
    # float field, a string into the enum member of that value (screen.release)
    if type(loaded) is float and type(raw) is int:
        return loaded == raw
    if isinstance(loaded, Enum) and isinstance(raw, str):
        return loaded.value == raw
    return False


def test_the_params_loader_passes_params_yaml_on_unchanged():
    """superionic.config is exempt because it only accepts or refuses params.yaml: no schema default may
    fill a key params.yaml lacks and no schema type may change a value (the stage would then read a value
    made by unlisted code, not the tracked param)."""
    from omegaconf import OmegaConf

    from superionic.config import load_params

    params = REPO_ROOT / "params.yaml"
    loaded = OmegaConf.to_container(load_params(params), resolve=True)
    raw = OmegaConf.to_container(OmegaConf.load(params), resolve=True)
    changed = _differences(loaded, raw)
    assert not changed, f"the schemas change what params.yaml says (fix conf/ or the schema): {changed}"


def test_only_the_cli_calls_stage_entry_points():
    """The walker skips imports inside other modules' run_stage/main: true only while no module calls them."""
    callers = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            calls_other = (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                           and node.func.attr in ENTRY_POINTS)
            imports_one = (isinstance(node, ast.ImportFrom)
                           and any(alias.name in ENTRY_POINTS for alias in node.names))
            if calls_other or imports_one:
                callers.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert not callers, f"a module runs another stage's entry point (follow its imports): {callers}"


# --- the import walker itself ------------------------------------------------


def test_walker_follows_function_local_and_submodule_imports():
    # screening.predict imports superionic.cluster inside a function
    assert "superionic.cluster" in closure("superionic.screening.predict")
    # `from superionic import models` reaches the package, not a module named superionic/classifier.py
    assert "superionic.classifier" in direct_imports("superionic.classifier.ensemble")
    # transitive: nasicon.sisso -> nasicon.sis -> nasicon.space
    assert "superionic.nasicon.space" in closure("superionic.nasicon.sisso")


def test_covered_accepts_the_file_or_a_folder_above_it():
    assert covered("src/superionic/io.py", ["src/superionic/io.py"])
    assert covered("src/superionic/md/io.py", ["src/superionic/md"])
    assert covered("src/superionic/md/io.py", ["src/superionic/md/"])
    assert not covered("src/superionic/md/io.py", ["src/superionic/m"])
    assert not covered("src/superionic/io.py", ["src/superionic/md/io.py"])


def test_the_stage_runner_imports_no_other_superionic_module():
    """superionic.stage is exempt because it only logs: it may reach our code through tracking (exempt too), nothing else."""
    assert direct_imports("superionic.stage") <= {"superionic", "superionic.tracking"}


TEMPLATE_DIR = PACKAGE_DIR / "reports" / "templates"
TEMPLATE_SUFFIX = ".md.j2"


def _template_literals(module: str) -> set[str]:
    """Template names (``*.md.j2`` string literals) written in a module's source."""
    path = module_file(module)
    assert path is not None
    return {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(TEMPLATE_SUFFIX)}


def _with_referenced(names: set[str]) -> set[str]:
    """Templates and every template they include, import or extend (they render too)."""
    from jinja2 import meta

    from superionic.reports.render import environment

    env = environment()
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        source = (TEMPLATE_DIR / name).read_text(encoding="utf-8")
        todo.extend(ref for ref in meta.find_referenced_templates(env.parse(source)) if ref)
    return seen


def _entry_point_imports(module: str) -> set[str]:
    """``superionic`` report modules (``*.report``) imported inside ``module``'s own entry points: a
    ``run_stage`` handing its report to one, as the dataset stage does. (Other modules a run_stage imports
    for their code, e.g. generalize's model classes, do not render their stage's template here.)"""
    path = module_file(module)
    assert path is not None
    found: set[str] = set()
    for statement in ast.parse(path.read_text(encoding="utf-8")).body:
        if not (isinstance(statement, ast.FunctionDef) and statement.name in ENTRY_POINTS):
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.ImportFrom) and _ours(_absolute(module, node)):
                origin = _absolute(module, node)
                found |= {name for name in (origin, *(f"{origin}.{a.name}" for a in node.names))
                          if module_file(name) is not None and not _is_package(name)}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if _ours(a.name) and module_file(a.name) is not None}
    return {name for name in found if name.rsplit(".", 1)[-1] == "report"}


def required_templates(module: str) -> set[str]:
    """Repository-relative template files the stage running ``module`` renders: the templates its own
    module names (the one whose ``run_stage`` writes the report) or a module its ``run_stage`` imports
    (a report module it hands the writing to), and the templates those pull in."""
    names = _template_literals(module)
    for imported in _entry_point_imports(module):
        names |= _template_literals(imported)
    return {(TEMPLATE_DIR / name).relative_to(REPO_ROOT).as_posix() for name in _with_referenced(names)}


@pytest.mark.parametrize("stage", CLI_STAGES)
def test_stage_lists_every_template_it_renders(stage):
    spec = _stages()[stage]
    module = _command_module(spec["cmd"])
    deps = [dep for dep in spec.get("deps", []) if isinstance(dep, str)]
    templates = required_templates(module)
    for path in templates:
        assert (REPO_ROOT / path).is_file(), f"{module} names a template that does not exist: {path}"
    missing = sorted(path for path in templates if not covered(path, deps))
    assert not missing, f"dvc.yaml stage {stage!r} renders templates it does not list in deps; add: {', '.join(missing)}"


def test_report_stages_render_their_templates():
    """The template check above sees the report stages' templates (it is not vacuous)."""
    rendered = {stage: required_templates(_command_module(_stages()[stage]["cmd"])) for stage in CLI_STAGES}
    assert "src/superionic/reports/templates/classifier.md.j2" in rendered["classifier-report"]
    assert "src/superionic/reports/templates/nasicon.md.j2" in rendered["nasicon-report"]
    assert "src/superionic/reports/templates/screening.md.j2" in rendered["screen-report"]
    assert "src/superionic/reports/templates/data.md.j2" in rendered["dataset"]  # named by its run_stage's import
    every = {path.relative_to(REPO_ROOT).as_posix() for path in TEMPLATE_DIR.glob("*" + TEMPLATE_SUFFIX)}
    unused = every - set().union(*rendered.values())
    assert not unused, f"templates no stage renders (dead, or named where this test cannot see): {sorted(unused)}"
