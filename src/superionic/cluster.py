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
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from superionic.config import ClusterKind

KINDS = tuple(k.value for k in ClusterKind)


WORKER_SETTINGS = {
    # Long CPU-bound batch tasks: Dask's sampling profiler (every 10 ms) is of no use there.
    "distributed.worker.profile.enabled": False,
    # Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, so glibc hands
    # freed memory back to the kernel at once; torch's many short-lived tensors then
    # pay an mmap/munmap each, and MLIP MD ran 2.6x slower per step (465 vs 180
    # ms/step; spawned processes given the same variable slowed down the same way).
    # None unsets it: workers keep glibc's default, like any other process.
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}


@contextlib.contextmanager
def open_client(cluster: DictConfig, n_workers: int | None = None) -> Iterator[Any]:
    """A Dask client for ``cluster``; ``n_workers`` overrides ``cluster.n_workers`` for local and Slurm."""
    import dask
    from distributed import Client, LocalCluster

    kind = str(cluster.kind)
    workers = int(n_workers or cluster.n_workers)
    client_options: dict[str, Any] = {}
    with dask.config.set(WORKER_SETTINGS), contextlib.ExitStack() as stack:
        if kind == "local":
            target = stack.enter_context(
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            )
        elif kind == "address":
            if not cluster.address:
                raise ValueError("cluster.address must name a scheduler (e.g. tcp://host:8786) when cluster.kind=address")
            target = str(cluster.address)
            client_options["timeout"] = f"{cluster.connect_timeout_s}s"
        elif kind == "slurm":
            try:
                from dask_jobqueue import SLURMCluster
            except ImportError as exc:
                raise ValueError("cluster.kind=slurm needs `pip install dask-jobqueue`") from exc
            target = stack.enter_context(SLURMCluster(**(OmegaConf.to_container(cluster.jobqueue, resolve=True) or {})))
            target.scale(jobs=workers)
        else:
            raise ValueError(f"cluster.kind must be one of {KINDS}, got {kind!r}")
        yield stack.enter_context(Client(target, **client_options))


def map_in_order(client: Any, function: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]:
    """``[function(item, **shared) for item in items]`` on the cluster, results in input order.

    ``shared`` objects (a model, a config) are sent to the workers once.
    """
    # one future per shared object (a list is scattered element by element, hence the wrapping)
    scattered = {k: client.scatter([v], broadcast=True)[0] for k, v in shared.items()}
    futures = [client.submit(function, item, pure=False, **scattered) for item in items]
    return client.gather(futures)
