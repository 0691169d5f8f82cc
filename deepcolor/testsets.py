"""Test sets of the benchmarks: grey inputs made from colour truths, and colorizations scored against them.

The one recipe of a grey input: the 8-bit BT.601 luma of the truth image
(`deepcolor.color.rgb_to_gray_u8`), as an archive's grey photo would be.
`load_test_set` gives it as floats in [0, 1] with the truth;
`write_grey_inputs` writes the same 8-bit values as grey PNG files.
"""

import os
import time
from pathlib import Path

import numpy as np

from deepcolor.color import combine_luma_chroma, rgb_to_gray_u8, to_uint8
from deepcolor.colorize import colorize_luma
from deepcolor.images.read import read_rgb_u8
from deepcolor.images.write import write_image
from deepcolor.metrics import psnr


def default_data_dir():
    env = os.environ.get("DEEPCOLOR_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_test_set(paths):
    """(name, y float32 (H, W) from 8-bit luma, truth uint8 RGB) per test image."""
    items = []
    for p in paths:
        truth = read_rgb_u8(p)
        y = rgb_to_gray_u8(truth).astype(np.float32) / 255.0
        items.append((p.stem, y, truth))
    return items


def write_grey_inputs(items, folder, overwrite=False):
    """The grey inputs of `items` (`load_test_set`) as 8-bit grey PNG files ``NAME.png`` in `folder`.

    Parameters
    ----------
    items : list of (str, ndarray of shape (H, W), ndarray)
        As `load_test_set` returns them; the luminance is the 8-bit luma over
        255, so ``rint(y * 255)`` gives back exactly its 8-bit values.
    folder : str or Path
        Created if missing.
    overwrite : bool, optional
        Write a file that exists already (False: keep it, as a rerun in the
        same work folder writes the same pixels).

    Returns
    -------
    paths : list of Path
        The files, in the order of `items`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, y, _ in items:
        paths.append(folder / f"{name}.png")
        if overwrite or not paths[-1].exists():
            write_image(paths[-1], np.rint(y * 255).astype(np.uint8))
    return paths


def score_constant_chroma(items, uv):
    """PSNR of each test image coloured with one constant chrominance (0, 0 = grey)."""
    scores = []
    for _, y, truth in items:
        chroma = np.broadcast_to(np.asarray(uv, np.float32), y.shape + (2,))
        scores.append(psnr(truth, to_uint8(combine_luma_chroma(y, chroma))))
    return scores


def score_model(model, items):
    """PSNR per test image and seconds per image of `colorize_luma` (in memory)."""
    scores, times = [], []
    for _, y, truth in items:
        t = time.perf_counter()
        rgb = colorize_luma(model, y)
        times.append(time.perf_counter() - t)
        scores.append(psnr(truth, rgb))
    return scores, times


def summary(values):
    return {"mean": round(float(np.mean(values)), 4), "median": round(float(np.median(values)), 4),
            "max": round(float(np.max(values)), 4), "n": len(values)}
