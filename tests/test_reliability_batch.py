"""Nothing silent in a batch (issue 13, items 2, 4, 6, 7, 8).

Every file accounted for (OUT equal to or around IN, unreadable and symlinked
sub-folders, every readable format, non-images recorded), a batch that
survives a dead worker and workers that die with their parent, options that
are applied or refused, and writes confined to OUT whatever symlinks are
planted there.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from deepcolor import parallel, record
from deepcolor.cli.common import setup_logging
from deepcolor.color import rgb_to_gray_u8

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _save(path, image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, **kwargs)
    return path


def _grey(tiny_scene, seed, h=40, w=36):
    return rgb_to_gray_u8(tiny_scene(h, w, seed))


def _errors(err):
    return [line for line in err.splitlines() if line.startswith("ERROR: ")]


def _records(out):
    return record.read_records(out / record.COLORIZE_LOG)


# --- item 2: work silently not done -------------------------------------------------------


def test_colorize_exception_out_is_in(run, tmp_path, tiny_scene, tiny_model_dir):
    src = tmp_path / "scans"
    _save(src / "a.png", _grey(tiny_scene, 1))
    rc, _, err = run("colorize", src, src, "--model", tiny_model_dir, "-q")
    assert rc == 2 and "OUT is the input folder itself" in err
    assert sorted(p.name for p in src.iterdir()) == ["a.png"]


def test_colorize_in_inside_out(run, tmp_path, tiny_scene, tiny_model_dir, monkeypatch):
    """``deepcolor colorize scans .``: the inputs lie inside OUT and are colorized."""
    _save(tmp_path / "scans" / "a.png", _grey(tiny_scene, 2))
    _save(tmp_path / "scans" / "sub" / "b.png", _grey(tiny_scene, 3))
    monkeypatch.chdir(tmp_path)
    rc, _, err = run("colorize", "scans", ".", "--model", tiny_model_dir, "-q")
    assert rc == 0, err
    assert (tmp_path / "a.png").is_file() and (tmp_path / "sub" / "b.png").is_file()
    assert "colorize: 2 colorized" in err
    rc, _, err = run("colorize", tmp_path / "scans", tmp_path, "--model", tiny_model_dir, "-q")
    assert rc == 0 and "colorize: 0 colorized, 2 skipped (existing)" in err


def test_colorize_unreadable_subfolder_named(run, tmp_path, tiny_scene, tiny_model_dir, monkeypatch):
    src = tmp_path / "in"
    _save(src / "a.png", _grey(tiny_scene, 4))
    locked = src / "locked"
    _save(locked / "b.png", _grey(tiny_scene, 5))
    real_scandir = os.scandir

    def scandir(path="."):  # as a chmod 000 folder answers (root reads one anyway)
        if os.fspath(path) == os.fspath(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    rc, _, err = run("colorize", src, tmp_path / "out", "--model", tiny_model_dir, "-q")
    assert rc == 1
    assert _errors(err) == [f"ERROR: {locked}: cannot read the folder (Permission denied); its files are not "
                            f"colorized"]
    assert "colorize: 1 colorized, 0 skipped (existing), 1 failed" in err
    assert any(r["status"] == "failed" and r["source"] == str(locked) for r in _records(tmp_path / "out"))


def test_colorize_symlinked_subfolder_named(run, tmp_path, tiny_scene, tiny_model_dir):
    src = tmp_path / "in"
    _save(src / "a.png", _grey(tiny_scene, 6))
    _save(tmp_path / "elsewhere" / "b.png", _grey(tiny_scene, 7))
    os.symlink(tmp_path / "elsewhere", src / "linked")
    rc, _, err = run("colorize", src, tmp_path / "out", "--model", tiny_model_dir, "-q")
    assert rc == 1
    assert _errors(err) == [f"ERROR: {src / 'linked'}: a symlink to a folder, not followed; give the folder it "
                            f"points to as IN to colorize it"]


def test_colorize_every_readable_format_in_a_folder(run, tmp_path, tiny_scene, tiny_model_dir):
    """GIF, PGM, JPEG 2000, TGA, ... are taken from a folder as when given one by one; a PNG without a
    suffix is found by its content; other files are recorded as not images."""
    src = tmp_path / "in"
    grey = _grey(tiny_scene, 8)
    names = ["a.gif", "b.pgm", "c.jp2", "d.tga", "e.pcx", "f.PPM", "g.jpe"]
    formats = {".gif": "GIF", ".pgm": "PPM", ".jp2": "JPEG2000", ".tga": "TGA", ".pcx": "PCX", ".ppm": "PPM",
               ".jpe": "JPEG"}
    for name in names:
        _save(src / name, grey, format=formats[os.path.splitext(name)[1].lower()])
    _save(src / "scan001", grey, format="PNG")
    (src / "notes.txt").write_text("box 3, 1962\n")
    (src / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    _save(src / ".cache" / "thumb.png", grey)
    out = tmp_path / "in" / "out"  # OUT inside IN: its own files are not accounted as IN's
    rc, _, err = run("colorize", src, out, "--model", tiny_model_dir, "-q")
    assert rc == 0, err
    for name in names + ["scan001"]:
        assert (out / (os.path.splitext(name)[0] + ".png")).is_file(), name
    assert f"colorize: {len(names) + 1} colorized, 0 skipped (existing), 0 failed, 3 ignored (not images, " \
        f"hidden) in" in err
    ignored = {os.path.basename(r["source"]): r["message"] for r in _records(out) if r["status"] == "ignored"}
    assert sorted(ignored) == [".DS_Store", ".cache", "notes.txt"]
    assert "a hidden folder (its name starts with '.'); not searched; left alone" in ignored[".cache"]
    rc, _, err = run("colorize", src, out, "--model", tiny_model_dir, "-q")  # a rerun: the same three
    assert "3 ignored (not images, hidden)" in err


# --- item 4: a batch that survives a dead worker; workers that end with their parent ------------


def test_run_isolated_worker_death_fails_only_its_task():
    """A worker killed by SIGKILL (as by the out-of-memory killer) costs its task only; the rest go on."""
    die = "__import__('os').kill(__import__('os').getpid(), 9)"
    tasks = [("1 + 1",), (die,), ("3 * 3",), ("4 * 4",), ("5 * 5",)]
    results = list(parallel.run_isolated(eval, tasks, 2, lambda args, reason: (args[0], reason)))
    assert sorted(r for r in results if isinstance(r, int)) == [2, 9, 16, 25]
    assert [r for r in results if isinstance(r, tuple)] == [
        (die, "the worker process was killed by SIGKILL (out of memory?)")]


def test_run_isolated_exception_raised_here():
    with pytest.raises(ZeroDivisionError):
        list(parallel.run_isolated(eval, [("1 / 0",)], 2, lambda args, reason: None))


def _big_inputs(folder, tiny_scene, n, size=(500, 700)):
    import cv2

    for i in range(n):
        small = _grey(tiny_scene, 60 + i, 40, 60)
        _save(folder / f"p{i:02d}.png", cv2.resize(small, size[::-1], interpolation=cv2.INTER_CUBIC))
    return folder


def _cmd(src, out, model, jobs):
    return [sys.executable, "-m", "deepcolor", "colorize", str(src), str(out), "--model", str(model), "-q",
            "--jobs", str(jobs)]


def _workers_of(pid):
    """Pids of the worker processes whose parent is `pid` (a multiprocessing resource tracker is no worker)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if ppid == pid and b"resource_tracker" not in cmdline:
            found.append(int(entry))
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(predicate, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the worker processes")
def test_colorize_worker_killed_fails_one_file(tmp_path, tiny_scene, tiny_model_dir):
    src = _big_inputs(tmp_path / "in", tiny_scene, 8)
    out = tmp_path / "out"
    proc = subprocess.Popen(_cmd(src, out, tiny_model_dir, 2), stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: out.is_dir() and any(out.glob("*.png")), 120), "no output in 120 s"
        workers = _workers_of(proc.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    errors = _errors(err)
    assert proc.returncode == 1, err
    assert len(errors) == 1 and "the worker process was killed by SIGKILL (out of memory?) while colorizing " \
        "it" in errors[0], err
    assert "colorize: 7 colorized, 0 skipped (existing), 1 failed in" in err
    assert "Traceback" not in err
    assert len(list(out.glob("*.png"))) == 7
    assert sorted(r["status"] for r in _records(out)) == ["done"] * 7 + ["failed"]


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the worker processes")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("jobs", [1, 2])
def test_colorize_main_killed_workers_end_then_rerun(tmp_path, tiny_scene, tiny_model_dir, sig, jobs):
    """The main process killed: its workers end with it, every output present is whole, a rerun finishes."""
    src = _big_inputs(tmp_path / "in", tiny_scene, 6, (300, 420))
    out = tmp_path / "out"
    proc = subprocess.Popen(_cmd(src, out, tiny_model_dir, jobs), stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: out.is_dir() and any(out.glob("*.png")), 120), "no output in 120 s"
        workers = _workers_of(proc.pid)
        assert len(workers) == (2 if jobs == 2 else 0), workers
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert _wait_for(lambda: not any(_alive(w) for w in workers), 10), "workers outlived their parent"
    time.sleep(0.3)
    snapshot = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    time.sleep(1.0)  # nothing goes on writing
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == snapshot
    for path in out.glob("*.png"):
        with Image.open(path) as img:
            img.load()
    final = subprocess.run(_cmd(src, out, tiny_model_dir, jobs), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert sorted(p.name for p in out.glob("*.png")) == [f"p{i:02d}.png" for i in range(6)]
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]


# --- item 6: options applied or refused ------------------------------------------------------


def test_colorize_exception_config_missing(run, tmp_path, tiny_scene, tiny_model_dir):
    src = _save(tmp_path / "in" / "a.png", _grey(tiny_scene, 20)).parent
    rc, _, err = run("colorize", src, tmp_path / "out", "--model", tiny_model_dir, "--config",
                     tmp_path / "missing.toml", "-q")
    assert rc == 2 and "missing.toml: cannot read settings file" in err
    assert not (tmp_path / "out" / "a.png").exists()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_colorize_config_refine_applied(run, tmp_path, tiny_scene, tiny_model_dir, jobs):
    src = _save(tmp_path / "in" / "a.png", _grey(tiny_scene, 21, 60, 52)).parent
    run("colorize", src, tmp_path / "plain", "--model", tiny_model_dir, "-q")
    toml = tmp_path / "r.toml"
    toml.write_text("[refine]\nenabled = false\n[train]\nhidden = 8\n")
    rc, _, err = run("colorize", src, tmp_path / "off", "--model", tiny_model_dir, "--config", toml,
                     "--jobs", jobs, "-q")
    assert rc == 0, err
    assert "[train] not applied: fixed when the model was trained" in err
    plain = np.asarray(Image.open(tmp_path / "plain" / "a.png"))
    off = np.asarray(Image.open(tmp_path / "off" / "a.png"))
    assert not np.array_equal(plain, off)  # the refinement was switched off
    from deepcolor.colorize import colorize_luma
    from deepcolor.refine.config import RefineConfig
    from deepcolor.ensemble import Model

    model = Model.load(tiny_model_dir)
    model.refine_config = RefineConfig(enabled=False)
    grey = np.asarray(Image.open(src / "a.png")).astype(np.float32) / 255
    np.testing.assert_array_equal(off, colorize_luma(model, grey))


def test_colorize_exception_config_refine_absurd(run, tmp_path, tiny_scene, tiny_model_dir):
    src = _save(tmp_path / "in" / "a.png", _grey(tiny_scene, 22)).parent
    toml = tmp_path / "r.toml"
    toml.write_text("[refine]\ndiameter = 4001\n")
    rc, _, err = run("colorize", src, tmp_path / "out", "--model", tiny_model_dir, "--config", toml, "-q")
    assert rc == 2 and "[refine] diameter = 4001 is above 99" in err


# --- item 7: names ------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [240, 241, 250, 255])
def test_colorize_long_output_names(run, tmp_path, tiny_scene, tiny_model_dir, length):
    src = tmp_path / "in"
    name = "n" * (length - 4) + ".png"
    _save(src / name, _grey(tiny_scene, 30))
    out = tmp_path / "out"
    out.mkdir()
    from deepcolor.files import partial_name_prefix

    stale = out / f"{partial_name_prefix(name)}0a1b2c3d.part"  # a killed run's temporary file
    stale.write_bytes(b"x")
    rc, _, err = run("colorize", src, out, "--model", tiny_model_dir, "-q")
    assert rc == 0, err
    assert (out / name).is_file() and not stale.exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]


def test_colorize_newline_in_name_one_line(run, tmp_path, tiny_scene, tiny_model_dir):
    src = tmp_path / "in"
    _save(src / "good\nname.png", _grey(tiny_scene, 31))
    (src / "bad\nname.png").write_bytes(b"")
    (src / "esc\x1b[2J.png").write_text("not an image")
    out = tmp_path / "out"
    rc, _, err = run("colorize", src, out, "--model", tiny_model_dir, "-q")
    assert rc == 1
    lines = err.splitlines()
    assert f"ERROR: {src}/bad\\nname.png: empty file (0 bytes)" in lines
    assert f"ERROR: {src}/esc\\x1b[2J.png: not an image file that Pillow can read" in lines
    assert "\x1b" not in err
    assert (out / "good\nname.png").is_file()
    assert {r["source"] for r in _records(out)} == {str(src / n) for n in ("good\nname.png", "bad\nname.png",
                                                                          "esc\x1b[2J.png")}


# --- item 8: symlinks in OUT ---------------------------------------------------------------------


def test_colorize_symlinked_folder_in_out_not_followed(run, tmp_path, tiny_scene, tiny_model_dir):
    src = tmp_path / "in"
    _save(src / "sub" / "a.png", _grey(tiny_scene, 40))
    _save(src / "b.png", _grey(tiny_scene, 41))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".a.png.0a1b2c3d.part").write_bytes(b"not ours to delete")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / "sub")
    rc, _, err = run("colorize", src, out, "--model", tiny_model_dir, "-q")
    assert rc == 1
    assert _errors(err) == [f"ERROR: {src / 'sub' / 'a.png'}: {out / 'sub'} is a symlink or not a folder; "
                            f"deepcolor writes only inside OUT and does not follow symlinks there: "
                            f"{out / 'sub' / 'a.png'}"] or \
        len(_errors(err)) == 1 and "is a symlink or not a folder" in err
    assert sorted(p.name for p in outside.iterdir()) == [".a.png.0a1b2c3d.part"]
    assert (out / "b.png").is_file()


