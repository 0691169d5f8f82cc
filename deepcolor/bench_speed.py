"""The benchmark's ``speed`` section: colorize times, each beside a floor or a peer measured in the same run.

Issue 19's table (`bench_speed`'s ``table``), one row each, every value with
the floor or peer it is compared to, their ratio, and the issue's target
with pass or fail where it sets one:

- ``command_one_photo``: ``deepcolor colorize one.png out.png`` in a fresh
  process, whole wall time, against a fresh ``python -c`` that imports OpenCV
  and reads and writes the same image as PNG.
- ``per_photo_bundled``, ``per_photo_patch_daisy``: seconds per photo, 60
  grey test photos in one process (``--jobs 1``, the file path: read,
  colorize, write PNG, model loaded), for the bundled model and a
  patch+DAISY-only network (trained here in seconds on a dozen references:
  its speed does not depend on how well it is trained), against the ECCV16
  network of Zhang et al. (``rz-colorization`` 1.0.5, random weights),
  forward pass alone at 256 x 256 on one torch thread.
- ``folder_jobs``: the 200 test photos through ``deepcolor colorize --jobs
  2`` against ``--jobs 1``, fresh processes (target: at least 1.8 times as
  fast).
- ``folder_dask``: the same through ``--backend dask`` (a local cluster of 2
  one-thread workers, started by the command) against the local ``--jobs
  2`` run (target: at most 1.3 times its wall time); the cluster's own
  start and close are timed apart, in a fresh process.
- ``large_12mp``: a 12-megapixel grey JPEG to PNG in a fresh process, start-up
  excluded, against decoding it and encoding a 3-channel PNG of that size
  with OpenCV, start-up excluded too (target: at most twice the floor, and
  at most 1 GB peak resident memory).

The machine may be shared: wall times are taken `repeats` times, the order of
the two runs of a pair alternating, and the smallest of each kept (other work
only adds time); every run is reported, with the load average before and
after.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from deepcolor.color import rgb_to_gray_u8
from deepcolor.colorize import colorize_batch
from deepcolor.evaluate import evaluate_dirs
from deepcolor.images.formats import find_images
from deepcolor.images.read import read_rgb_u8
from deepcolor.record import COLORIZE_LOG, read_records
from deepcolor.testsets import score_model, summary, write_grey_inputs

# Issue 19's targets
FOLDER_SPEEDUP = 1.8  # --jobs 2 at least this many times as fast as --jobs 1
DASK_OVER_LOCAL = 1.3  # --backend dask at most this many times the local run's wall time
LARGE_OVER_FLOOR = 2.0  # 12 megapixels at most this many times decoding and encoding them
LARGE_PEAK_MB = 1024  # and at most this peak resident memory
ECCV16 = "rz-colorization==1.0.5"  # the peer's package, installed without its dependencies
PER_PHOTO_N = 60


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


def per_photo(model, paths, work):
    """Seconds per photo of one `colorize_batch` over `paths` in this process (``--jobs 1``), model loaded.

    One photo is colorized first, untimed (first-call initialisation).
    """
    out = Path(work)
    list(colorize_batch(model, None, [(paths[0], out / "warm-up.png")], overwrite=True, quiet=True))
    t = time.perf_counter()
    outcomes = list(colorize_batch(model, None, [(p, out / f"{p.stem}.png") for p in paths], overwrite=True,
                                   quiet=True))
    seconds = time.perf_counter() - t
    failed = [o.message for o in outcomes if o.status != "done"]
    if failed:
        raise RuntimeError(failed[0])
    return seconds / len(paths)


_ECCV16_CHILD = r"""
import importlib.util, json, statistics, sys, time, types
import torch
torch.set_num_threads(1)
spec = importlib.util.find_spec("colorizers")
if spec is None or not spec.submodule_search_locations:
    print(json.dumps({"error": "the colorizers package (rz-colorization) is not installed"}))
    sys.exit(0)
# The package's __init__ imports matplotlib, Pillow and scikit-image helpers; eccv16.py needs torch and
# (unused) IPython.embed: the package is entered without its __init__, IPython stubbed where missing.
package = types.ModuleType("colorizers")
package.__path__ = list(spec.submodule_search_locations)
sys.modules["colorizers"] = package
if importlib.util.find_spec("IPython") is None:
    sys.modules["IPython"] = types.SimpleNamespace(embed=lambda *args, **kwargs: None)
