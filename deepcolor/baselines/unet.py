"""Baseline 2: one U-Net trained twice, by regression and by classification over ab bins.

Regression (L2 on ab) averages the plausible colours of an ambiguous region,
which pulls them towards grey-brown; classification over quantised ab with an
annealed-mean readout keeps them saturated. The two share the architecture
and the data, so the comparison isolates the loss.

Sources
-------
- O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for
  Biomedical Image Segmentation", MICCAI 2015: the encoder-decoder with skip
  connections.
- R. Zhang, P. Isola, A. A. Efros, "Colorful Image Colorization", ECCV 2016:
  ab quantised on a grid of 10 Lab units, keeping the bins that occur
  (313 in-gamut bins there), multinomial cross-entropy, and the annealed mean
  with T = 0.38 as the colour (their Sec. 2.1-2.3).

Scaled down for the CPU
-----------------------
Three poolings (128 px input, 16 px bottleneck), widths w, 2w, 4w, 8w with
w = 16 (Ronneberger et al.: four poolings, 64 to 1024 channels), batch
normalisation, bilinear upsampling in place of transposed convolutions, and
zero padding so the output has the input's size. The classifier keeps only
the bins present in the training set. Zhang et al.'s class rebalancing is
not used, so the two variants differ in the loss alone.
"""

import math

import numpy as np
import torch
from torch import nn

from deepcolor.baselines.data import AB_RANGE
from deepcolor.baselines.estimator import Baseline, _check_float
from deepcolor.baselines.layers import conv_block


class UNet(nn.Module):
    """L (N, 1, H, W) in [0, 1] -> (N, out_channels, H, W); H, W multiples of 8.

    Parameters
    ----------
    out_channels : int
        2 for ab regression, the number of bins for classification.
    width : int
        Channels of the first level (w); the bottleneck has 8w.
    """

    def __init__(self, out_channels, width=16):
        super().__init__()
        w = width
        widths = [w, 2 * w, 4 * w, 8 * w]
        self.down = nn.ModuleList()
        c_in = 1
        for c in widths:  # level i: (N, widths[i], H / 2**i, W / 2**i)
            self.down.append(nn.Sequential(conv_block(c_in, c), conv_block(c, c)))
            c_in = c
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(  # in: upsampled deeper level ++ skip
            nn.Sequential(conv_block(widths[i + 1] + widths[i], widths[i]), conv_block(widths[i], widths[i]))
            for i in reversed(range(3)))
        self.head = nn.Conv2d(w, out_channels, 1)

    def forward(self, L):
        skips = []
        x = L
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)  # level i
        x = skips.pop()  # (N, 8w, H/8, W/8)
        for block in self.up:
            skip = skips.pop()
            x = nn.functional.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)  # (N, out_channels, H, W)


class UNetRegression(Baseline):
    """U-Net regressing ab / AB_RANGE with a linear output and squared error.

    Parameters are those of `deepcolor.baselines.estimator.Baseline`.
    """

    name = "unet-regression"
    stride = 8

    def _build(self):
        return UNet(2, self.width)

    def _loss(self, module, L, ab):
        return nn.functional.mse_loss(module(L), ab)

    def _decode(self, out):
        return out.clamp(-1.0, 1.0) * AB_RANGE  # (N, 2, h, w)


# --- quantised ab (Zhang et al. 2016, Sec. 2.1) -------------------------------------------------


def _grid_side(bin_size):
    return math.ceil(2 * AB_RANGE / bin_size)


def ab_grid_index(ab, bin_size):
    """Index of each colour's cell on the regular ab grid.

    Parameters
    ----------
    ab : ndarray of shape (..., 2)
        In Lab units; values beyond +-AB_RANGE fall in the edge cells.
    bin_size : float
        Side of a cell, Lab units.

    Returns
    -------
    ndarray of shape (...), int64
        ``row * n + col`` with row from a, col from b, n = ceil(2 AB_RANGE / bin_size).
    """
    n = _grid_side(bin_size)
    cell = np.floor((np.asarray(ab, np.float64) + AB_RANGE) / bin_size).astype(np.int64)  # (..., 2)
    cell = np.clip(cell, 0, n - 1)
    return cell[..., 0] * n + cell[..., 1]


