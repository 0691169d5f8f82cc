"""Tests for `deepcolor.parallel` and the dask backend of features, train and colorize.

A `distributed.LocalCluster` of two worker processes (started once for the
module) stands in for a real cluster: the same tasks run there as with the
local process pool, and must give the same results.
"""

import os
import sys

import numpy as np
import pytest
from PIL import Image

from deepcolor import parallel, record
from deepcolor.color import rgb_to_gray_u8
from deepcolor.ensemble import Model

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 one-thread worker processes; its scheduler address."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as lc:
        yield lc.scheduler_address


# Worker tasks are builtins: this test module is imported by path (pytest's
# importlib mode), so worker processes could not unpickle its functions.


# --- backend / run ----------------------------------------------------------------


def test_run_here_is_in_process_and_lazy():
    calls = []

    def f(x):
        calls.append(x)
        return x * 2

    results = parallel.run(f, [(1,), (2,), (3,)], jobs=1)
    assert calls == []  # a generator: nothing runs before it is consumed
    assert list(results) == [2, 4, 6] and calls == [1, 2, 3]


def test_run_loky_workers_ordered():
    assert list(parallel.run(pow, [(i, 2) for i in range(6)], jobs=2)) == [0, 1, 4, 9, 16, 25]
    assert os.getpid() not in set(parallel.run(os.getpid, [()] * 4, jobs=2))


def test_run_unordered_gives_every_result():
    assert sorted(parallel.run(pow, [(i, 2) for i in range(6)], jobs=2, ordered=False)) == [0, 1, 4, 9, 16, 25]


def test_backend_loky_is_a_no_op():
    with parallel.backend("loky") as client:
        assert client is None and not parallel.using_dask()


def test_backend_dask_on_cluster_runs_on_its_workers(cluster):
    with parallel.backend("dask", cluster) as client:
        assert parallel.using_dask()
        assert parallel.n_workers(1) == 2  # the cluster's worker threads, whatever `jobs` says
        workers = set(client.run(os.getpid).values())
        assert list(parallel.run(pow, [(i, 2) for i in range(8)], jobs=1)) == [i * i for i in range(8)]
        pids = set(parallel.run(os.getpid, [()] * 8, jobs=1))
    assert pids <= workers and os.getpid() not in workers
    assert not parallel.using_dask()  # the backend ends with the block


def test_backend_dask_task_error_reaches_the_caller(cluster):
    with parallel.backend("dask", cluster):
        with pytest.raises(ValueError, match="invalid literal for int"):
            list(parallel.run(int, [("x3",)], jobs=2))


def test_backend_exception_unknown():
    with pytest.raises(ValueError, match="backend must be one of"):
        with parallel.backend("spark"):
            pass


def test_backend_exception_scheduler_without_dask():
    with pytest.raises(ValueError, match="needs the dask backend"):
        with parallel.backend("loky", "tcp://127.0.0.1:8786"):
            pass


def test_backend_exception_unreachable_scheduler():
    with pytest.raises(OSError, match=r"cannot reach the dask scheduler at tcp://127.0.0.1:9"):
        with parallel.backend("dask", "tcp://127.0.0.1:9", timeout=2):
            pass


def test_backend_exception_distributed_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'deepcolor\[dask\]'"):
        with parallel.backend("dask"):
            pass


# --- the commands on the cluster ------------------------------------------------


@pytest.fixture
def run_cli(run):
    """``run_cli(*argv)`` -> (return code, stderr) of ``deepcolor argv`` in-process."""
    def _run(*argv):
        rc, _, err = run(*argv)
        return rc, err

    return _run


