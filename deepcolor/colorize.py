"""`deepcolor colorize`: grey photos in, colour photos out (Cheng et al. 2015, Fig. 2).

Per image: luminance Y at full resolution -> the colorizer's U, V
(``model.predict_chroma(y)``: deepcolor's model, `deepcolor.chroma`, at the
working size; a baseline's at full size) -> U, V upsampled (bilinear) to full
resolution -> the original Y with the predicted U, V, kept in gamut at
constant luminance.
"""

import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deepcolor.baselines import NAMES as BASELINE_NAMES
from deepcolor.color import _combine_planes, is_colour, luminance, scale_chroma, to_uint16
from deepcolor.files import display_path, remove_partial_files
from deepcolor.images.formats import IMAGE_EXTENSIONS, find_images
from deepcolor.images.picture import MAX_PIXELS, ImageError
from deepcolor.images.read import read_picture
from deepcolor.images.write import write_picture
from deepcolor.modelfiles import ModelError
from deepcolor.parallel import run, run_isolated, set_malloc_thresholds, using_dask
from deepcolor.progress import progress_bar
from deepcolor.refine.config import RefineConfig
from deepcolor.resize import resize_to

log = logging.getLogger(__name__)

# Full-resolution pixels combined at a time (whole rows, at least one): bounds the memory, and keeps
# each strip's float32 planes in the L3 cache. On a 12-megapixel photo (4240 columns) strips of 32 to
# 64 rows took 0.038-0.048 s on 2 threads against 0.044-0.054 s for 128 rows and 0.09-0.10 s for 256
# (0.053-0.061, 0.068-0.088, 0.13-0.16 s on one thread; two runs).
STRIP_PIXELS = 1 << 18