from colorizers.eccv16 import eccv16
net = eccv16(pretrained=False).eval()
size = int(sys.argv[2])
x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0))
times = []
with torch.inference_mode():
    for i in range(int(sys.argv[1]) + 2):
        t = time.perf_counter()
        net(x)
        times.append(time.perf_counter() - t)
times = times[2:]  # two warm-up passes
print(json.dumps({"s": statistics.median(times), "min_s": min(times), "repeat": len(times)}))
"""


def bench_eccv16(repeat=10, size=256):
    """Seconds of one forward pass of ECCV16 (Zhang et al. 2016) at `size` x `size` on one torch thread.

    Run in a fresh process (its own torch settings). Returns a dict, or a
    string that says why it could not be measured (the package not
    installed: ``pip install --no-deps rz-colorization==1.0.5``; torch
    missing; the child failed).
    """
    proc = subprocess.run([sys.executable, "-c", _ECCV16_CHILD, str(repeat), str(size)], capture_output=True,
                          text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        return f"unavailable: the ECCV16 timing failed ({proc.returncode}): {proc.stderr.strip()[-300:]}"
    result = json.loads(lines[-1])
    if "error" in result:
        return f"unavailable: {result['error']} (pip install --no-deps {ECCV16})"
    return {"s": round(result["s"], 4), "min_s": round(result["min_s"], 4), "repeat": result["repeat"],
            "network": f"ECCV16 (Zhang et al. 2016), random weights, 1 x 1 x {size} x {size}, one torch thread",
            "package": ECCV16}


def train_patch_daisy(model, refs, work, jobs, n_refs=12):
    """A one-network patch+DAISY model with `model`'s other settings, trained briefly on `n_refs` references.

    For timing only: two epochs on the first `n_refs` images of `refs` (linked
    into `work`). Returns the model.
    """
    from deepcolor.bench_pipeline import train_pipeline  # lazy: torch is heavy
    from deepcolor.clustering.config import ClusterConfig
    from deepcolor.networks_config import TrainConfig

    folder = Path(work) / "refs"
    folder.mkdir(parents=True, exist_ok=True)
    for src in [p for r in refs for p in find_images(r)][:n_refs]:
        link = folder / src.name
        if not link.exists():
            link.symlink_to(Path(src).resolve())
    fcfg = model.feature_config.replace(features=("patch", "daisy"))
    single, _, _, _ = train_pipeline([folder], work, fcfg, TrainConfig(max_epochs=2, patience=1),
                                     model.refine_config, ClusterConfig(n_clusters=1), jobs)
    return single


def _wall(cmd):
    """Seconds a command takes, start-up included; RuntimeError if it fails."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, proc.stdout


def _alternating(first, second, repeats):
    """Times of two measurements taken `repeats` times each, their order alternating: (firsts, seconds)."""
    a, b = [], []
    for r in range(repeats):
        if r % 2:
            b.append(second())
            a.append(first())
        else:
            a.append(first())
            b.append(second())
    return a, b


_FLOOR_COMMAND = "import sys, cv2; cv2.imwrite(sys.argv[2], cv2.imread(sys.argv[1], cv2.IMREAD_UNCHANGED))"


def bench_command(model_dir, photo, work, repeats=2):
    """Wall time of ``deepcolor colorize PHOTO OUT.png`` against a fresh Python reading and writing it with OpenCV."""
    out = Path(work) / "command"
    out.mkdir(parents=True, exist_ok=True)
    ours = [sys.executable, "-m", "deepcolor", "colorize", str(photo), str(out / "out.png"), "--model",
            str(model_dir), "-q", "--overwrite"]
    floor = [sys.executable, "-c", _FLOOR_COMMAND, str(photo), str(out / "floor.png")]
    times, floors = _alternating(lambda: _wall(ours)[0], lambda: _wall(floor)[0], repeats)
    return {"runs_s": _rounded(times), "floor_runs_s": _rounded(floors),
            "floor": "python -c 'import cv2; read the photo, write it as PNG'"}


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

_LARGE_FLOOR_CHILD = r"""
import sys, time
import cv2, numpy as np
g = np.full((64, 64), 128, np.uint8)  # start-up: first-call initialisation, as the colorize child
cv2.imdecode(cv2.imencode(".jpg", g)[1], cv2.IMREAD_UNCHANGED)
cv2.imencode(".png", cv2.merge([g, g, g]))
t = time.perf_counter()
grey = cv2.imread(sys.argv[1], cv2.IMREAD_UNCHANGED)
ok, buf = cv2.imencode(".png", cv2.merge([grey, grey, grey]))
buf.tofile(sys.argv[2])
print(round(time.perf_counter() - t, 3))
"""


