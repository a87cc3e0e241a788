"""The stage runner: one decorator around every stage's ``run_stage(cfg)``, progress lines, warning filters.

``@stage("thermo", sections=["data_dir", "screen"])`` opens the stage's MLflow
run (:func:`superionic.tracking.stage_run`: tags, params, config.yaml),
times the body and logs the wall time as the MLflow metric
``stage.wall_s`` (never into a file), then logs the :class:`StageResult`
the body returns (metrics and artefacts). A stage that needs more (nested
runs, an MLflow model) makes those calls in its body, inside the open run.

Like :mod:`superionic.tracking`, this module writes nothing DVC tracks: it
logs to MLflow and to ``logging`` only, and :func:`progress` hands every item
on unchanged and in order.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

WALL_METRIC = "stage.wall_s"


@dataclass(frozen=True)
class StageResult:
    """What a stage hands the runner to log: numeric entries of ``metrics`` (nested allowed) and files/folders."""

    metrics: Mapping[str, Any] = field(default_factory=dict)
    artifacts: Sequence[str | Path] = ()


def stage(name: str, sections: Sequence[str] | None = None) -> Callable[[Callable[[Any], StageResult | None]],
                                                                         Callable[[Any], StageResult | None]]:
    """Decorate a stage's ``run_stage(cfg)``: MLflow run named ``name``, wall time, returned metrics/artefacts.

    ``sections``: the config sections logged as params (see ``stage_run``).
    The wrapper carries ``stage_name`` so the CLI can check a command runs
    the stage it names.
    """

    def decorate(body: Callable[[Any], StageResult | None]) -> Callable[[Any], StageResult | None]:
        @functools.wraps(body)
        def run(cfg: Any, *item: str) -> StageResult | None:
            from superionic.tracking import log_artifacts, log_metrics, stage_run

            # a DVC matrix stage (tune@gb) passes its item: the run is named tune-gb
            run_name = "-".join([name, *item])
            with stage_run(name, cfg, sections=None if sections is None else list(sections), run_name=run_name):
                start = time.perf_counter()
                result = body(cfg, *item)
                wall = time.perf_counter() - start
                if result is not None:
                    if not isinstance(result, StageResult):
                        raise TypeError(f"stage {name!r} returned {type(result).__name__}, not StageResult or None")
                    log_metrics(result.metrics)
                    log_artifacts(list(result.artifacts))
                log_metrics({WALL_METRIC: wall})
            log.info("%s: done in %s", run_name, format_duration(wall))
            return result

        run.stage_name = name  # type: ignore[attr-defined]
        return run

    return decorate


def stage_name(entry: Callable[..., Any]) -> str | None:
    """The stage name a ``run_stage`` was decorated with, None if it was not."""
    return getattr(entry, "stage_name", None)


# --- progress -------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """h:mm:ss for log lines; '?' while there is nothing to extrapolate from."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    total = int(round(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def progress_line(label: str, done: int, total: int | None, elapsed_s: float, unit: str = "step",
                  resumed_at: tuple[int, float] = (0, 0.0)) -> str:  # fmt: skip
    """'<label>: <unit> done/total (pct), elapsed, ETA' with the ETA from the mean rate so far.

    Without a total: '<label>: <unit> done, elapsed'. An empty ``unit`` leaves the word out.
    Work continued from an earlier invocation gives ``resumed_at`` (done, elapsed_s) where
    this one began: the ETA then comes from this invocation's rate, not the earlier one's.
    """
    head = f"{label}: {unit} " if unit else f"{label}: "
    if total is None:
        return f"{head}{done}, elapsed {format_duration(elapsed_s)}"
    done_here, elapsed_here = done - resumed_at[0], elapsed_s - resumed_at[1]
    eta = elapsed_here / done_here * (total - done) if done_here > 0 else math.inf
    return (f"{head}{done}/{total} ({100.0 * done / max(total, 1):.0f}%), "
            f"elapsed {format_duration(elapsed_s)}, ETA {format_duration(eta)}")  # fmt: skip


def progress(
    items: Iterable[T],
    total: int | None = None,
    label: str = "progress",
    every_s: float = 30.0,
    unit: str = "",
    logger: logging.Logger | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[T]:
    """Yield ``items`` unchanged, logging 'label: done/total (pct), elapsed, ETA' at most every ``every_s``.

    An item counts as done when the consumer asks for the next one, so the
    rate covers the consumer's work. The line after the last item is always
    logged (not when the consumer stops early or fails). ``total`` defaults
    to ``len(items)`` where there is one; ``clock`` is injectable for tests.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    logger = logger or log
    start = last = clock()
    done = 0
    for item in items:
        yield item
        done += 1
        now = clock()
        if now - last >= every_s and done != total:
            logger.info(progress_line(label, done, total, now - start, unit))
            last = now
    logger.info(progress_line(label, done, total, clock() - start, unit))


# --- warnings --------------------------------------------------------------------

# Third-party warnings that say nothing about our results, filtered once when the
# CLI starts (category, message regex, module regex). Keep warnings that could
# mean a wrong number (convergence, NaN, dtype, deprecated behaviour we rely on).
KNOWN_NOISE: tuple[tuple[type[Warning], str, str], ...] = (
    # CHGNet builds its batch volumes with torch.tensor(list of tensors) (chgnet/model/model.py):
    # torch notes the copy and the dropped gradient on every MD step. The volume only divides
    # the stress; that is CHGNet's own released behaviour, the same in every run.
    (UserWarning, r"To copy construct from a tensor, it is recommended", r"chgnet\."),
    (UserWarning, r"Converting a tensor with requires_grad=True to a scalar", r"chgnet\."),
)
# Deliberately not here: ASE's FutureWarning that Langevin(fixcm=True) does not strictly
# sample NVT (it is about the ensemble the MD samples), and the feature code's own
# local filters (features/composition.py, cd145.py, lithium.py, li_sublattice.py,
# explore/space.py), which are scoped to one call and say why.


LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def configure_process() -> None:
    """INFO log lines on stderr and the known-noise filters, once per process.

    The CLI calls it at start-up, and each worker process that runs stage code
    (Dask workers start with neither, so their progress lines would be lost).
    """
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    filter_known_warnings()


def filter_known_warnings() -> None:
    """Install :data:`KNOWN_NOISE` as 'ignore' filters (called once by ``superionic.cli.main``)."""
    for category, message, module in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