@pytest.mark.parametrize("overwrite", [False, True])
def test_colorize_symlinked_output_not_followed(run, tmp_path, tiny_scene, tiny_model_dir, overwrite):
    src = tmp_path / "in"
    _save(src / "a.png", _grey(tiny_scene, 42))
    target = tmp_path / "precious.png"
    target.write_bytes(b"keep")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(target, out / "a.png")
    rc, _, err = run("colorize", src, out, "--model", tiny_model_dir, "-q", *(["--overwrite"] if overwrite else []))
    assert rc == 1
    assert "the output" in err and "is a symlink; deepcolor writes only inside OUT" in err
    assert target.read_bytes() == b"keep" and (out / "a.png").is_symlink()


def test_colorize_exception_symlinked_record(run, tmp_path, tiny_scene, tiny_model_dir):
    src = tmp_path / "in"
    _save(src / "a.png", _grey(tiny_scene, 43))
    target = tmp_path / "elsewhere.log"
    target.write_text("mine\n")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(target, out / record.COLORIZE_LOG)
    rc, _, err = run("colorize", src, out, "--model", tiny_model_dir, "-q")
    assert rc == 2 and "deepcolor appends its record only to a regular file inside OUT" in err
    assert target.read_text() == "mine\n"
    assert not (out / "a.png").exists()