def large_input(source, work, megapixels):
    """A `megapixels` grey JPEG (quality 92) of the colour photo `source` enlarged (bicubic): (path, (W, H))."""
    rgb = read_rgb_u8(source)
    scale = np.sqrt(megapixels * 1e6 / (rgb.shape[0] * rgb.shape[1]))
    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    gray = rgb_to_gray_u8(cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC))
    src = Path(work) / f"large-{megapixels:g}mp.jpg"
    cv2.imwrite(str(src), gray, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return src, size


def bench_large(model_dir, source, work, megapixels=12.0, repeats=1, floor=False):
    """Colorize a `megapixels` JPEG (an upscaled test photo) to PNG in a fresh process, `repeats` times.

    Time covers reading, colorizing and writing the PNG, not start-up (imports,
    loading the model, and one 64x64 colorization that initialises the
    libraries); the peak resident memory is the whole process's (Python and
    all it loaded). With `floor`, the floor is timed too, alternating with it:
    decoding the JPEG and encoding a 3-channel PNG of its size with OpenCV's
    defaults, in a fresh process, start-up excluded in the same way.
    """
    src, size = large_input(source, work, megapixels)
    dst = Path(work) / f"large-{megapixels:g}mp-out.png"

    def ours():
        _, out = _wall([sys.executable, "-c", _LARGE_CHILD, str(model_dir), str(src), str(dst)])
        return json.loads(out.strip().splitlines()[-1])

    def floor_run():
        _, out = _wall([sys.executable, "-c", _LARGE_FLOOR_CHILD, str(src), str(dst)])
        return float(out.strip().splitlines()[-1])

    if floor:
        runs, floors = _alternating(ours, floor_run, repeats)
    else:
        runs, floors = [ours() for _ in range(repeats)], []
    result = min(runs, key=lambda r: r["seconds"])
    result.update(width=size[0], height=size[1], megapixels=round(size[0] * size[1] / 1e6, 2))
    if repeats > 1:
        result["runs_s"] = [r["seconds"] for r in runs]
        result["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    if floor:
        result["floor_runs_s"] = floors
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
    wall, _ = _wall(cmd)
    records = read_records(Path(out_dir) / COLORIZE_LOG)
    done = [r for r in records if r["status"] == "done"]
    return {"backend": backend, "jobs": jobs, "images": len(done), "wall_s": round(wall, 2),
            "images_per_s": round(len(done) / wall, 2),
            "sum_file_s": round(sum(r["seconds"] for r in done), 2)}


_CLUSTER_CHILD = r"""
import sys, time
t = time.perf_counter()
from deepcolor.parallel import backend
with backend("dask", n_workers=int(sys.argv[1])) as client:
    up = time.perf_counter() - t
    t = time.perf_counter()
print(round(up, 3), round(time.perf_counter() - t, 3))
"""


def bench_cluster(n_workers):
    """Seconds to start a local dask cluster of `n_workers` (dask imported, workers up) and to close it.

    Timed in a fresh process, apart from the folder runs that include it.
    """
    wall, out = _wall([sys.executable, "-c", _CLUSTER_CHILD, str(n_workers)])
    up, close = (float(v) for v in out.split())
    return {"n_workers": n_workers, "start_s": up, "close_s": close, "process_wall_s": round(wall, 2)}


def _folders(model_dir, grey_dir, work, jobs, repeats):
    """The folder runs: --jobs 1 and --jobs `jobs` alternating, then dask and --jobs `jobs` alternating."""
    def run(name, n, backend="loky"):
        return lambda: bench_folder(model_dir, grey_dir, Path(work) / name, n, backend)

    one, many = _alternating(run("folder-jobs1", 1), run("folder-loky", jobs), repeats)
    try:
        dask, many_again = _alternating(run("folder-dask", jobs, "dask"), run("folder-loky", jobs), repeats)
    except (RuntimeError, ImportError) as exc:
        dask, many_again = f"failed: {exc}", []
    return one, many + many_again, dask


def _best(runs):
    """The run of least wall time, with every run's wall time."""
    best = dict(min(runs, key=lambda r: r["wall_s"]))
    best["runs_s"] = [r["wall_s"] for r in runs]
    return best


def _rounded(values, digits=3):
    return [round(v, digits) for v in values]


def _row(measured, against, target=None, higher_is_better=False, **more):
    """A table row: the value, its floor or peer, their ratio (value / peer), and the target's verdict.

    `higher_is_better`: the target is a speed-up, peer / value, at least `target`;
    otherwise the ratio is at most `target`. `more` is added to the row (descriptions).
    """
    ratio = measured / against
    row = {"value_s": round(measured, 4), "peer_s": round(against, 4), "ratio": round(ratio, 3)}
    if higher_is_better:
        row["speedup"] = round(against / measured, 3)
    if target is not None:
        row["target"] = f"{'>=' if higher_is_better else '<='} {target}"
        row["pass"] = bool(against / measured >= target if higher_is_better else ratio <= target)
    row.update(more)
    return row


def issue19_table(command, per_photo_s, eccv, one, many, dask, cluster, large):
    """Issue 19's rows from the measurements (see the module's docstring); each value against its peer."""
    table = {"command_one_photo": _row(min(command["runs_s"]), min(command["floor_runs_s"]),
                                       floor=command["floor"])}
    for name, seconds in per_photo_s.items():
        table[f"per_photo_{name}"] = (
            _row(seconds, eccv["s"], peer="ECCV16 forward pass, 256 x 256, one torch thread")
            if isinstance(eccv, dict) else {"value_s": round(seconds, 4), "peer": eccv})
    table["folder_jobs"] = _row(many["wall_s"], one["wall_s"], FOLDER_SPEEDUP, higher_is_better=True,
                                peer="--jobs 1", value="--jobs 2")
    if isinstance(dask, dict):
        table["folder_dask"] = _row(dask["wall_s"], many["wall_s"], DASK_OVER_LOCAL, peer="--jobs 2 (loky)",
                                    cluster=cluster)
    else:
        table["folder_dask"] = dask
    row = _row(large["seconds"], min(large["floor_runs_s"]), LARGE_OVER_FLOOR,
               floor="decode the JPEG, encode a 3-channel PNG (OpenCV's defaults), start-up excluded")
    row.update(peak_rss_mb=large["peak_rss_mb"], peak_target_mb=f"<= {LARGE_PEAK_MB}",
               pass_time=row.pop("pass"))
    row["pass_memory"] = large["peak_rss_mb"] <= LARGE_PEAK_MB
    row["pass"] = row["pass_time"] and row["pass_memory"]
    table["large_12mp"] = row
    return table


def bench_speed(model, model_dir, items, test_paths, work, jobs, refs=(), repeats=2):
    """The `speed` section: issue 19's table, per-image times, large photos, whole folders here and on dask.

    Torch runs on one thread, as `deepcolor colorize` runs it (`colorize._in_process`).
    `refs` are the reference folders the patch+DAISY network is trained on (none: that row is left out).
    """
    from deepcolor.colorize import set_torch_threads

    load_before = os.getloadavg()
    before = set_torch_threads(1)
    try:
        _, in_memory_times = score_model(model, items)
    finally:
        if before is not None:
            set_torch_threads(before)
    grey_dir = Path(work) / "grey"
    grey = write_grey_inputs(items, grey_dir)
    command = bench_command(model_dir, grey[0], work, repeats)
    models = {"bundled": model}
    if refs:
        models["patch_daisy"] = train_patch_daisy(model, refs, Path(work) / "patch-daisy", jobs)
    per_photo_s = {name: per_photo(m, grey[:PER_PHOTO_N], Path(work) / f"per-photo-{name}")
                   for name, m in models.items()}
    eccv = bench_eccv16()
    one, many, dask = _folders(model_dir, grey_dir, work, jobs, repeats)
    one, many = _best(one), _best(many)
    scores = evaluate_dirs(Path(test_paths[0]).parent, Path(work) / "folder-loky").summary
    many["psnr_mean"], many["psnr_median"] = round(scores["psnr_mean"], 3), round(scores["psnr_median"], 3)
    cluster = None
    if not isinstance(dask, str):
        dask = _best(dask)
        dask["wall_over_local"] = round(dask["wall_s"] / many["wall_s"], 3)
        cluster = bench_cluster(jobs)
    large = bench_large(model_dir, test_paths[0], work, 12.0, repeats=max(2, repeats), floor=True)
    return {
        "table": issue19_table(command, per_photo_s, eccv, one, many, dask, cluster, large),
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "repeats": repeats,
        "eccv16": eccv,
        "colorize_in_memory_s_per_image": summary(in_memory_times),
        "colorize_file_s_per_image": summary(time_files(model, items[:50], work)),
        "command_one_photo": command,
        "large": large,
        "large_50mp": bench_large(model_dir, test_paths[0], work, 50.0),
        "folder_jobs1": one,
        "folder": many,
        "folder_dask_local_cluster": dask,
    }
