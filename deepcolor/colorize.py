"""`deepcolor colorize`: grey photos in, colour photos out (Cheng et al. 2015, Fig. 2).

Per image: luminance Y at full resolution -> Y at the working size ->
(an ensemble: the cluster chosen by global descriptor and semantic histogram)
-> per-pixel features -> that cluster's network -> U, V -> joint bilateral refinement guided by Y
-> U, V upsampled (bilinear) to full resolution -> the original Y with the
predicted U, V, kept in gamut at constant luminance.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deepcolor.color import combine_luma_chroma, to_uint8
from deepcolor.core import is_colour, luminance, resize_to, working_shape
from deepcolor.features import compute_features
from deepcolor.io import IMAGE_EXTENSIONS, ImageError, find_images, read_image, write_image
from deepcolor.progress import progress_bar
from deepcolor.refine import joint_bilateral_refine

log = logging.getLogger(__name__)

STRIP_ROWS = 512  # full-resolution rows combined at a time, bounding peak memory


def predict_chroma(model, y_work):
    """Refined U, V (h, w, 2) float32 for the working-size luminance (h, w), and the cluster record.

    The record is None for a single network, else `Model.choose_network`'s.
    """
    network, record = model.choose_network(y_work)
    fcfg = model.feature_config
    feats = compute_features(y_work, fcfg.features, fcfg.params())  # (h, w, D)
    uv = model.predict_uv(feats.reshape(-1, feats.shape[-1]), network).reshape(y_work.shape + (2,))
    return refine_chroma(model, uv, y_work), record


def refine_chroma(model, uv, y_work):
    """The model's joint bilateral refinement of U, V (h, w, 2) guided by Y (h, w), if enabled."""
    rcfg = model.refine_config
    if rcfg.enabled:
        uv = joint_bilateral_refine(uv, y_work, rcfg.diameter, rcfg.sigma_color, rcfg.sigma_space)
    return uv


def working_luma(model, y):
    """The working-size luminance of a full-resolution one; ValueError if it is too small for the features."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 2:
        raise ValueError(f"y must be a 2-D (H, W) luminance image, got shape {y.shape}")
    fcfg = model.feature_config
    work = working_shape(y.shape, fcfg.working_size)
    min_side = max(fcfg.patch_size // 2, fcfg.daisy_radius) + 1
    if min(work) < min_side:
        raise ValueError(f"image of shape {y.shape} is too small: at the working size {work} "
                         f"both sides must be at least {min_side} px")
    return np.clip(resize_to(y, work), 0, 1)


def compose(y, uv_work):
    """RGB uint8 (H, W, 3): full-resolution Y (H, W) with the working-size U, V upsampled (bilinear)."""
    uv = resize_to(uv_work, y.shape, interpolation=cv2.INTER_LINEAR)  # (H, W, 2)
    out = np.empty(y.shape + (3,), np.uint8)

    def strip(r):
        rows = slice(r, r + STRIP_ROWS)
        out[rows] = to_uint8(combine_luma_chroma(y[rows], uv[rows]))

    starts = range(0, y.shape[0], STRIP_ROWS)
    threads = min(len(starts), cv2.getNumThreads())
    if threads > 1:  # OpenCV and numpy release the GIL: strips run in parallel
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(strip, starts))
    else:
        for r in starts:
            strip(r)
    return out


def colorize_luma(model, y):
    """Colorize a full-resolution luminance image.

    Parameters
    ----------
    model : deepcolor.ensemble.Model
    y : ndarray of shape (H, W), float32 in [0, 1]

    Returns
    -------
    rgb : ndarray of shape (H, W, 3), uint8
        Its BT.601 luminance is `y` up to rounding to 8 bits.
    """
    return colorize_luma_record(model, y)[0]


def colorize_luma_record(model, y):
    """`colorize_luma`, and the ensemble's cluster record (None for a single network)."""
    y = np.asarray(y, dtype=np.float32)
    uv, record = predict_chroma(model, working_luma(model, y))
    return compose(y, uv), record


