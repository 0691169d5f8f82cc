"""Where the parallel work runs: joblib's process pool here, or a dask.distributed cluster.

Feature extraction, per-cluster training and colorization hand their tasks to
`run`. By default `jobs` worker processes on this machine run them (joblib's
loky backend). Inside `backend("dask", ...)` joblib's dask backend sends them
to the workers of a dask.distributed cluster instead; the code that makes the
tasks does not change. There is no scheduler of our own.

Every worker must see the same files (inputs, outputs, features, model) at the
same paths: a shared file system on a real cluster.

joblib is imported when first needed (`run` with workers, the dask backend):
a worker process of `run_isolated` and a one-process colorize run never
import it (0.08 to 0.14 s of start-up each, measured with ``-X importtime``).
Nor does a one-process run import `multiprocessing.connection` (25 ms) or
`subprocess`, which only `run_isolated` and its workers use.
"""

import ctypes
import logging
import os
import signal
import sys
from contextlib import contextmanager

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
    try:  # lazy: dask.distributed is an optional extra, and slow to import
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("the dask backend needs dask.distributed: pip install 'deepcolor[dask]'") from None
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout=timeout or SCHEDULER_TIMEOUT)
        else:
            import dask  # lazy: installed with distributed, above

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
    from joblib import parallel_config  # lazy: see the module's docstring

    try:
        with parallel_config(backend="dask"):
            yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def using_dask():
    """True inside `backend("dask")`: tasks go to the cluster's workers."""
    if "joblib" not in sys.modules:  # no backend can be active: `backend` imports joblib
        return False
    from joblib.parallel import get_active_backend

    active, _ = get_active_backend()
    return type(active).__name__ == "DaskDistributedBackend"


def n_workers(jobs):
    """How many tasks run at once for `jobs`: the cluster's worker threads under dask."""
    from joblib import effective_n_jobs  # lazy: see the module's docstring

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
    from joblib import Parallel, delayed  # lazy: see the module's docstring

    dask = using_dask()
    # On a cluster every task goes to the scheduler at once: dispatching two per
    # worker at a time (joblib's default) left the workers idle a third of the
    # time, waiting for the round trip of each next task (docs/DESIGN.md).
    return Parallel(n_jobs=-1 if dask else jobs, pre_dispatch="all" if dask else "2*n_jobs",
                    return_as="generator" if ordered else "generator_unordered")(
        delayed(func)(*args) for args in tasks)


def worker_count(jobs):
    """Worker processes for `jobs`, joblib's rule without importing it: n > 0 is n, -1 all cores, -2 all but one.

    Raises
    ------
    ValueError
        `jobs` is 0.
    """
    if jobs == 0:
        raise ValueError("jobs must be a positive number of workers, or -1 for every core, got 0")
    return jobs if jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + jobs)


# glibc's mallopt parameters (malloc.h) and the ceiling of its own dynamic mmap threshold on 64 bits
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20


def set_malloc_thresholds():
    """Fix glibc's large-block thresholds of this process for array work: True if set (False: not glibc).

    glibc gives a block above its mmap threshold (128 KiB at first, then
    raised on the fly up to 32 MiB) its own mmap, faulted in page by page on
    every allocation, and hands free memory at the heap's top back to the
    system above its trim threshold. Colorizing allocates many temporary
    arrays of 0.1 to 10 MB per photo. Set once per process: the mmap
    threshold at 32 MiB (glibc's own ceiling), the trim threshold at twice
    that, so memory still goes back in large blocks.

    Measured on 40 BSDS500 photos in one process (cv2 and torch on one
    thread, 2 cores, load average below 1): 0.129 to 0.142 s per photo with
    the thresholds set against 0.148 to 0.155 s without, in 6 of 7
    alternating pairs. Under dask, whose nanny starts workers with
    ``MALLOC_TRIM_THRESHOLD_=65536`` (config
    ``distributed.nanny.pre-spawn-environ``, to hand memory back), glibc pins
    the mmap threshold at 128 KiB: 30 photos took 0.30 to 0.37 s each against
    0.16 to 0.24 s, and 0.16 to 0.17 s with this function called.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD))


# --- worker processes that end with this one --------------------------------------------

# The math libraries of each worker run on one thread, as dask's nanny sets them: the
# workers share the cores (a variable already set in the environment is kept).
WORKER_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def die_with_parent(parent_pid):
    """Make this process end when `parent_pid` (its parent) ends, however it ends (Linux).

    ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills this process when
    its parent dies, even by SIGKILL (an out-of-memory kill), so no worker
    goes on writing outputs that no record mentions. If the parent is already
    gone (it died before the call), this process exits at once.
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe ends the worker after its task
        pass
    if os.getppid() != parent_pid:
        os._exit(0)


