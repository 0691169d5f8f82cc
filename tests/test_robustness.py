"""Bad input and killed runs: `deepcolor colorize` on a corpus of broken files the tests make.

The batch must not crash: one clear line per bad file on stderr, every good
file colorized (keeping its bit depth and alpha), a summary, exit status 1.
A run killed at random points and rerun leaves every output complete, valid,
and equal to an uninterrupted run's.
"""

import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from deepcolor import record
from deepcolor.color import rgb_to_gray_u8
from deepcolor.files import display_path


def _save(path, image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, **kwargs)
    return path


def _huge_png(path, width, height):
    """A valid 8x8 grey PNG whose header (IHDR, CRC fixed) declares width x height."""
    _save(path, np.zeros((8, 8), np.uint8))
    data = bytearray(path.read_bytes())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))
    return path


def _with_exif_orientation(stored, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _issue13_good(src, grey):
    """Files of issue 13 that must be colorized (the right way up, at their bit depth)."""
    import cv2
    import tifffile

    from deepcolor.images.png import encode_png

    g = grey[0]  # (40, 36)
    files = {}
    # raw 8-bit TIFF of orientation 6: stored turned, shown 40 x 36 (Pillow 13 scrambled it)
    files["raw_o6.tif"] = _save(src / "raw_o6.tif", np.ascontiguousarray(np.rot90(g, 1)), tiffinfo={274: 6})
    # 16-bit RGB TIFF of orientation 3 (OpenCV turned it twice)
    rgb16 = np.repeat(g[..., None], 3, axis=2).astype(np.uint16) * 257
    tifffile.imwrite(src / "deep16_o3.tif", np.ascontiguousarray(rgb16[::-1, ::-1]), photometric="rgb",
                     extratags=[(274, "H", 1, 3, True)])
    files["deep16_o3.tif"] = src / "deep16_o3.tif"
    # 16-bit RGB PNG whose eXIf (orientation 6) follows the pixels
    png = cv2.imencode(".png", np.ascontiguousarray(np.rot90(rgb16, 1)))[1].tobytes()
    tiff = _with_exif_orientation(None, 6).tobytes()
    tiff = tiff[6:] if tiff.startswith(b"Exif") else tiff
    chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
    iend = png.rindex(b"IEND") - 4
    (src / "late_exif16.png").write_bytes(png[:iend] + chunk + png[iend:])
    files["late_exif16.png"] = src / "late_exif16.png"
    # formats read one by one, now taken from a folder too; a PNG without a suffix
    files["anim.gif"] = _save(src / "anim.gif", g)
    files["portable.pgm"] = _save(src / "portable.pgm", g)
    files["jpeg2000.jp2"] = _save(src / "jpeg2000.jp2", g)
    files["scan001"] = _save(src / "scan001", g, format="PNG")
    # a bad checksum in a text chunk: the pixels are intact (read by OpenCV, with a warning)
    data = encode_png(np.repeat(g[..., None], 3, axis=2))
    text = b"Comment\x00box 3"
    bad_text = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text) ^ 1)
    (src / "badcrc_text.png").write_bytes(data[:33] + bad_text + data[33:])
    files["badcrc_text.png"] = src / "badcrc_text.png"
    # float16 and 16-bit grey+alpha TIFFs (tifffile reads them)
    tifffile.imwrite(src / "half.tif", (g / 255).astype(np.float16))
    files["half.tif"] = src / "half.tif"
    la = np.dstack([g.astype(np.uint16) * 257, np.full(g.shape, 30000, np.uint16)])
    tifffile.imwrite(src / "la16.tif", la, photometric="minisblack", extrasamples=("unassalpha",))
    files["la16.tif"] = src / "la16.tif"
    # tiny and thin: padded for the features, not refused
    files["five.png"] = _save(src / "five.png", np.full((5, 5), 120, np.uint8))
    files["panorama.png"] = _save(src / "panorama.png", np.tile(g[:20], (1, 80)))  # 20 x 2880
    # damaged data mid-scan: colorized as decoded, libjpeg's warning logged and recorded
    import io

    buf = io.BytesIO()
    Image.fromarray(cv2.resize(g, (144, 160), interpolation=cv2.INTER_CUBIC)).save(buf, format="JPEG", quality=90)
    data = bytearray(buf.getvalue())
    mid = data.index(b"\xff\xda") + (len(data) - data.index(b"\xff\xda")) // 2
    data[mid:mid + 24] = bytes((37 * i + 11) % 251 for i in range(24))
    (src / "damaged.jpg").write_bytes(bytes(data))
    files["damaged.jpg"] = src / "damaged.jpg"
    # names: 250 bytes (the temporary name is longer than 255), a newline
    long_name = "n" * 246 + ".png"
    files[long_name] = _save(src / long_name, g)
    files["new\nline.png"] = _save(src / "new\nline.png", g)
    return files