def compose(y, uv_work, dtype=np.uint8):
    """RGB (H, W, 3) of `dtype`: full-resolution Y with the working-size U, V upsampled under it.

    Parameters
    ----------
    y : ndarray of shape (H, W), float in [0, 1]
        The input's own luminance.
    uv_work : ndarray of shape (h, w, 2), float, finite
        Chrominance at any size (the working size, or (H, W) for a baseline).
    dtype : {np.uint8, np.uint16}

    Returns
    -------
    rgb : ndarray of shape (H, W, 3), `dtype`
        `deepcolor.color.combine_luma_chroma` of `y` and the bilinear
        (``cv2.INTER_LINEAR``) upsampling of `uv_work`, rounded to `dtype`.

    Raises
    ------
    ValueError
        `y` not 2-D or outside [0, 1], `uv_work` not (h, w, 2) or not finite.
    TypeError
        `dtype` not uint8 or uint16.

    Notes
    -----
    U, V are upsampled bilinearly (docs/DESIGN.md: guided upsampling measured
    no better for its cost) and combined with Y in strips of whole rows
    (`STRIP_PIXELS` pixels), the strips on OpenCV's threads: the horizontal
    pass of the interpolation is done once at the working height, the
    vertical one per strip, so no full-resolution U, V array is made and the
    float32 temporaries stay small at any size. The vertical pass works on
    runs of rows that share their two source rows, U and V as separate
    planes, with the float32 arithmetic of ``a * (1 - w) + b * w`` (the result
    equals interpolating all rows at once, bit for bit). 8-bit rounding is
    OpenCV's ``convertScaleAbs`` into the output strip (the RGB is in [0, 1]
    already). On a 12-megapixel photo on 2 cores this took 0.04 to 0.05 s
    against 0.15 to 0.21 s for the earlier per-strip numpy gathers and
    `combine_luma_chroma` on strips of 512 rows
    (docs/DESIGN.md, "Output at full resolution").
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.uint16):
        raise TypeError(f"dtype must be uint8 or uint16, got {dtype}")
    y = np.ascontiguousarray(y, np.float32)
    uv_work = np.asarray(uv_work, np.float32)
    if y.ndim != 2:
        raise ValueError(f"y must be a 2-D (H, W) luminance image, got shape {y.shape}")
    if uv_work.ndim != 3 or uv_work.shape[2] != 2 or 0 in uv_work.shape[:2]:
        raise ValueError(f"uv must have shape (h, w, 2) with h, w >= 1, got {uv_work.shape}")
    out = np.empty(y.shape + (3,), dtype)
    if y.size == 0:
        return out
    low, high = float(y.min()), float(y.max())
    if not (0.0 <= low and high <= 1.0):  # also false for NaN
        raise ValueError(f"y must lie in [0, 1], got range [{low:.4g}, {high:.4g}]")
    if not np.isfinite(uv_work).all():
        raise ValueError("uv must be finite, got NaN or infinite values")
    height, width = y.shape
    n_in = uv_work.shape[0]
    # (h, W) each: the horizontal pass, once
    u_rows, v_rows = cv2.split(resize_to(uv_work, (n_in, width), interpolation=cv2.INTER_LINEAR))
    below, above, weight = _linear_taps(n_in, height)
    keep = 1 - weight  # (H,) float32, the weight of `below`

    step = max(1, STRIP_PIXELS // width)  # rows per strip

    def strip(r):
        rows = slice(r, min(r + step, height))
        if n_in == height:  # chroma at full size already (a baseline's): no vertical pass
            u, v = u_rows[rows], v_rows[rows]
        else:
            u, v = _vertical_pass(u_rows, v_rows, below[rows], above[rows], keep[rows], weight[rows])
        rgb = _combine_planes(y[rows], u, v)  # (rows, W, 3) float32 in [0, 1]
        if dtype == np.uint8:  # rounds to nearest, ties to even, as to_uint8
            cv2.convertScaleAbs(rgb, dst=out[rows], alpha=255.0)
        else:
            out[rows] = to_uint16(rgb)

    starts = range(0, height, step)
    threads = min(len(starts), cv2.getNumThreads())
    if threads > 1:  # OpenCV and numpy release the GIL: strips run in parallel
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(strip, starts))
    else:
        for r in starts:
            strip(r)
    return out


def _vertical_pass(u_rows, v_rows, below, above, keep, weight):
    """U and V (n, W) of n output rows: ``rows[below] * keep + rows[above] * weight`` for each plane.

    `below`, `above` (n,) are rows of `u_rows`, `v_rows` (h, W); `keep`,
    `weight` (n,) float32. Consecutive output rows mostly share their source
    rows, so each run of them is one broadcast product of a source row and
    the run's weights, with no gathered (n, W) copies of the source rows.
    """
    n, width = below.size, u_rows.shape[1]
    planes = []
    starts = np.flatnonzero(np.diff(below)) + 1
    bounds = zip(np.concatenate(([0], starts)), np.concatenate((starts, [n])))
    runs = [(s, e, below[s], above[s]) for s, e in bounds]
    for rows in (u_rows, v_rows):
        plane, second = np.empty((n, width), np.float32), np.empty((n, width), np.float32)
        for s, e, b, a in runs:
            np.multiply(rows[b], keep[s:e, None], out=plane[s:e])  # (run, W)
            np.multiply(rows[a], weight[s:e, None], out=second[s:e])
            np.add(plane[s:e], second[s:e], out=plane[s:e])
        planes.append(plane)
    return planes


def _linear_taps(n_in, n_out):
    """Source rows and weights of OpenCV's bilinear resize from `n_in` to `n_out` rows.

    Output row i samples ``(i + 0.5) n_in / n_out - 0.5``, clamped to the
    first and last rows (as ``cv2.resize`` with ``INTER_LINEAR``).
    Returns (below, above, weight of `above`), each (n_out,).
    """
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    below = np.floor(pos).astype(np.intp)
    weight = (pos - below).astype(np.float32)
    low, high = below < 0, below >= n_in - 1
    weight[low | high] = 0.0
    below = np.clip(below, 0, n_in - 1)
    above = np.minimum(below + 1, n_in - 1)
    return below, above, weight


def colorize_luma(model, y, dtype=np.uint8):
    """Colorize a full-resolution luminance image.

    Parameters
    ----------
    model : deepcolor.ensemble.Model
    y : ndarray of shape (H, W), float32 in [0, 1]
    dtype : {np.uint8, np.uint16}
        Type of the output.

    Returns
    -------
    rgb : ndarray of shape (H, W, 3), `dtype`
        Its BT.601 luminance is `y` up to rounding to 8 (16) bits.
    """
    return colorize_luma_record(model, y, dtype)[0]


def colorize_luma_record(model, y, dtype=np.uint8, saturation=1.0):
    """`colorize_luma`, and the ensemble's cluster record (None for a single network or a baseline).

    `model` is a `deepcolor.ensemble.Model` or a baseline of `deepcolor.baselines`
    (`load_colorizer`); a baseline's chrominance is put under `y` as deepcolor's
    is, so its output keeps the input's luminance and bit depth too.
    `saturation` scales the predicted chroma at constant luminance (`scale_chroma`).
    """
    y = np.asarray(y, dtype=np.float32)
    uv, record = model.predict_chroma(y)  # working size (deepcolor) or full size (a baseline)
    return compose(y, scale_chroma(uv, saturation), dtype), record


# deepcolor, then the baselines' names (`deepcolor.baselines.NAMES`: known without importing torch)
METHODS = ("deepcolor", *BASELINE_NAMES)


def load_colorizer(model_dir, method="deepcolor"):
    """The model in `model_dir`: a deepcolor `Model`, or the baseline `method` (`deepcolor.baselines`).

    Raises
    ------
    ModelError
        A broken model directory, or one that holds another method than `method`.
    """
    # lazy, each only for its method: the baselines need torch, and `deepcolor --help` imports this
    # module for METHODS
    if method == "deepcolor":
        from deepcolor.ensemble import Model

        return Model.load(model_dir)
    from deepcolor.baselines.estimator import Baseline

    baseline = Baseline.load(model_dir)
    if baseline.name != method:
        raise ModelError(f"{model_dir}: holds the {baseline.name!r} baseline, not {method!r}")
    return baseline


@dataclass
class Outcome:
    source: str
    output: str
    status: str  # "done", "skipped", "failed"
    message: str = ""
    seconds: float = 0.0
    cluster: dict = None  # the ensemble's choice: cluster, layer, candidates


def colorize_file(model, src, dst, overwrite=False, max_pixels=MAX_PIXELS, saturation=1.0, root=None):
    """Colorize one file into `dst`; never raises for a bad input.

    The input's bit depth is kept where the output format holds it (16-bit
    PNG and TIFF), its alpha channel, ICC profile and EXIF data are put back
    (`deepcolor.images.write.write_picture`), and the output is written atomically: a
    killed run leaves either no output or a complete one. Temporary files of
    an earlier killed run for `dst` are removed first.

    `root` (OUT, which `dst` lies in) confines the writing: no symlink below
    it is followed, and an output name that is a symlink is refused, so
    nothing is ever written outside OUT (`deepcolor.files.atomic_write_bytes`).

    Returns
    -------
    outcome : Outcome
        "done", "skipped" (`dst` exists and not `overwrite`) or "failed"
        (with a message that starts with the file's path, escaped to one line).
    """
    start = time.perf_counter()
    shown = display_path(src)
    remove_partial_files(dst, root)
    if os.path.islink(dst):
        return Outcome(str(src), str(dst), "failed", f"{shown}: the output {display_path(dst)} is a symlink; "
                       f"deepcolor writes only inside OUT and does not follow or replace it")
    if os.path.lexists(dst) and not overwrite:
        return Outcome(str(src), str(dst), "skipped", f"{display_path(dst)}: exists, skipped (use --overwrite)")
    try:
        picture = read_picture(src, max_pixels)
        if picture.pixels.ndim == 3 and is_colour(picture.pixels):
            log.warning("%s: colour input, reduced to its luminance", shown)
        rgb, record = colorize_luma_record(model, luminance(picture.pixels), picture.pixels.dtype, saturation)
        write_picture(dst, rgb, picture, root)
    except ImageError as exc:
        return Outcome(str(src), str(dst), "failed", str(exc))
    except (ValueError, OSError) as exc:
        return Outcome(str(src), str(dst), "failed", f"{shown}: {_one_line(exc)}")
    except MemoryError:
        return Outcome(str(src), str(dst), "failed", f"{shown}: out of memory (lower max_pixels)")
    except Exception as exc:  # a batch goes on past any one file; the message names it and the error
        log.debug("%s", shown, exc_info=True)
        return Outcome(str(src), str(dst), "failed",
                       f"{shown}: unexpected error ({type(exc).__name__}: {_one_line(exc)})")
    return Outcome(str(src), str(dst), "done", "; ".join(f"{shown}: {n}" for n in picture.notes),
                   seconds=round(time.perf_counter() - start, 4), cluster=record)


def _one_line(exc):
    """An exception's message on one line (OSError's file names escaped)."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or exc}: {display_path(exc.filename)}"
    return display_path(str(exc))


