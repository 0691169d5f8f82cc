"""Where the parallel work runs: joblib's process pool here, or a dask.distributed cluster.

Feature extraction, per-cluster training and colorization hand their tasks to
`run`. By default `jobs` worker processes on this machine run them (joblib's
loky backend). Inside `backend("dask", ...)` joblib's dask backend sends them
to the workers of a dask.distributed cluster instead; the code that makes the
tasks does not change. There is no scheduler of our own.

Every worker must see the same files (inputs, outputs, features, model) at the
same paths: a shared file system on a real cluster.
"""

import logging
import os
from contextlib import contextmanager

from joblib import Parallel, delayed, effective_n_jobs, parallel_config

log = logging.getLogger(__name__)

BACKENDS = ("loky", "dask")
SCHEDULER_TIMEOUT = 30  # seconds to wait for a dask scheduler


@contextmanager
def backend(name="loky", scheduler=None, n_workers=None, timeout=None):
    """Run the `run` calls inside the block on `name`.

    Parameters
    ----------
    name : {"loky", "dask"}
        "loky": worker processes on this machine (each call's `jobs`).
        "dask": the workers of a dask.distributed cluster.
    scheduler : str, optional
        Address of a running dask scheduler ("tcp://host:8786"). Without one,
        "dask" starts a `distributed.LocalCluster` of `n_workers` one-thread
        worker processes for the block (for trying the backend on one machine).
    n_workers : int, optional
        Workers of that local cluster (default: the CPU count).
    timeout : float, optional
        Seconds to wait for the scheduler (default `SCHEDULER_TIMEOUT`).

    Yields
    ------
    client : distributed.Client or None
        None for "loky".

    Raises
    ------
    ValueError
        An unknown backend, or a scheduler given for "loky".
    ImportError
        "dask" without dask.distributed installed (``pip install 'deepcolor[dask]'``).
    OSError
        The scheduler cannot be reached.
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "loky":
        if scheduler:
            raise ValueError("a scheduler address needs the dask backend (--backend dask)")
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("the dask backend needs dask.distributed: pip install 'deepcolor[dask]'") from None
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout=timeout or SCHEDULER_TIMEOUT)
        else:
            import dask

            # The workers' statistical profiler (a stack sample every 10 ms) slowed
            # colorizing by a quarter on 2 cores; the local cluster runs without it.
            with dask.config.set({"distributed.worker.profile.enabled": False}):
                cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1,
                                       dashboard_address=None)
            client = Client(cluster)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise OSError(f"cannot reach the dask scheduler at {scheduler} ({type(exc).__name__}: {exc})") from None
    log.info("dask backend: %d workers (%s)", len(client.scheduler_info()["workers"]), client.scheduler.address)
    try:
        with parallel_config(backend="dask"):
            yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def using_dask():
    """True inside `backend("dask")`: tasks go to the cluster's workers."""
    from joblib.parallel import get_active_backend

    active, _ = get_active_backend()
    return type(active).__name__ == "DaskDistributedBackend"


def n_workers(jobs):
    """How many tasks run at once for `jobs`: the cluster's worker threads under dask."""
    return effective_n_jobs(-1 if using_dask() else jobs)


def run(func, tasks, jobs=1, ordered=True):
    """Results of ``func(*args)`` for each ``args`` in `tasks`, as they come.

    Parameters
    ----------
    func : callable
        A module-level function (it is pickled to the workers).
    tasks : iterable of tuple
    jobs : int
        Worker processes on this machine (-1: all cores); 1 runs every task in
        this process. Ignored under the dask backend, which uses every worker.
    ordered : bool
        Yield in the order of `tasks` (else as each finishes).

    Returns
    -------
    results : iterator
    """
    if jobs == 1 and not using_dask():
        return (func(*args) for args in tasks)
    dask = using_dask()
    # On a cluster every task goes to the scheduler at once: dispatching two per
    # worker at a time (joblib's default) left the workers idle a third of the
    # time, waiting for the round trip of each next task (docs/DESIGN.md).
    return Parallel(n_jobs=-1 if dask else jobs, pre_dispatch="all" if dask else "2*n_jobs",
                    return_as="generator" if ordered else "generator_unordered")(
        delayed(func)(*args) for args in tasks)