def grid_centres(index, bin_size):
    """Centres (..., 2), float32 Lab units, of grid cells `index` (..., int)."""
    n = _grid_side(bin_size)
    index = np.asarray(index, np.int64)
    cell = np.stack([index // n, index % n], axis=-1)  # (..., 2)
    return (-AB_RANGE + (cell + 0.5) * bin_size).astype(np.float32)


def occurring_bins(ab, bin_size):
    """The grid cells that hold at least one of the colours `ab` (..., 2): sorted int64 indices (Q,)."""
    return np.unique(ab_grid_index(np.asarray(ab).reshape(-1, 2), bin_size))


def ab_to_class(ab, bins, bin_size):
    """Class of each colour: its grid cell's position in `bins`, or the nearest kept cell's.

    Parameters
    ----------
    ab : ndarray of shape (..., 2), Lab units
    bins : ndarray of shape (Q,), int64
        Kept grid cells (`occurring_bins`).
    bin_size : float

    Returns
    -------
    ndarray of shape (...), int64 in [0, Q)
        A colour in a kept cell gets that cell; one outside (possible only
        for colours absent from the training set) gets the kept cell whose
        centre is nearest to its own cell's centre.
    """
    from sklearn.metrics import pairwise_distances_argmin  # lazy: scikit-learn is heavy

    bins = np.asarray(bins, np.int64)
    cells, inverse = np.unique(ab_grid_index(ab, bin_size), return_inverse=True)  # (C,), (...)
    pos = np.clip(np.searchsorted(bins, cells), 0, len(bins) - 1)  # (C,)
    classes = np.where(bins[pos] == cells, pos, -1)
    absent = classes < 0
    if absent.any():  # nearest kept cell, centre to centre
        classes[absent] = pairwise_distances_argmin(grid_centres(cells[absent], bin_size),
                                                    grid_centres(bins, bin_size))
    return classes[inverse].reshape(np.shape(ab)[:-1])


def annealed_mean(logits, centres, T=0.38):
    """The annealed mean of a distribution over ab bins (Zhang et al. 2016, Eq. 5).

    Parameters
    ----------
    logits : torch.Tensor of shape (N, Q, H, W)
        Unnormalised log-probabilities of the Q bins.
    centres : torch.Tensor or ndarray of shape (Q, 2)
        The bins' ab.
    T : float, optional
        Temperature, > 0: T = 1 gives the expectation, T -> 0 the centre of
        the most likely bin; Zhang et al. use 0.38.

    Returns
    -------
    torch.Tensor of shape (N, 2, H, W)
        ``sum_q softmax(logits / T)_q * centres_q``.

    Notes
    -----
    Zhang et al. re-normalise ``exp(log(z) / T)``; with z = softmax(logits)
    that is softmax(logits / T), computed here stably.
    """
    if not isinstance(T, (int, float)) or isinstance(T, bool) or not 0 < T < math.inf:
        raise ValueError(f"T must be a positive finite number, got {T!r}")
    centres = torch.as_tensor(centres, dtype=logits.dtype)
    if logits.ndim != 4 or centres.shape != (logits.shape[1], 2):
        raise ValueError(f"logits must be (N, Q, H, W) and centres (Q, 2), got {tuple(logits.shape)} "
                         f"and {tuple(centres.shape)}")
    p = torch.softmax(logits / T, dim=1)  # (N, Q, H, W)
    return torch.einsum("nqhw,qc->nchw", p, centres)


class UNetClassification(Baseline):
    """U-Net classifying each pixel's ab bin; colour by the annealed mean.

    Parameters
    ----------
    bin_size : float, optional
        Grid cell side in Lab units, in [1, 2 AB_RANGE] (Zhang et al. 2016: 10).
    temperature : float, optional
        Of the annealed mean (Zhang et al. 2016: 0.38).
    **common
        Settings of `deepcolor.baselines.estimator.Baseline`.

    Attributes
    ----------
    bins_ : ndarray of shape (Q,), int64
        Grid cells that occur in the loaded training images (held-out ones
        included): the classes.
    centres_ : ndarray of shape (Q, 2), float32
        Their centres, Lab units.
    """

    name = "unet-classification"
    stride = 8
    _extra_settings = ("bin_size", "temperature")

    def __init__(self, bin_size=10.0, temperature=0.38, **common):
        super().__init__(**common)
        self.bin_size = bin_size
        self.temperature = temperature

    def _check_settings(self):
        super()._check_settings()
        _check_float("bin_size", self.bin_size, 1.0, 2 * AB_RANGE, low_open=False)
        _check_float("temperature", self.temperature, 0.0, 100.0)

    def _prepare(self, data):
        ab = data.ab.permute(0, 2, 3, 1).numpy() * AB_RANGE  # (N, S, S, 2)
        self._set_arrays({"bins": occurring_bins(ab, self.bin_size)})

    def _arrays(self):
        return {"bins": self.bins_}

    def _set_arrays(self, arrays):
        bins = np.asarray(arrays["bins"])
        n = _grid_side(self.bin_size)
        if bins.ndim != 1 or len(bins) == 0 or bins.dtype.kind not in "iu" or bins.min() < 0 \
                or bins.max() >= n * n or np.any(np.diff(bins) <= 0):
            raise ValueError(f"bins must be increasing grid indices in [0, {n * n}), got {bins!r}")
        self.bins_ = bins.astype(np.int64)
        self.centres_ = grid_centres(self.bins_, self.bin_size)  # (Q, 2)
        self._centres_t = torch.from_numpy(self.centres_)

    def _build(self):
        return UNet(len(self.bins_), self.width)

    def _tensors(self, data):
        ab = data.ab.permute(0, 2, 3, 1).numpy() * AB_RANGE  # (N, S, S, 2)
        return (data.L, torch.from_numpy(ab_to_class(ab, self.bins_, self.bin_size)))  # (N, S, S) int64

    def _loss(self, module, L, target):
        return nn.functional.cross_entropy(module(L), target)

    def _decode(self, out):
        return annealed_mean(out, self._centres_t, self.temperature)  # (N, 2, h, w)