def remove_partial_writes(dst, root=None):
    """Delete the temporary files that a killed atomic write of `dst` left beside it (none outside `root`)."""
    remove_partial_files(dst, root)


def plan_outputs(src, dst, suffix=".png", ignored=None):
    """Pairs (input, output) for a file or a folder; output names keep the input's stem.

    A folder's tree is mirrored under `dst`. For a single file, `dst` is the
    output file if it has an image suffix, otherwise the folder to write into.
    `suffix` is the output format (".png", ".jpg", ...); None keeps each
    input's own. Returns (pairs, problems): an input whose output would
    collide with an earlier input's (``a.jpg`` and ``a.png`` side by side) or
    would replace an input file, a path that cannot be resolved (a symlink
    loop), a sub-folder that cannot be read and a symlink to a folder (not
    followed) are problems, one line each, never overwritten nor silently
    skipped. When `dst` lies inside `src`, the files under `dst` are not
    taken as inputs; `src` inside `dst` is fine. `ignored` (a list) receives
    (path, reason) for each file or folder left alone: not an image, hidden
    (`deepcolor.images.formats.find_images`), OUT's own files excepted.

    Raises
    ------
    ValueError
        `dst` is the folder `src` itself: the outputs would be mixed with the
        inputs (and taken for inputs on the next run).
    """
    src, dst = Path(src), Path(dst)
    problems = []
    inputs = find_images(src, problems, ignored)
    if src.is_file():
        out = dst if dst.suffix.lower() in IMAGE_EXTENSIONS else dst / (src.stem + (suffix or src.suffix))
        if out.resolve() == src.resolve():
            return [], [f"{display_path(src)}: the output would replace the input; choose another OUT"]
        return [(src, out)], []
    if dst.exists() and not dst.is_dir():
        raise ValueError(f"{display_path(dst)}: OUT exists and is not a folder; the outputs of a folder go into "
                         f"a folder")
    dst_abs, src_abs = dst.resolve(), src.resolve()
    if dst_abs == src_abs:
        raise ValueError(f"{display_path(dst)}: OUT is the input folder itself; the outputs would be mixed with "
                         f"the inputs: choose another OUT (a new folder, or one beside IN)")
    exclude = dst_abs.is_relative_to(src_abs)  # OUT inside IN: its files (earlier outputs) are no inputs
    pairs, taken, resolved = [], {}, {}
    for path in inputs:  # one resolve per input
        try:
            resolved[path] = path.resolve()
        except (RuntimeError, OSError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            problems.append(f"{display_path(path)}: cannot resolve the path ({exc}); skipped")
    inputs = [p for p in resolved if not (exclude and resolved[p].is_relative_to(dst_abs))]
    if exclude and ignored:  # OUT's own files (the record, temporary files) are not IN's to account for
        ignored[:] = [(p, why) for p, why in ignored if not p.absolute().is_relative_to(dst_abs)
                      and not p.absolute().is_relative_to(dst.absolute())]
    input_set = {resolved[p] for p in inputs}
    for path in inputs:
        rel = path.relative_to(src)
        out = dst / rel.with_suffix(suffix or rel.suffix)
        if out.resolve() in input_set:
            problems.append(f"{display_path(path)}: output {display_path(out)} would replace an input file; "
                            f"skipped")
        elif out in taken:
            problems.append(f"{display_path(path)}: output {display_path(out)} would also be written for "
                            f"{display_path(taken[out])}; skipped")
        else:
            taken[out] = path
            pairs.append((path, out))
    return pairs, problems


_WORKER_MODELS = {}


def _worker_colorize(model_dir, src, dst, overwrite, max_pixels, method="deepcolor", saturation=1.0, root=None,
                     refine=None):
    """Worker-side task: the model is loaded once per worker process and cached.

    The first task of a worker also puts torch (where the model loaded it)
    and OpenCV on one thread each, the workers sharing the cores, and fixes
    the C allocator's large-block thresholds (`deepcolor.parallel.set_malloc_thresholds`:
    10% faster, and twice as fast as with a dask nanny's settings).
    `refine` (a dict of `RefineConfig` fields, or None) replaces the model's
    refinement settings (``colorize --config`` with a ``[refine]`` table).
    """
    key = (str(Path(model_dir).resolve()), method)
    if key not in _WORKER_MODELS:
        set_malloc_thresholds()
        _WORKER_MODELS[key] = load_colorizer(model_dir, method)
        set_torch_threads(1)  # after loading: the model is what imports torch, if anything does
        cv2.setNumThreads(1)
    model = _WORKER_MODELS[key]
    if refine is not None:
        model.refine_config = RefineConfig.from_dict(refine)
    return colorize_file(model, src, dst, overwrite, max_pixels, saturation, root)


def set_torch_threads(n):
    """Set torch's thread count to `n` if torch is loaded, and return the count before (None: not loaded).

    deepcolor never imports torch for this: a model that runs without torch
    leaves it unloaded, and a process that has not loaded it has no torch
    threads to set.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    return before


def _in_process(model, pairs, overwrite, max_pixels, saturation=1.0, root=None):
    """Colorize the pairs here, torch (if the model uses it) on one thread; OpenCV keeps its threads.

    The C allocator's thresholds are set for this process (`deepcolor.parallel.set_malloc_thresholds`).

    The networks and the parser are small: on 2 cores a second torch thread
    made them slower, not faster (prediction 75-92 ms per 481x321 image with two
    threads against 37-61 ms with one, three alternating runs, docs/DESIGN.md).
    OpenCV's threads combine and encode a large photo's strips in parallel
    (`compose`, `deepcolor.images.png`).
    """
    set_malloc_thresholds()
    before = set_torch_threads(1)
    try:
        for s, d in pairs:
            yield colorize_file(model, s, d, overwrite, max_pixels, saturation, _root_of(root, d))
    finally:
        if before is not None:
            set_torch_threads(before)


def _root_of(root, dst):
    """The folder writes are confined to: OUT, or the output's own folder for a single file."""
    return Path(dst).parent if root is None else root


def _worker_died(args, reason):
    """The outcome of a file whose worker process died while colorizing it."""
    src, dst = args[1], args[2]
    return Outcome(str(src), str(dst), "failed", f"{display_path(src)}: {reason} while colorizing it; "
                   f"the other files go on (rerun to retry it)")


def colorize_batch(model, model_dir, pairs, jobs=1, overwrite=False, quiet=False, max_pixels=MAX_PIXELS,
                   method="deepcolor", saturation=1.0, root=None, refine=None):
    """Colorize (input, output) pairs; yields an Outcome per pair as each finishes.

    With ``jobs == 1`` (and no dask backend active) `model` works in this
    process; otherwise each worker loads the model from `model_dir` once and
    runs on one thread. Local workers are `deepcolor.parallel.run_isolated`'s:
    a worker that dies (out of memory, killed) fails only the file it was
    colorizing, and the workers end with this process. `saturation` scales
    the predicted chroma (`deepcolor.color.scale_chroma`; 1: the paper's
    output). `root` is OUT: nothing is written outside it (default: each
    output's folder). `refine` (a `RefineConfig`) replaces the model's
    refinement settings, here and in the workers. The process that
    colorizes (this one, or each worker) has its C allocator's large-block
    thresholds set (`deepcolor.parallel.set_malloc_thresholds`).
    """
    bar = progress_bar(total=len(pairs), desc="colorize", unit="img", quiet=quiet)
    if refine is not None and model is not None:
        model.refine_config = refine
    refine_dict = None if refine is None else refine.to_dict()
    if jobs == 1 and not using_dask():
        results = _in_process(model, pairs, overwrite, max_pixels, saturation, root)
    else:
        tasks = ((model_dir, s, d, overwrite, max_pixels, method, saturation, _root_of(root, d), refine_dict)
                 for s, d in pairs)
        if using_dask():
            results = run(_worker_colorize, tasks, jobs, ordered=False)
        else:
            results = run_isolated(_worker_colorize, tasks, jobs, _worker_died)
    try:
        for outcome in results:
            bar.update(1)
            yield outcome
    finally:
        bar.close()
