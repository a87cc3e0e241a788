"""``superionic`` command line: one sub-command per DVC stage, plus tools.

Every stage command reads ``params.yaml`` (validated against the schemas in
:mod:`superionic.config`) and calls ``run_stage(cfg)`` in its module; the
module does the I/O and logging around pure functions.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# stage name -> module with ``run_stage(cfg)``
STAGES: dict[str, str] = {
    "ingest": "superionic.data.ingest",
    "featurize": "superionic.features.stage",
    "dataset": "superionic.data.dataset",
    "tune": "superionic.classifier.tune",
    "evaluate": "superionic.classifier.evaluate",
    "classifier-collect": "superionic.classifier.collect",
    "mp-pretrain": "superionic.features.mp_encoder",
    "generalize": "superionic.classifier.generalize",
    "structure-ablation": "superionic.classifier.structure_ablation",
    "importance": "superionic.classifier.importance",
    "ensemble": "superionic.classifier.ensemble",
    "classifier-report": "superionic.classifier.report",
    "ablation": "superionic.classifier.ablation",
    "mp-pool": "superionic.screening.pool",
    "mp2024-pool": "superionic.screening.pool2024",
    "thermo": "superionic.screening.thermo",
    "pool-features": "superionic.screening.features",
    "voltage": "superionic.screening.voltage",
    "funnel": "superionic.screening.funnel",
    "screen-predict": "superionic.screening.predict",
    "rediscovery": "superionic.screening.rediscovery",
    "screen-report": "superionic.screening.report",
    "nasicon-data": "superionic.nasicon.data",
    "nasicon-sis": "superionic.nasicon.sis",
    "nasicon-mlr": "superionic.nasicon.mlr",
    "nasicon-sisso": "superionic.nasicon.sisso",
    "nasicon-svc": "superionic.nasicon.svc",
    "nasicon-report": "superionic.nasicon.report",
    "aimd": "superionic.md.aimd",
    "mlip-md": "superionic.md.mlip",
    "md-report": "superionic.md.report",
    "headline": "superionic.reports.headline",
}

# stages that run once per classifier (DVC `matrix` stages tune@<model>, evaluate@<model>)
PER_MODEL_STAGES = frozenset({"tune", "evaluate"})

# tool name -> module with ``main(argv)``
TOOLS: dict[str, str] = {
    "predict": "superionic.classifier.predict",
    # the DVC stage `explore` (no arguments) and your own spaces (--spec / --host / --site)
    "explore": "superionic.explore.stage",
}


TRACK_TITLES = {
    "data": "data", "features": "data", "classifier": "classifier (Kang 2023)",
    "screening": "screening (Materials Project)", "nasicon": "NASICON (Ouyang 2021)", "md": "molecular dynamics",
    "reports": "summary",
}


def _summary(module: str) -> str:
    """First docstring line of a module, read without importing it (help stays instant)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    with open(spec.origin, encoding="utf-8") as source:
        doc = ast.get_docstring(ast.parse(source.read())) or ""
    line = doc.strip().splitlines()[0] if doc.strip() else ""
    # "Stage ``x``: what it does." / "Tune stage: ..." -> what it does
    head, sep, rest = line.partition(": ")
    return rest if sep and len(head) < 40 else line


def _help() -> str:
    from superionic import __version__

    groups: dict[str, list[str]] = {}
    for name, module in STAGES.items():
        groups.setdefault(TRACK_TITLES.get(module.split(".")[1], "other"), []).append(name)
    width = max(len(n) for n in [*STAGES, *TOOLS, "compose-params"]) + 2
    lines = [f"superionic {__version__}", "", "usage: superionic [--debug] COMMAND [options]   (superionic COMMAND -h)"]
    for title, names in groups.items():
        lines += ["", f"{title} stages:"] + [f"  {n:<{width}}{_summary(STAGES[n])}" for n in names]
    lines += ["", "tools:"] + [f"  {n:<{width}}{_summary(m)}" for n, m in TOOLS.items()]
    lines.append(f"  {'compose-params':<{width}}compose conf/ into params.yaml (what `dvc exp run` does)")
    return "\n".join(lines)


def _compose_params(argv: list[str]) -> int:
    from superionic.config import compose_raw, dump_params, validate

    parser = argparse.ArgumentParser(
        prog="superionic compose-params",
        description="Compose conf/ into params.yaml (what `dvc exp run` does before running).",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. dataset=xu")
    parser.add_argument("--output", default="params.yaml")
    args = parser.parse_args(argv)
    raw = compose_raw(args.overrides)
    validate(raw)
    dump_params(raw, args.output)
    print(f"wrote {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user error is one line on stderr (exit 2), its traceback only with --debug."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        return _dispatch(argv)
    except Exception as exc:
        if debug or not isinstance(exc, _user_errors()):
            raise
        message = _first_line(exc)
        if exc.__cause__ is not None:  # Hydra wraps the informative error
            message = f"{message} {_first_line(exc.__cause__)}"
        print(f"error: {message} (run with --debug for the traceback)", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can act on from one line: bad input, config, files, servers.

    Library exception classes are looked up only when their library was
    imported by the failing command, so `superionic --help` stays fast.
    """
    errors: list[type[BaseException]] = [ValueError, KeyError, OSError]
    for module, name in (("hydra.errors", "HydraException"), ("omegaconf.errors", "OmegaConfBaseException"),
                         ("mlflow.exceptions", "MlflowException")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _dispatch(argv: list[str]) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from superionic.stage import configure_process

    configure_process()
    commands = sorted([*STAGES, *TOOLS, "compose-params"])
    if not argv or argv[0] in {"-h", "--help"}:
        print(_help())
        return 0
    if argv[0] == "--version":
        from superionic import __version__

        print(f"superionic {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "compose-params":
        return _compose_params(rest)
    if command in TOOLS:
        return int(importlib.import_module(TOOLS[command]).main(rest) or 0)
    if command not in STAGES:
        print(f"unknown command {command!r}; choose from: {', '.join(commands)}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"superionic {command}")
    parser.add_argument("--params", default="params.yaml", help="resolved configuration")
    if command in PER_MODEL_STAGES:
        parser.add_argument("--model", required=True, help="one of classifier.model_names")
    args = parser.parse_args(rest)

    from superionic.config import load_params

    cfg = load_params(args.params)
    entry = stage_entry(command)
    if command in PER_MODEL_STAGES:
        if args.model not in cfg.classifier.model_names:
            raise ValueError(f"--model {args.model!r} is not in classifier.model_names {list(cfg.classifier.model_names)}")
        entry(cfg, args.model)
    else:
        entry(cfg)
    return 0


def stage_entry(command: str):
    """The ``run_stage`` of a stage command, refused when it is decorated with another stage's name."""
    from superionic.stage import stage_name

    entry = importlib.import_module(STAGES[command]).run_stage
    name = stage_name(entry)
    # None: a run_stage without @stage (tests/test_stage.py keeps every STAGES entry on the runner)
    if name is not None and name != command:
        raise RuntimeError(f"superionic {command} runs {STAGES[command]}.run_stage, which is stage {name!r}")
    return entry


if __name__ == "__main__":
    raise SystemExit(main())