def test_append_record_exception_symlink(tmp_path):
    from deepcolor.colorize import Outcome

    target = tmp_path / "elsewhere.log"
    target.write_text("")
    os.symlink(target, tmp_path / "rec.jsonl")
    with pytest.raises(OSError):
        record.append_record(tmp_path / "rec.jsonl", Outcome("a", "b", "done"))
    assert target.read_text() == ""


def test_quiet_silences_libraries_info_logs(capsys):
    """-q: dask.distributed sets its loggers to INFO itself; the handler's level keeps them quiet."""
    import logging

    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    lib = logging.getLogger("distributed.scheduler")
    lib_level = lib.level
    lib.setLevel(logging.INFO)
    try:
        setup_logging(verbose=False, quiet=True)
        lib.info("State start")
        lib.warning("a real warning")
        err = capsys.readouterr().err
    finally:
        lib.setLevel(lib_level)
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in before:
            root.addHandler(h)
        root.setLevel(level)
    assert "State start" not in err and "WARNING: a real warning" in err


def test_colorize_fifo_and_multiframe(run, tmp_path, tiny_scene, tiny_model_dir):
    """A FIFO named like an image is refused without blocking; a multi-page file is colorized with a note."""
    src = tmp_path / "in"
    g = _grey(tiny_scene, 50)
    src.mkdir()
    os.mkfifo(src / "pipe.png")
    frames = [Image.fromarray(g), Image.fromarray(255 - g)]
    frames[0].save(src / "pages.tif", save_all=True, append_images=frames[1:])
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    out = tmp_path / "out"
    rc, _, err = run("colorize", src, out, "--model", tiny_model_dir, "-q")
    assert rc == 1
    assert _errors(err) == [f"ERROR: {src / 'pipe.png'}: not a regular file (a FIFO); not read"]
    notes = {os.path.basename(r["source"]): r["message"] for r in _records(out) if r["status"] == "done"}
    assert "2 frames or pages; the first alone is colorized" in notes["pages.tif"]
    assert "2 frames or pages; the first alone is colorized" in notes["anim.gif"]


def test_colorize_exception_out_is_a_file(run, tmp_path, tiny_scene, tiny_model_dir):
    src = tmp_path / "in"
    _save(src / "a.png", _grey(tiny_scene, 51))
    (tmp_path / "out").write_text("a file")
    rc, _, err = run("colorize", src, tmp_path / "out", "--model", tiny_model_dir, "-q")
    assert rc == 2 and "OUT exists and is not a folder" in err
