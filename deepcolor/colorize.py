"""`deepcolor colorize`: grey photos in, colour photos out (Cheng et al. 2015, Fig. 2).

Per image: luminance Y at full resolution -> the colorizer's U, V
(``model.predict_chroma(y)``: deepcolor's model, `deepcolor.chroma`, at the
working size; a baseline's at full size) -> U, V upsampled (bilinear) to full
resolution -> the original Y with the predicted U, V, kept in gamut at
constant luminance.
"""

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deepcolor.baselines import NAMES as BASELINE_NAMES
from deepcolor.color import combine_luma_chroma, is_colour, luminance, scale_chroma, to_integer
from deepcolor.files import display_path, remove_partial_files
from deepcolor.images.formats import IMAGE_EXTENSIONS, find_images
from deepcolor.images.picture import MAX_PIXELS, ImageError
from deepcolor.images.read import read_picture
from deepcolor.images.write import write_picture
from deepcolor.modelfiles import ModelError
from deepcolor.parallel import run, run_isolated, using_dask
from deepcolor.progress import progress_bar
from deepcolor.refine.config import RefineConfig
from deepcolor.resize import resize_to

log = logging.getLogger(__name__)

STRIP_ROWS = 512  # full-resolution rows combined at a time, bounding peak memory


def compose(y, uv_work, dtype=np.uint8):
    """RGB (H, W, 3) of `dtype` (uint8 or uint16): full-resolution Y (H, W) with the working-size U, V upsampled.

    U, V are upsampled bilinearly (docs/DESIGN.md: guided upsampling measured
    no better for its cost) and combined with Y in strips of `STRIP_ROWS` rows:
    the horizontal pass of the bilinear interpolation is done once at the
    working height, the vertical one per strip, so no full-resolution U, V
    array is ever made and the float32 temporaries stay small at any size.
    """
    y = np.asarray(y, np.float32)
    height, width = y.shape
    uv_rows = resize_to(uv_work, (uv_work.shape[0], width), interpolation=cv2.INTER_LINEAR)  # (h, W, 2)
    below, above, weight = _linear_taps(uv_work.shape[0], height)
    out = np.empty(y.shape + (3,), dtype)

    def strip(r):
        rows = slice(r, r + STRIP_ROWS)
        w = weight[rows, None, None]
        uv = uv_rows[below[rows]] * (1 - w) + uv_rows[above[rows]] * w  # (rows, W, 2)
        out[rows] = to_integer(combine_luma_chroma(y[rows], uv), dtype)

    starts = range(0, height, STRIP_ROWS)
    threads = min(len(starts), cv2.getNumThreads())
    if threads > 1:  # OpenCV and numpy release the GIL: strips run in parallel
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(strip, starts))
    else:
        for r in starts:
            strip(r)
    return out


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
    # lazy: both import torch, and `deepcolor --help` imports this module for METHODS
    from deepcolor.baselines.estimator import Baseline
    from deepcolor.ensemble import Model

    if method == "deepcolor":
        return Model.load(model_dir)
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

    `refine` (a dict of `RefineConfig` fields, or None) replaces the model's
    refinement settings (``colorize --config`` with a ``[refine]`` table).
    """
    import torch  # lazy: torch is heavy, and `deepcolor --help` imports this module for METHODS

    key = (str(Path(model_dir).resolve()), method)
    if key not in _WORKER_MODELS:
        torch.set_num_threads(1)  # one thread per worker process: the workers share the cores
        cv2.setNumThreads(1)
        _WORKER_MODELS[key] = load_colorizer(model_dir, method)
    model = _WORKER_MODELS[key]
    if refine is not None:
        model.refine_config = RefineConfig.from_dict(refine)
    return colorize_file(model, src, dst, overwrite, max_pixels, saturation, root)


def _in_process(model, pairs, overwrite, max_pixels, saturation=1.0, root=None):
    """Colorize the pairs here, torch on one thread (OpenCV keeps its threads).

    The networks and the parser are small: on 2 cores a second torch thread
    made them slower, not faster (prediction 75-92 ms per 481x321 image with two
    threads against 37-61 ms with one, three alternating runs, docs/DESIGN.md).
    """
    import torch  # lazy: torch is heavy, and `deepcolor --help` imports this module for METHODS

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for s, d in pairs:
            yield colorize_file(model, s, d, overwrite, max_pixels, saturation, _root_of(root, d))
    finally:
        torch.set_num_threads(before)


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
    refinement settings, here and in the workers.
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