@dataclass
class Outcome:
    source: str
    output: str
    status: str  # "done", "skipped", "failed"
    message: str = ""
    seconds: float = 0.0
    cluster: dict = None  # the ensemble's choice: cluster, layer, candidates


def colorize_file(model, src, dst, overwrite=False):
    """Colorize one file into `dst` (written atomically). Never raises for a bad input."""
    start = time.perf_counter()
    if Path(dst).exists() and not overwrite:
        return Outcome(str(src), str(dst), "skipped", f"{dst}: exists, skipped (use --overwrite)")
    try:
        image = read_image(src)
        if is_colour(image):
            log.warning("%s: colour input, reduced to its luminance", src)
        rgb, record = colorize_luma_record(model, luminance(image))
        write_image(dst, rgb)
    except ImageError as exc:
        return Outcome(str(src), str(dst), "failed", str(exc))
    except (ValueError, OSError) as exc:
        return Outcome(str(src), str(dst), "failed", f"{src}: {exc}")
    return Outcome(str(src), str(dst), "done", seconds=round(time.perf_counter() - start, 4), cluster=record)


def plan_outputs(src, dst, suffix=".png"):
    """Pairs (input, output) for a file or a folder; output names keep the input's stem.

    A folder's tree is mirrored under `dst`. For a single file, `dst` is the
    output file if it has an image suffix, otherwise the folder to write into.
    Returns (pairs, problems): an input whose output would collide with an
    earlier input's (``a.jpg`` and ``a.png`` side by side) or would replace an
    input file is a problem, never overwritten. When `dst` lies inside `src`,
    the files under `dst` are not taken as inputs.
    """
    src, dst = Path(src), Path(dst)
    inputs = find_images(src)
    if src.is_file():
        out = dst if dst.suffix.lower() in IMAGE_EXTENSIONS else dst / (src.stem + suffix)
        if out.resolve() == src.resolve():
            return [], [f"{src}: the output would replace the input; choose another OUT"]
        return [(src, out)], []
    dst_abs = dst.resolve()
    resolved = {p: p.resolve() for p in inputs}  # one resolve per input
    inputs = [p for p in inputs if not resolved[p].is_relative_to(dst_abs)]
    input_set = {resolved[p] for p in inputs}
    pairs, problems, taken = [], [], {}
    for path in inputs:
        out = dst / path.relative_to(src).with_suffix(suffix)
        if out.resolve() in input_set:
            problems.append(f"{path}: output {out} would replace an input file; skipped")
        elif out in taken:
            problems.append(f"{path}: output {out} would also be written for {taken[out]}; skipped")
        else:
            taken[out] = path
            pairs.append((path, out))
    return pairs, problems


_WORKER_MODELS = {}


def _worker_colorize(model_dir, src, dst, overwrite):
    """Worker-side task: the model is loaded once per worker process and cached."""
    import torch

    from deepcolor.ensemble import Model

    key = str(Path(model_dir).resolve())
    if key not in _WORKER_MODELS:
        torch.set_num_threads(1)  # one thread per worker process: the workers share the cores
        cv2.setNumThreads(1)
        _WORKER_MODELS[key] = Model.load(model_dir)
    return colorize_file(_WORKER_MODELS[key], src, dst, overwrite)


def colorize_batch(model, model_dir, pairs, jobs=1, overwrite=False, quiet=False):
    """Colorize (input, output) pairs; yields an Outcome per pair as each finishes."""
    bar = progress_bar(total=len(pairs), desc="colorize", unit="img", quiet=quiet)
    if jobs == 1:
        results = (colorize_file(model, s, d, overwrite) for s, d in pairs)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=jobs, return_as="generator_unordered")(
            delayed(_worker_colorize)(model_dir, s, d, overwrite) for s, d in pairs
        )
    try:
        for outcome in results:
            bar.update(1)
            yield outcome
    finally:
        bar.close()
