"""deepcolor.parallel without dask (issue 19): worker counts, workers' environment and imports, malloc thresholds.

The dask backend's tests are in test_parallel.py (they need dask.distributed).
"""

import platform
import sys
import time

import cv2
import pytest

from deepcolor import colorize, parallel


def _in_worker(expression):
    """The value of a Python expression evaluated in one `run_isolated` worker process."""
    (value,) = parallel.run_isolated(eval, [(expression,)], 1, lambda args, reason: reason)
    return value


@pytest.mark.parametrize("jobs, expected", [(1, 1), (3, 3), (-1, 4), (-2, 3), (-10, 1)])
def test_worker_count_unit(monkeypatch, jobs, expected):
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 4)
    assert parallel.worker_count(jobs) == expected


def test_worker_count_exception():
    with pytest.raises(ValueError, match="jobs must be a positive number of workers, or -1 for every core, got 0"):
        parallel.worker_count(0)


def test_run_isolated_workers_math_on_one_thread(monkeypatch):
    for name in parallel.WORKER_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    assert _in_worker("[__import__('os').environ[k] for k in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', "
                      "'MKL_NUM_THREADS')]") == ["1", "1", "1"]
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # a setting of the user's is kept
    assert _in_worker("__import__('os').environ['OMP_NUM_THREADS']") == "3"


def test_run_isolated_workers_import_neither_joblib_nor_torch():
    # A colorize worker's imports before it loads a model: deepcolor.colorize, with no joblib (0.1 s)
    # and no torch (1 s or more; a model that needs it loads it).
    assert _in_worker("[m in __import__('sys').modules for m in ('deepcolor.parallel', 'joblib')]") == [True, False]
    assert _in_worker("__import__('deepcolor.colorize') and "
                      "[m in __import__('sys').modules for m in ('joblib', 'torch')]") == [False, False]


def _counting_workers(monkeypatch):
    """Patch `parallel._Worker` to record the workers `run_isolated` starts; returns their list."""
    started = []

    class Worker(parallel._Worker):
        def __init__(self):
            super().__init__()
            started.append(self)

    monkeypatch.setattr(parallel, "_Worker", Worker)
    return started


def test_run_isolated_no_worker_without_a_task(monkeypatch):
    started = _counting_workers(monkeypatch)
    assert list(parallel.run_isolated(eval, [("6 * 7",)], 3, lambda args, reason: reason)) == [42]
    assert len(started) == 1
    assert list(parallel.run_isolated(eval, [], 3, lambda args, reason: reason)) == []
    assert len(started) == 1
    # a dead worker is replaced only if a task is left for its successor
    die = "__import__('os').kill(__import__('os').getpid(), 9)"
    assert list(parallel.run_isolated(eval, [(die,)], 2, lambda args, reason: "died")) == ["died"]
    assert len(started) == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads a process's state in /proc")
def test_run_isolated_idle_worker_ends_while_others_work(monkeypatch):
    """A worker left without a task ends at once, while another still works (the end of a batch)."""
    started = _counting_workers(monkeypatch)
    results = parallel.run_isolated(eval, [("__import__('time').sleep(3) or 'slow'",), ("'quick'",)], 2,
                                    lambda args, reason: reason)
    assert next(results) == "quick"
    (quick,) = [w for w in started if w.task is None]
    assert quick.retired and not started[0].retired  # the slow one still has its task
    deadline = time.monotonic() + 2.5
    while _state(quick.proc.pid) not in ("Z", None) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _state(quick.proc.pid) in ("Z", None)  # exited (a zombie until reaped) before the slow task ends
    assert started[0].task is not None
    assert list(results) == ["slow"]
    assert [w.proc.returncode for w in started] == [0, 0]