def test_features_and_train_on_dask_match_local(run_cli, tmp_path, tiny_refs, config_toml, cluster,
                                                torch_one_thread):
    """Feature shards are byte-identical and the ensemble's clusters the same on the cluster as here."""
    refs = tmp_path / "refs"
    tiny_refs(refs)
    toml = config_toml
    for name, extra in (("local", ["--jobs", "2"]), ("dask", ["--backend", "dask", "--scheduler", cluster])):
        rc, err = run_cli("features", refs, "--out", tmp_path / name / "features", "--config", toml, "-q", *extra)
        assert rc == 0, err
        rc, err = run_cli("train", tmp_path / name / "features", "--out", tmp_path / name / "model",
                          "--config", toml, "-q", *extra)
        assert rc == 0, err
    shards = sorted(p.name for p in (tmp_path / "local" / "features" / "shards").iterdir())
    assert len(shards) == 6
    for name in shards:
        assert ((tmp_path / "local" / "features" / "shards" / name).read_bytes()
                == (tmp_path / "dask" / "features" / "shards" / name).read_bytes())
    local, dask = (Model.load(tmp_path / n / "model") for n in ("local", "dask"))
    assert [c["n_members"] for c in local.clusters] == [c["n_members"] for c in dask.clusters]
    for a, b in zip(local.networks, dask.networks, strict=True):  # same seeds, same data: the same weights
        for (name, x), (_, y) in zip(a.state().items(), b.state().items(), strict=True):
            assert np.array_equal(x, y), name
        assert np.array_equal(a.mean, b.mean) and np.array_equal(a.std, b.std)
    assert dask.info["jobs"] == 2


def test_colorize_on_dask_matches_local(run_cli, tmp_path, tiny_scene, tiny_model_dir, cluster):
    src = tmp_path / "grey"
    (src / "sub").mkdir(parents=True)
    for i, rel in enumerate(["a.png", "b.png", "sub/c.png"]):
        Image.fromarray(rgb_to_gray_u8(tiny_scene(40, 33, 500 + i))).save(src / rel)
    (src / "bad.png").write_bytes(b"not an image")
    rc_local, _ = run_cli("colorize", src, tmp_path / "local", "--model", tiny_model_dir, "--jobs", "2", "-q")
    rc_dask, err = run_cli("colorize", src, tmp_path / "dask", "--model", tiny_model_dir, "-q",
                           "--backend", "dask", "--scheduler", cluster)
    assert rc_local == rc_dask == 1  # bad.png failed in both
    assert "bad.png: not an image file that Pillow can read" in err
    for rel in ["a.png", "b.png", "sub/c.png"]:
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "local" / rel)),
                                      np.asarray(Image.open(tmp_path / "dask" / rel)))
    records = record.read_records(tmp_path / "dask" / record.COLORIZE_LOG)
    assert sorted((r["status"], os.path.basename(r["source"])) for r in records) == [
        ("done", "a.png"), ("done", "b.png"), ("done", "c.png"), ("failed", "bad.png")]


def test_colorize_dask_without_scheduler_starts_a_local_cluster(run_cli, tmp_path, tiny_scene, tiny_model_dir):
    src = tmp_path / "grey"
    src.mkdir()
    Image.fromarray(rgb_to_gray_u8(tiny_scene(40, 33, 510))).save(src / "a.png")
    rc, err = run_cli("colorize", src, tmp_path / "out", "--model", tiny_model_dir, "--backend", "dask",
                      "--jobs", "1", "-v")
    assert rc == 0, err
    assert "dask backend: 1 workers" in err
    assert (tmp_path / "out" / "a.png").is_file()


def test_colorize_exception_unreachable_scheduler(run_cli, tmp_path, tiny_scene, tiny_model_dir, monkeypatch):
    src = tmp_path / "grey"
    src.mkdir()
    Image.fromarray(rgb_to_gray_u8(tiny_scene(40, 33, 511))).save(src / "a.png")
    monkeypatch.setattr(parallel, "SCHEDULER_TIMEOUT", 2)
    rc, err = run_cli("colorize", src, tmp_path / "out", "--model", tiny_model_dir, "--backend", "dask",
                      "--scheduler", "tcp://127.0.0.1:9")
    assert rc == 2
    assert "ERROR: cannot reach the dask scheduler at tcp://127.0.0.1:9" in err
    assert not (tmp_path / "out" / "a.png").exists()


def test_colorize_exception_scheduler_without_dask_backend(run_cli, tmp_path, tiny_model_dir, grey_png):
    rc, err = run_cli("colorize", grey_png, tmp_path / "out", "--model", tiny_model_dir,
                      "--scheduler", "tcp://127.0.0.1:8786")
    assert rc == 2 and "needs the dask backend (--backend dask)" in err


@pytest.fixture
def grey_png(tmp_path, tiny_scene):
    path = tmp_path / "in" / "a.png"
    path.parent.mkdir()
    Image.fromarray(rgb_to_gray_u8(tiny_scene(40, 33, 512))).save(path)
    return path