def _issue13_bad(src, grey):
    """Files of issue 13 that are refused, each with what its message must say."""
    import io

    import tifffile

    buf = io.BytesIO()
    Image.fromarray(grey[1]).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 1] = 0xC3  # lossless JPEG's frame header
    (src / "lossless.jpg").write_bytes(bytes(data))
    tifffile.imwrite(src / "signed.tif", grey[1].astype(np.int16) - 300)
    Image.fromarray(grey[1]).save(src / "whole.tif")
    (src / "cut.tif").write_bytes((src / "whole.tif").read_bytes()[:12])
    (src / "whole.tif").unlink()
    (src / "bad\nname.png").write_bytes(b"")
    return {
        "lossless.jpg": "lossless JPEG (SOF3, 8-bit), which neither Pillow nor OpenCV",
        "signed.tif": "signed 16-bit integer grey values outside 0..65535 (range -",
        "cut.tif": "corrupt or unsupported TIFF file",
        "bad\nname.png": "empty file (0 bytes)",
    }


@pytest.fixture
def corpus(tmp_path, tiny_scene):
    """(folder, good files -> expected output dtype/alpha, bad files -> the problem stderr must name)."""
    src = tmp_path / "in"
    grey = {i: rgb_to_gray_u8(tiny_scene(40 + i, 36, 700 + i)) for i in range(4)}
    good = {
        "a.png": _save(src / "a.png", grey[0]),
        "nested/deeper/b.jpg": _save(src / "nested" / "deeper" / "b.jpg", grey[1], quality=95),
        "jpeg_named.png": _save(src / "jpeg_named.png", grey[2], format="JPEG"),  # wrong extension, readable
        "deep16.png": _save(src / "deep16.png", (grey[3].astype(np.uint16) * 257)),
        "alpha.png": _save(src / "alpha.png", np.dstack([grey[0], np.full_like(grey[0], 128)]), format="PNG"),
        "folder.png/inner.png": _save(src / "folder.png" / "inner.png", grey[1]),  # a folder named like an image
        "one.png": _save(src / "one.png", np.full((1, 1), 90, np.uint8)),  # 1x1: padded for the features
    }
    good.update(_issue13_good(src, grey))
    png = good["a.png"].read_bytes()
    (src / "trunc.png").write_bytes(png[: len(png) // 2])
    jpg = good["nested/deeper/b.jpg"].read_bytes()
    (src / "nested" / "trunc.jpg").write_bytes(jpg[: len(jpg) // 3])
    (src / "empty.png").write_bytes(b"")
    (src / "notes.jpg").write_text("not a picture\n")
    _huge_png(src / "bomb.png", 100_000, 100_000)
    _huge_png(src / "zero_by_zero.png", 0, 0)  # a header that declares no pixels
    os.symlink("loop.png", src / "loop.png")  # a symlink to itself
    os.symlink("missing.png", src / "dangling.png")
    bad = {
        "trunc.png": "corrupt or truncated image",
        "nested/trunc.jpg": "corrupt or truncated image",
        "empty.png": "empty file (0 bytes)",
        "notes.jpg": "not an image file that Pillow can read",
        "bomb.png": "image of 100000 x 100000 = 10,000,000,000 pixels exceeds the limit of 200,000,000 pixels",
        "zero_by_zero.png": "corrupt PNG: its header declares 0 x 0 pixels",
        "loop.png": "cannot resolve the path",
        "dangling.png": "no such file",
    }
    bad.update(_issue13_bad(src, grey))
    (src / "readme.txt").write_text("box 3, 1962\n")  # not an image: recorded as such
    locked = _save(src / "locked.png", grey[2])
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads it anyway: then it is a good file
        good["locked.png"] = locked
    else:
        bad["locked.png"] = "permission denied"
    yield src, good, bad
    locked.chmod(0o644)


def test_colorize_corpus_no_crash_one_line_per_bad_file(run, corpus, tmp_path, tiny_model_dir):
    src, good, bad = corpus
    out = tmp_path / "out"
    rc, _, err = run("colorize", src, out, "--model", tiny_model_dir, "--jobs", "2")
    assert rc == 1
    errors = [line for line in err.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == len(bad), err
    for rel, problem in bad.items():
        lines = [line for line in errors if line.startswith(f"ERROR: {display_path(src / rel)}: ")]
        assert len(lines) == 1 and problem in lines[0], (rel, errors)
    assert (f"colorize: {len(good)} colorized, 0 skipped (existing), {len(bad)} failed, 1 ignored (not images, "
            f"hidden) in ") in err
    for rel in good:  # every good file colorized, complete
        with Image.open((out / rel).with_suffix(".png")) as img:
            img.load()
            assert img.mode == ("RGBA" if rel in ("alpha.png", "la16.tif") else "RGB"), (rel, img.mode)
    records = record.read_records(out / record.COLORIZE_LOG)
    assert sorted(os.path.relpath(r["source"], src) for r in records) == sorted([*good, *bad, "readme.txt"])
    assert [r["status"] for r in records if r["source"].endswith("readme.txt")] == ["ignored"]
    (damaged,) = [r for r in records if r["source"].endswith("damaged.jpg")]
    assert damaged["status"] == "done" and "damaged JPEG data (libjpeg: Corrupt JPEG data" in damaged["message"]
    assert {r["status"] for r in records if os.path.relpath(r["source"], src) in bad} == {"failed"}
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


def test_colorize_corpus_keeps_bit_depth_and_alpha(run, corpus, tmp_path, tiny_model_dir):
    import cv2

    src, good, _ = corpus
    out = tmp_path / "out"
    run("colorize", src, out, "--model", tiny_model_dir, "-q")
    deep = cv2.imread(str(out / "deep16.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (43, 36, 3)
    rgba = np.asarray(Image.open(out / "alpha.png"))
    assert rgba.shape == (40, 36, 4) and (rgba[..., 3] == 128).all()
    rgb = np.asarray(Image.open(out / "a.png"))
    assert rgb.shape == (40, 36, 3) and rgb.dtype == np.uint8
    # issue 13: the right way up, at their bit depth, their alpha kept
    grey = np.asarray(Image.open(src / "a.png")).astype(int)
    for name, dtype in (("raw_o6", np.uint8), ("deep16_o3", np.uint16), ("late_exif16", np.uint16)):
        out_rgb = cv2.imread(str(out / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert out_rgb.shape == (40, 36, 3) and out_rgb.dtype == dtype, name
        luma = cv2.cvtColor(out_rgb, cv2.COLOR_BGR2GRAY).astype(int) // (257 if dtype == np.uint16 else 1)
        assert np.abs(luma - grey).mean() < 2, name  # the same picture, not turned or scrambled
    la = cv2.imread(str(out / "la16.png"), cv2.IMREAD_UNCHANGED)
    assert la.dtype == np.uint16 and la.shape == (40, 36, 4) and (la[..., 3] == 30000).all()
    assert np.asarray(Image.open(out / "five.png")).shape == (5, 5, 3)
    assert np.asarray(Image.open(out / "panorama.png")).shape == (20, 2880, 3)


def test_colorize_max_pixels_setting(run, corpus, tmp_path, tiny_model_dir):
    src, _, _ = corpus
    rc, _, err = run("colorize", src / "a.png", tmp_path / "o.png", "--model", tiny_model_dir, "--max-pixels", "100")
    assert rc == 1
    assert "image of 36 x 40 = 1,440 pixels exceeds the limit of 100 pixels" in err
    rc, _, err = run("colorize", src / "a.png", tmp_path / "o.png", "--model", tiny_model_dir, "--max-pixels", "0")
    assert rc == 0 and (tmp_path / "o.png").is_file()
    rc, _, err = run("colorize", src / "a.png", tmp_path / "o.png", "--model", tiny_model_dir, "--max-pixels", "-1")
    assert rc == 2 and "--max-pixels must be 0 (no limit) or positive" in err


def test_colorize_removes_partial_writes_of_a_killed_run(run, tmp_path, tiny_scene, tiny_model_dir):
    src = _save(tmp_path / "in" / "a.png", rgb_to_gray_u8(tiny_scene(40, 36, 720)))
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".a.png.k3j2x9.part"
    stale.write_bytes(b"\x89PNG half")
    other = out / ".b.png.k3j2x9.part"  # another output's: left alone
    other.write_bytes(b"x")
    rc, _, err = run("colorize", src.parent, out, "--model", tiny_model_dir, "-q")
    assert rc == 0, err
    assert not stale.exists() and other.exists() and (out / "a.png").is_file()


# --- killed and rerun --------------------------------------------------------------


def _colorize_cmd(src, out, model):
    return [sys.executable, "-m", "deepcolor", "colorize", str(src), str(out), "--model", str(model), "-q"]


def test_colorize_killed_at_random_points_then_rerun(tmp_path, tiny_scene, tiny_model_dir):
    """SIGKILL a run at seeded random times, rerun to the end: the outputs equal an uninterrupted run's."""
    import cv2

    rng = np.random.default_rng(5)
    src = tmp_path / "in"
    for i in range(12):  # large enough that writing an output takes a noticeable share of the time
        small = rgb_to_gray_u8(tiny_scene(40, 60, 730 + i))
        _save(src / f"p{i:02d}.png", cv2.resize(small, (1200, 800), interpolation=cv2.INTER_CUBIC))
    ref_out, out = tmp_path / "ref", tmp_path / "out"
    subprocess.run(_colorize_cmd(src, ref_out, tiny_model_dir), check=True, capture_output=True)

    start = time.perf_counter()
    probe = subprocess.run(_colorize_cmd(src, tmp_path / "probe", tiny_model_dir), capture_output=True)
    full = time.perf_counter() - start
    assert probe.returncode == 0
    kills = 0
    for _ in range(4):
        # A seeded random point of the run's progress, not of the clock (the machine's speed varies):
        # after `target` new outputs, plus a random part of one image's time.
        done_before = len(list(out.glob("*.png"))) if out.is_dir() else 0
        if done_before == 12:
            break
        target = done_before + int(rng.integers(0, 12 - done_before))
        proc = subprocess.Popen(_colorize_cmd(src, out, tiny_model_dir), stderr=subprocess.DEVNULL)
        while proc.poll() is None and (len(list(out.glob("*.png"))) if out.is_dir() else 0) < target:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.5) * full / 12)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1  # at least one run was cut short
    for path in out.rglob("*.png"):  # whatever is there after the kills is complete
        with Image.open(path) as img:
            img.load()
    final = subprocess.run(_colorize_cmd(src, out, tiny_model_dir), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        p.name for p in ref_out.iterdir() if not p.name.startswith("."))
    for ref in ref_out.glob("*.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(out / ref.name)), np.asarray(Image.open(ref)))
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]
    records = record.read_records(out / record.COLORIZE_LOG)  # lines cut by a kill are skipped
    done = {os.path.basename(r["source"]) for r in records if r["status"] == "done"}
    assert done == {f"p{i:02d}.png" for i in range(12)}


def test_colorize_record_has_every_file_of_every_run(run, tmp_path, tiny_scene, tiny_model_dir):
    src = tmp_path / "in"
    _save(src / "a.png", rgb_to_gray_u8(tiny_scene(40, 36, 740)))
    _save(src / "b.jpg", rgb_to_gray_u8(tiny_scene(40, 36, 741)))
    (src / "c.png").write_bytes(b"")
    out = tmp_path / "out"
    assert run("colorize", src, out, "--model", tiny_model_dir, "-q")[0] == 1
    with open(out / record.COLORIZE_LOG, "ab") as fh:  # a line cut short, as a kill leaves it
        fh.write(b'{"time": "2026-')
    assert run("colorize", src, out, "--model", tiny_model_dir, "-q", "--format", "keep")[0] == 1
    records = record.read_records(out / record.COLORIZE_LOG)
    status = [(os.path.basename(r["source"]), os.path.basename(r["output"]), r["status"]) for r in records]
    assert sorted(status[:3]) == [("a.png", "a.png", "done"), ("b.jpg", "b.png", "done"), ("c.png", "c.png", "failed")]
    # the second run keeps formats: b.jpg -> b.jpg is new, a.png exists and is skipped
    assert sorted(status[3:]) == [("a.png", "a.png", "skipped"), ("b.jpg", "b.jpg", "done"),
                                  ("c.png", "c.png", "failed")]
    assert all(set(r) >= {"time", "source", "output", "status", "message", "seconds", "cluster"} for r in records)
    with Image.open(out / "b.jpg") as img:
        assert img.format == "JPEG"


def test_colorize_parallel_exception_corrupt_model(run, tmp_path, tiny_scene, tiny_model_dir):
    """With --jobs 2 the model is checked before any worker starts: one message, exit status 2, no output."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "net-000.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    src = _save(tmp_path / "in" / "a.png", rgb_to_gray_u8(tiny_scene(40, 36, 750)))
    rc, _, err = run("colorize", src.parent, tmp_path / "out", "--model", model, "--jobs", "2")
    assert rc == 2
    assert f"ERROR: {weights}: checksum mismatch" in err
    assert not (tmp_path / "out" / "a.png").exists()
