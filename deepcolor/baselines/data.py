"""The comparison systems' training data: colour photos as Lab network tensors.

Network tensors are channels first: L as ``(N, 1, S, S)`` scaled to [0, 1]
(L / 100), ab as ``(N, 2, S, S)`` scaled to [-1, 1] (ab / AB_RANGE). The
input L is the lightness of the photo's grey version (BT.601 luminance,
`deepcolor.color.luma_to_lightness`), as at colorization time.
"""

import dataclasses
import logging

import cv2
import numpy as np
import torch

from deepcolor.color import luma_to_lightness, rgb_to_lab, rgb_to_luma, rgb_to_yuv
from deepcolor.extract import chroma_spread
from deepcolor.color import to_float
from deepcolor.images.picture import ImageError
from deepcolor.images.read import read_rgb_u8

log = logging.getLogger(__name__)


# Half-width of the a and b range the networks cover, in Lab units. The sRGB
# gamut in CIELAB (D65) spans a in [-86.2, 98.2] and b in [-107.9, 94.5]
# (scikit-image's rgb2lab over all 8-bit colours; `test_ab_range_covers_srgb`),
# so +-110 holds every colour a photo can have, with little output range spent
# on colours no photo has. The nominal +-128 of 8-bit Lab would waste 15 %.
AB_RANGE = 110.0

# Same default as FeatureConfig.min_chroma_spread: a reference whose (U, V)
# spread is smaller teaches no colour (near-grey or sepia photos).
MIN_CHROMA_SPREAD = 0.01


@dataclasses.dataclass(frozen=True)
class TrainingSet:
    """Square training images as network tensors.

    Attributes
    ----------
    L : torch.Tensor of shape (N, 1, S, S), float32 in [0, 1]
        Lightness / 100 of each image's grey version (see `load_training_set`).
    ab : torch.Tensor of shape (N, 2, S, S), float32 in [-1, 1]
        The colour image's a, b divided by AB_RANGE.
    labels : torch.Tensor of shape (N,), int64, or None
        Class of each image, -1 where unknown; None without a label function.
    paths : list of str
        The images used, in the order of the tensors.
    skipped : list of (str, str)
        Images not used and why (near-grey, unreadable).
    """

    L: torch.Tensor
    ab: torch.Tensor
    labels: torch.Tensor | None
    paths: list
    skipped: list

    def __len__(self):
        return len(self.L)


def centre_square(rgb, size):
    """The central square of an image, resized to size x size.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
    size : int

    Returns
    -------
    ndarray of shape (size, size, 3), float32 in [0, 1]
        Area interpolation when shrinking, bilinear when enlarging.
    """
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = to_float(np.ascontiguousarray(rgb[top:top + side, left:left + side]))  # (side, side, 3)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def _check_label(label, path):
    if label is None:
        return -1
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) or label < 0:
        raise ValueError(f"{path}: label must be a non-negative int or None, got {label!r}")
    return int(label)


def _read_item(path, size, min_chroma_spread):
    """A photo's network arrays (L / 100 (S, S), ab / AB_RANGE (S, S, 2)), or why it is skipped (str)."""
    try:
        rgb = centre_square(read_rgb_u8(path), size)  # (S, S, 3) float32
    except ImageError as exc:
        log.warning("%s: skipped, %s", path, exc.problem)
        return f"unreadable: {exc.problem}"
    spread = chroma_spread(rgb_to_yuv(rgb)[..., 1:])
    if spread < min_chroma_spread:
        log.info("%s: skipped, near-grey (chroma spread %.4f)", path, spread)
        return f"near-grey (chroma spread {spread:.4f} < {min_chroma_spread})"
    _, ab = rgb_to_lab(rgb)  # (S, S, 2)
    return (luma_to_lightness(rgb_to_luma(rgb)) / np.float32(100.0),  # (S, S)
            np.clip(ab / np.float32(AB_RANGE), -1.0, 1.0))


def load_training_set(paths, size=128, seed=0, labels=None, max_images=None,
                      min_chroma_spread=MIN_CHROMA_SPREAD):
    """Read colour photos as training tensors for the baselines.

    Parameters
    ----------
    paths : sequence of str or Path
        Colour images (any file `deepcolor.images.read.read_rgb_u8` reads).
    size : int, optional
        Side S of the square training images, in pixels.
    seed : int, optional
        Seed of the random subset when `max_images` is given.
    labels : callable, optional
        ``labels(path) -> int or None``: the image's class (e.g. its Intel
        scene category), None where unknown.
    max_images : int, optional
        Use a seeded random subset of this many paths (all by default).
    min_chroma_spread : float, optional
        Skip images whose chroma spread (RMS distance of BT.601 U, V from
        their mean, `deepcolor.extract.chroma_spread`) is smaller: near-grey
        and single-tint photos teach no colour.

    Returns
    -------
    TrainingSet

    Raises
    ------
    ValueError
        For a bad `size` or `max_images`, a label that is not a non-negative
        int or None, or when no usable image is left.

    Notes
    -----
    Each image's central square (side = its shorter side) is resized to
    size x size. Cropping rather than squashing the whole image keeps the
    objects' proportions the same as at colorization time, where the image
    is resized with its aspect kept; it loses the borders of the longer side.

    The input L is the lightness of the photo's grey version, grey = its
    BT.601 luminance Y (`luma_to_lightness`), not the colour photo's own L:
    it is exactly what the network sees when it colorizes a grey image,
    so training and use agree. The target ab is the colour photo's.
    """
    if not isinstance(size, int) or isinstance(size, bool) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    paths = [str(p) for p in paths]
    if max_images is not None:
        if not isinstance(max_images, int) or isinstance(max_images, bool) or max_images < 1:
            raise ValueError(f"max_images must be a positive int, got {max_images!r}")
        if max_images < len(paths):
            keep = np.sort(np.random.default_rng(seed).choice(len(paths), max_images, replace=False))
            paths = [paths[i] for i in keep]
    Ls, abs_, labs, used, skipped = [], [], [], [], []
    for path in paths:
        item = _read_item(path, size, min_chroma_spread)
        if isinstance(item, str):
            skipped.append((path, item))
            continue
        Ls.append(item[0])
        abs_.append(item[1])
        if labels is not None:
            labs.append(_check_label(labels(path), path))
        used.append(path)
    if not used:
        raise ValueError(f"no usable colour image among {len(paths)} path(s) "
                         f"({len(skipped)} skipped as near-grey or unreadable)")
    L = torch.from_numpy(np.stack(Ls)[:, None])  # (N, 1, S, S)
    ab = torch.from_numpy(np.ascontiguousarray(np.stack(abs_).transpose(0, 3, 1, 2)))  # (N, 2, S, S)
    lab_t = torch.tensor(labs, dtype=torch.int64) if labels is not None else None
    return TrainingSet(L, ab, lab_t, used, skipped)