def _state(pid):
    """A process's state letter from /proc (Z: exited, not yet reaped), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_using_dask_without_joblib(monkeypatch):
    monkeypatch.delitem(sys.modules, "joblib", raising=False)
    assert parallel.using_dask() is False
    assert "joblib" not in sys.modules  # and it did not import it


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_set_malloc_thresholds_unit(monkeypatch):
    calls = []

    class Libc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(parallel.ctypes, "CDLL", lambda name: Libc())
    assert parallel.set_malloc_thresholds() is True
    assert calls == [(-3, 32 << 20), (-1, 64 << 20)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    # and glibc accepts them, in a worker started as dask's nanny starts its workers
    monkeypatch.undo()
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    assert _in_worker("__import__('deepcolor.parallel').parallel.set_malloc_thresholds()") is True


def test_set_malloc_thresholds_without_mallopt(monkeypatch):
    def no_libc(name):
        raise OSError("no C library")

    monkeypatch.setattr(parallel.ctypes, "CDLL", no_libc)
    assert parallel.set_malloc_thresholds() is False
    monkeypatch.setattr(parallel.ctypes, "CDLL", lambda name: object())  # a C library without mallopt
    assert parallel.set_malloc_thresholds() is False
    monkeypatch.setattr(parallel.ctypes, "CDLL", lambda name: type("Libc", (), {"mallopt": lambda s, p, v: 0})())
    assert parallel.set_malloc_thresholds() is False  # refused


def test_colorize_sets_malloc_thresholds_here(tiny_model_dir, tmp_path, tiny_scene, monkeypatch):
    from PIL import Image

    from deepcolor.color import rgb_to_gray_u8
    from deepcolor.ensemble import Model

    src = tmp_path / "g.png"
    Image.fromarray(rgb_to_gray_u8(tiny_scene(40, 33, 8))).save(src)
    calls = []
    monkeypatch.setattr(colorize, "set_malloc_thresholds", lambda: calls.append(1))
    (outcome,) = colorize.colorize_batch(Model.load(tiny_model_dir), None, [(src, tmp_path / "o.png")], quiet=True)
    assert outcome.status == "done" and calls == [1]


def test_set_torch_threads_only_when_loaded(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert colorize.set_torch_threads(1) is None
    assert "torch" not in sys.modules  # never imported for it

    class Torch:
        threads = 4

        def get_num_threads(self):
            return self.threads

        def set_num_threads(self, n):
            self.threads = n

    fake = Torch()
    monkeypatch.setitem(sys.modules, "torch", fake)
    assert colorize.set_torch_threads(1) == 4 and fake.threads == 1
    assert colorize.set_torch_threads(4) == 1 and fake.threads == 4


def test_worker_colorize_one_thread_per_worker(tiny_model_dir, tmp_path, tiny_scene, monkeypatch):
    # The first task of a worker loads the model, then puts OpenCV (and torch, if loaded) on one thread.
    from PIL import Image

    from deepcolor.color import rgb_to_gray_u8

    src = tmp_path / "g.png"
    Image.fromarray(rgb_to_gray_u8(tiny_scene(40, 33, 7))).save(src)
    threads = []
    monkeypatch.setattr(colorize, "_WORKER_MODELS", {})
    monkeypatch.setattr(colorize, "set_malloc_thresholds", lambda: threads.append("malloc"))
    monkeypatch.setattr(cv2, "setNumThreads", threads.append)
    monkeypatch.setattr(colorize, "set_torch_threads", lambda n: threads.append(("torch", n)))
    outcome = colorize._worker_colorize(tiny_model_dir, src, tmp_path / "out.png", False, None)
    assert outcome.status == "done" and threads == ["malloc", ("torch", 1), 1]
    colorize._worker_colorize(tiny_model_dir, src, tmp_path / "out2.png", False, None)
    assert threads == ["malloc", ("torch", 1), 1]  # once per worker: the model is cached


def test_load_colorizer_deepcolor_does_not_load_the_baselines(tiny_model_dir):
    # The baselines' estimator imports torch; deepcolor's model is loaded without it (its own
    # imports are its own business).
    assert _in_worker(f"__import__('deepcolor.colorize').colorize.load_colorizer({str(tiny_model_dir)!r}) and "
                      "'deepcolor.baselines.estimator' in __import__('sys').modules") is False