def _worker_main():
    """A worker of `run_isolated`: ``python -c ... READ_FD WRITE_FD PARENT_PID``."""
    import pickle
    from multiprocessing.connection import Connection

    read_fd, write_fd, parent = (int(a) for a in sys.argv[1:4])
    die_with_parent(parent)
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    while True:
        try:
            message = inbox.recv()
        except (EOFError, OSError):
            return
        if message is None:  # done: end without the interpreter's teardown (its results are all sent)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        func, args = message
        try:
            result = (True, func(*args))
        except BaseException as exc:  # sent back and raised in the parent
            result = (False, exc)
        try:
            outbox.send(result)
        except (pickle.PicklingError, TypeError, AttributeError):
            outbox.send((False, RuntimeError(f"{type(result[1]).__name__}: {result[1]}")))
        except (BrokenPipeError, OSError):
            return


class _Worker:
    """One worker process of `run_isolated` and the task it has, if any."""

    def __init__(self):
        import subprocess
        from multiprocessing.connection import Connection

        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        code = "from deepcolor.parallel import _worker_main; _worker_main()"
        env = {**WORKER_ENVIRONMENT, **os.environ}
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(to_child_r), str(from_child_w),
                                      str(os.getpid())], pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                                     env=env)
        os.close(to_child_r)
        os.close(from_child_w)
        self.outbox = Connection(to_child_w, readable=False)
        self.inbox = Connection(from_child_r, writable=False)
        self.task = None
        self.retired = False

    def give(self, task):
        """Send `task`, (func, args), to the worker."""
        self.task = task
        self.outbox.send(task)

    def retire(self):
        """Tell the worker there is no more work: it ends on its own, while others finish theirs."""
        self.task = None
        if not self.retired:
            self.retired = True
            try:
                self.outbox.send(None)
            except OSError:
                pass

    def close(self, timeout=5.0):
        import subprocess

        self.retire()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.outbox.close()
        self.inbox.close()


def death_reason(returncode):
    """Words for how a worker process ended, from its exit status."""
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        more = " (out of memory?)" if -returncode == signal.SIGKILL else ""
        return f"the worker process was killed by {name}{more}"
    return f"the worker process ended unexpectedly (exit status {returncode})"


def run_isolated(func, tasks, jobs, on_death):
    """Results of ``func(*args)`` for each ``args`` in `tasks`, as each finishes, in `jobs` worker processes.

    Unlike joblib's pool, a worker that dies (killed by the out-of-memory
    killer, say) costs only the task it was running: that task's result is
    ``on_death(args, reason)``, a fresh worker takes its place and the other
    tasks go on. The workers end with this process, however it ends
    (`die_with_parent`), and each is a fresh Python (``python -c``, not a
    fork): it imports what `func` needs itself. No worker is started
    without a task for it, and a worker for which no task is left ends at
    once, while the others finish theirs.

    Parameters
    ----------
    func : callable
        A module-level function (pickled to the workers by name).
    tasks : iterable of tuple
    jobs : int
        Worker processes (-1: all cores).
    on_death : callable
        ``on_death(args, reason) -> result`` for a task whose worker died.

    Returns
    -------
    results : iterator
        Unordered. An exception raised by `func` in a worker is raised here.
    """
    from multiprocessing.connection import wait

    n = worker_count(jobs)
    pending = iter(tasks)
    upcoming = [next(pending, None)]  # the next task, or None: no worker is started for no task
    workers = []

    def feed(worker):
        """Give `worker` the next task; without one, retire it (it ends while the others finish)."""
        args = upcoming.pop()
        upcoming.append(next(pending, None))
        if args is None:
            worker.retire()
            return False
        worker.give((func, tuple(args)))
        return True

    try:
        while len(workers) < max(1, n) and upcoming[0] is not None:
            worker = _Worker()
            workers.append(worker)
            feed(worker)
        while any(w.task is not None for w in workers):
            busy = [w for w in workers if w.task is not None]
            ready = wait([w.inbox for w in busy])  # a dead worker's pipe reads as closed
            for worker in busy:
                if worker.inbox not in ready:
                    continue
                try:
                    ok, result = worker.inbox.recv()
                except (EOFError, OSError):  # the worker died with this task
                    worker.proc.wait()
                    args = worker.task[1]
                    reason = death_reason(worker.proc.returncode)
                    log.debug("worker %d: %s", worker.proc.pid, reason)
                    worker.close()
                    workers.remove(worker)
                    yield on_death(args, reason)
                    if upcoming[0] is not None:
                        fresh = _Worker()
                        workers.append(fresh)
                        feed(fresh)
                    continue
                if not ok:
                    raise result
                feed(worker)
                yield result
    finally:
        for worker in workers:
            worker.close()
