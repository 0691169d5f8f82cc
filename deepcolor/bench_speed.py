"""The benchmark's ``speed`` section: colorize time per image, large photos, whole folders here and on dask."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from deepcolor.record import COLORIZE_LOG, read_records
from deepcolor.color import rgb_to_gray_u8
from deepcolor.colorize import colorize_batch
from deepcolor.evaluate import evaluate_dirs
from deepcolor.images.read import read_rgb_u8
from deepcolor.testsets import score_model, summary, write_grey_inputs


def time_files(model, items, work):
    """Seconds per file of `deepcolor colorize`'s in-process path (read, colorize, write PNG), model loaded.

    The inputs are the test set's grey images written as 8-bit grey PNGs
    beforehand (not timed).
    """
    times = []
    for p in write_grey_inputs(items, Path(work) / "grey"):
        t = time.perf_counter()
        (out,) = colorize_batch(model, None, [(p, Path(work) / "files" / f"{p.stem}.png")], overwrite=True, quiet=True)
        times.append(time.perf_counter() - t)
        if out.status != "done":
            raise RuntimeError(out.message)
    return times


_LARGE_CHILD = r"""
import json, sys, time
import numpy as np
from deepcolor.colorize import colorize_batch, colorize_luma
from deepcolor.ensemble import Model
model = Model.load(sys.argv[1])
colorize_luma(model, np.full((64, 64), 0.5, np.float32))  # start-up: first-call initialisation
t = time.perf_counter()
(out,) = colorize_batch(model, sys.argv[1], [(sys.argv[2], sys.argv[3])], overwrite=True, quiet=True)
sec = time.perf_counter() - t
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent across fork+exec
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"status": out.status, "message": out.message, "seconds": round(sec, 3),
                  "peak_rss_mb": round(int(hwm) / 1024, 1)}))
"""


def bench_large(model_dir, source, work, megapixels=12.0):
    """Colorize a `megapixels` JPEG (an upscaled test photo) in a fresh process.

    Time covers reading, colorizing and writing the PNG, not start-up (imports,
    loading the model, and one 64x64 colorization that initialises torch and
    OpenCV); the peak resident memory is the whole process's (Python, torch
    and all).
    """
    rgb = read_rgb_u8(source)
    scale = np.sqrt(megapixels * 1e6 / (rgb.shape[0] * rgb.shape[1]))
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    big = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
    gray = rgb_to_gray_u8(big)
    del rgb, big
    src = Path(work) / f"large-{megapixels:g}mp.jpg"
    cv2.imwrite(str(src), gray, [cv2.IMWRITE_JPEG_QUALITY, 92])
    del gray
    dst = Path(work) / f"large-{megapixels:g}mp-out.png"
    proc = subprocess.run([sys.executable, "-c", _LARGE_CHILD, str(model_dir), str(src), str(dst)],
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(width=size[0], height=size[1], megapixels=round(size[0] * size[1] / 1e6, 2))
    src.unlink()
    dst.unlink(missing_ok=True)
    return result


def bench_folder(model_dir, grey_dir, out_dir, jobs, backend="loky"):
    """Wall time of ``deepcolor colorize GREY_DIR OUT_DIR --jobs N [--backend dask]`` in a fresh process.

    Everything a user waits for is counted: start-up, loading the model in
    each worker (and starting a local dask cluster of `jobs` workers for
    "dask"), reading, colorizing, writing. The record's per-file seconds are
    summed too.
    """
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "deepcolor", "colorize", str(grey_dir), str(out_dir), "--model", str(model_dir),
           "--jobs", str(jobs), "--backend", backend, "-q"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    records = read_records(Path(out_dir) / COLORIZE_LOG)
    done = [r for r in records if r["status"] == "done"]
    return {"backend": backend, "jobs": jobs, "images": len(done), "wall_s": round(wall, 2),
            "images_per_s": round(len(done) / wall, 2),
            "sum_file_s": round(sum(r["seconds"] for r in done), 2)}


def bench_speed(model, model_dir, items, test_paths, work, jobs):
    """The `speed` section: per-image times, large photos, and a whole folder here and on dask.

    Torch runs on one thread, as `deepcolor colorize` runs it (`colorize._in_process`).
    """
    import torch  # lazy: torch is heavy

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, in_memory_times = score_model(model, items)
    finally:
        torch.set_num_threads(before)
    grey_dir = Path(work) / "grey"
    write_grey_inputs(items, grey_dir)
    local = bench_folder(model_dir, grey_dir, Path(work) / "folder-loky", jobs)
    scores = evaluate_dirs(Path(test_paths[0]).parent, Path(work) / "folder-loky").summary
    local["psnr_mean"], local["psnr_median"] = round(scores["psnr_mean"], 3), round(scores["psnr_median"], 3)
    try:
        dask = bench_folder(model_dir, grey_dir, Path(work) / "folder-dask", jobs, backend="dask")
        dask["wall_over_local"] = round(dask["wall_s"] / local["wall_s"], 3)
    except (RuntimeError, ImportError) as exc:
        dask = f"failed: {exc}"
    return {
        "colorize_in_memory_s_per_image": summary(in_memory_times),
        "colorize_file_s_per_image": summary(time_files(model, items[:50], work)),
        "large": bench_large(model_dir, test_paths[0], work, 12.0),
        "large_50mp": bench_large(model_dir, test_paths[0], work, 50.0),
        "folder": local,
        "folder_dask_local_cluster": dask,
    }
