"""Fan-out through Dask: a local cluster by default, a running scheduler or Slurm by config.

``cluster.kind`` (``conf/config.yaml``):

* ``local``: a ``LocalCluster`` of ``n_workers`` single-threaded worker
  processes on this machine (spawned, so torch and BLAS threads never fork);
* ``address``: connect to a scheduler that already runs (``cluster.address``,
  e.g. ``tcp://head-node:8786``, started with ``dask scheduler`` and
  ``dask worker`` on other machines);
* ``slurm``: a ``dask_jobqueue.SLURMCluster`` built from ``cluster.jobqueue``
  (queue, cores, memory, walltime, ...), scaled to ``n_workers`` jobs; needs
  ``pip install dask-jobqueue``.

Work is submitted in input order and gathered in input order, so results do
not depend on the cluster: every task carries its own seed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

KINDS = ("local", "address", "slurm")


@contextlib.contextmanager
def open_client(cluster: DictConfig, n_workers: int | None = None) -> Iterator[Any]:
    """A Dask client for ``cluster``; ``n_workers`` overrides ``cluster.n_workers`` for local and Slurm."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(WORKER_SETTINGS):
        yield from _open(cluster, n_workers, Client, LocalCluster)


# Long CPU-bound batch tasks: Dask's sampling profiler (every 10 ms) is of no use there.
WORKER_SETTINGS = {"distributed.worker.profile.enabled": False}


def _open(cluster: DictConfig, n_workers: int | None, Client: Any, LocalCluster: Any) -> Iterator[Any]:  # noqa: N803
    kind = str(cluster.kind)
    workers = int(n_workers or cluster.n_workers)
    if kind == "local":
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as local:
            with Client(local) as client:
                yield client
    elif kind == "address":
        if not cluster.address:
            raise ValueError("cluster.address must name a scheduler (e.g. tcp://host:8786) when cluster.kind=address")
        with Client(str(cluster.address), timeout=str(cluster.connect_timeout_s) + "s") as client:
            yield client
    elif kind == "slurm":
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError as exc:
            raise ValueError("cluster.kind=slurm needs `pip install dask-jobqueue`") from exc
        options = OmegaConf.to_container(cluster.jobqueue, resolve=True) or {}
        with SLURMCluster(**options) as slurm:
            slurm.scale(jobs=workers)
            with Client(slurm) as client:
                yield client
    else:
        raise ValueError(f"cluster.kind must be one of {KINDS}, got {kind!r}")


def map_in_order(client: Any, function: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]:
    """``[function(item, **shared) for item in items]`` on the cluster, results in input order.

    ``shared`` objects (a model, a config) are sent to the workers once.
    """
    # one future per shared object (a list is scattered element by element, hence the wrapping)
    scattered = {k: client.scatter([v], broadcast=True)[0] for k, v in shared.items()}
    futures = [client.submit(function, item, pure=False, **scattered) for item in items]
    return client.gather(futures)
