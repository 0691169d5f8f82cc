"""Baseline 3: colour palette classification.

k-means over the training photos' colours gives a palette of 32 colours; a
small CNN classifies each pixel into a palette entry (one-hot targets,
cross-entropy), and the colour of a pixel is the palette entry of its most
likely class.

Source
------
Colour palette classification as described by Li et al., as issue #6 names
it: a k-means palette of the references' colours (32 colours), per-pixel
classification into it by a small CNN with one-hot targets. (The issue
gives the authors only; the full reference, title, venue and year, was not
available to us and must be added before the report cites it.) The
network below is ours, sized for the CPU.

Notes
-----
The palette is clustered in the ab plane (Lab units) of the training
photos, not in RGB or Lab: the output keeps the input's luminance
(`Baseline.colorize`), so a palette entry only needs to say the chroma; an
RGB or Lab palette would spend entries on lightness the input already fixes.

k-means runs on at most 200 000 pixels of the loaded training images
(held-out ones included) sampled with the seed (scikit-learn
`KMeans`, k-means++, 4 initialisations). When the sample holds no more than
`n_colors` distinct colours, the palette is those colours (k-means would
return duplicate centres); it then has fewer entries.

Scaled down for the CPU: widths w, 2w, 4w (w = 16); two stride-2
convolutions, three dilated convolutions (dilation 2, 4, 8) at a quarter of
the size for context, bilinear upsampling and one skip from the full-size
first layer so class boundaries can follow the luminance edges.
"""

import logging

import numpy as np
import torch
from torch import nn

from deepcolor.baselines.data import AB_RANGE
from deepcolor.baselines.estimator import Baseline, _check_int
from deepcolor.baselines.layers import conv_block

log = logging.getLogger(__name__)

MAX_KMEANS_PIXELS = 200_000


def fit_palette(ab, n_colors=32, seed=0, max_pixels=MAX_KMEANS_PIXELS):
    """A palette of `n_colors` chroma by k-means.

    Parameters
    ----------
    ab : ndarray of shape (..., 2)
        Colours (a, b) of the training pixels, Lab units.
    n_colors : int, optional
    seed : int, optional
        Seeds the pixel sample and k-means.
    max_pixels : int, optional
        k-means runs on a random sample of at most this many pixels.

    Returns
    -------
    palette : ndarray of shape (K, 2), float32
        K = n_colors, or the number of distinct sampled colours if smaller;
        rows sorted by a, then b.
    """
    from sklearn.cluster import KMeans  # lazy: scikit-learn is heavy, loaded only to fit a palette

    if not isinstance(n_colors, int) or isinstance(n_colors, bool) or n_colors < 2:
        raise ValueError(f"n_colors must be an int >= 2, got {n_colors!r}")
    x = np.asarray(ab, np.float32).reshape(-1, 2)  # (P, 2)
    if len(x) == 0:
        raise ValueError("the palette needs at least one pixel, got none")
    rng = np.random.default_rng(seed)
    if len(x) > max_pixels:
        x = x[rng.choice(len(x), max_pixels, replace=False)]
    distinct = np.unique(x, axis=0)  # (D, 2), sorted by a then b
    if len(distinct) <= n_colors:
        log.info("%d distinct colours for a palette of %d: the palette is those colours",
                 len(distinct), n_colors)
        return distinct
    km = KMeans(n_clusters=n_colors, n_init=4, random_state=seed).fit(x)
    centres = km.cluster_centers_.astype(np.float32)  # (K, 2)
    return centres[np.lexsort((centres[:, 1], centres[:, 0]))]


def nearest_entry(ab, palette):
    """Index (...) int64 of the palette entry (K, 2) nearest to each colour of `ab` (..., 2)."""
    from sklearn.metrics import pairwise_distances_argmin  # lazy: scikit-learn is heavy

    ab = np.asarray(ab, np.float32)
    idx = pairwise_distances_argmin(ab.reshape(-1, 2), np.asarray(palette, np.float32))  # chunked
    return idx.astype(np.int64).reshape(ab.shape[:-1])


class PaletteNet(nn.Module):
    """L (N, 1, H, W) in [0, 1] -> palette logits (N, K, H, W); H, W multiples of 4.

    Parameters
    ----------
    n_colors : int
        Palette entries K.
    width : int
        Channels of the first layer (w).
    """

    def __init__(self, n_colors, width=16):
        super().__init__()
        w = width
        self.stem = conv_block(1, w)  # (N, w, H, W)
        self.down = nn.Sequential(
            conv_block(w, 2 * w, stride=2), conv_block(2 * w, 2 * w),          # (N, 2w, H/2, W/2)
            conv_block(2 * w, 4 * w, stride=2), conv_block(4 * w, 4 * w),      # (N, 4w, H/4, W/4)
            *(conv_block(4 * w, 4 * w, dilation=d) for d in (2, 4, 8)),     # context, same size
        )
        self.head = nn.Sequential(conv_block(4 * w + w, 2 * w), nn.Conv2d(2 * w, n_colors, 1))

    def forward(self, L):
        full = self.stem(L)
        x = nn.functional.interpolate(self.down(full), size=full.shape[2:], mode="bilinear",
                                      align_corners=False)  # (N, 4w, H, W)
        return self.head(torch.cat([x, full], dim=1))  # (N, K, H, W)


class Palette(Baseline):
    """Per-pixel classification into a k-means palette of chroma.

    Parameters
    ----------
    n_colors : int, optional
        Palette size (32 in the issue); fewer if the photos have fewer
        distinct colours.
    **common
        Settings of `deepcolor.baselines.estimator.Baseline`.

    Attributes
    ----------
    palette_ : ndarray of shape (K, 2), float32
        The palette, Lab units.
    """

    name = "palette"
    stride = 4
    _extra_settings = ("n_colors",)

    def __init__(self, n_colors=32, **common):
        super().__init__(**common)
        self.n_colors = n_colors

    def _check_settings(self):
        super()._check_settings()
        _check_int("n_colors", self.n_colors, 2)

    def _prepare(self, data):
        ab = data.ab.permute(0, 2, 3, 1).numpy() * AB_RANGE  # (N, S, S, 2)
        self._set_arrays({"palette": fit_palette(ab, self.n_colors, self.seed)})

    def _arrays(self):
        return {"palette": self.palette_}

    def _set_arrays(self, arrays):
        palette = np.asarray(arrays["palette"])
        if palette.ndim != 2 or palette.shape[1] != 2 or not 1 <= len(palette) <= self.n_colors \
                or palette.dtype.kind != "f" or not np.isfinite(palette).all():
            raise ValueError(f"palette must be (K, 2) finite floats with 1 <= K <= n_colors={self.n_colors}, "
                             f"got shape {palette.shape} of {palette.dtype}")
        self.palette_ = palette.astype(np.float32)
        self._palette_t = torch.from_numpy(self.palette_)

    def _build(self):
        return PaletteNet(len(self.palette_), self.width)

    def _tensors(self, data):
        ab = data.ab.permute(0, 2, 3, 1).numpy() * AB_RANGE  # (N, S, S, 2)
        return (data.L, torch.from_numpy(nearest_entry(ab, self.palette_)))  # (N, S, S) int64

    def _loss(self, module, L, target):
        return nn.functional.cross_entropy(module(L), target)  # one-hot targets

    def _decode(self, out):
        return self._palette_t[out.argmax(dim=1)].permute(0, 3, 1, 2)  # (N, 2, h, w)
