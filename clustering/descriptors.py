"""Global image descriptors for clustering references and choosing a cluster.

Cheng et al. (2016, Algorithm 3) cluster the references by a global
descriptor that the paper does not specify. Two are offered, both computed
from the luminance alone (a target has nothing else):

- ``gist``: a GIST-like oriented-energy grid (after Oliva and Torralba 2001):
  the image at 64x64 with its local contrast normalised, the energy of a bank
  of Gabor filters (3 wavelengths x 6 orientations, even and odd phase)
  averaged over a 4x4 grid, 288 values, unit L2 norm.
- ``semantic``: the parser's class shares over a 2x2 grid and over the whole
  image, square-rooted (Euclidean distance between square-rooted
  distributions is the Hellinger distance, what k-means then minimises),
  5 x K values.

``gist+semantic`` concatenates both, each scaled to unit norm. The choice
between them is measured in docs/DESIGN.md. The semantic histogram (the
parser's class shares over the whole image) is computed alongside: it is what
the selector compares (`deepcolor.clustering.selector`).
"""

import functools

import cv2
import numpy as np

from deepcolor.features.semantic import semantic_histogram

from .config import DESCRIPTORS

GIST_SIZE = 64
GIST_WAVELENGTHS = (4.0, 8.0, 16.0)  # pixels of the 64x64 image
GIST_ORIENTATIONS = 6
GIST_GRID = 4
SEMANTIC_GRID = 2


@functools.lru_cache(maxsize=1)
def _gabor_bank():
    """Even and odd Gabor kernels, float32: a list of (even, odd) per (wavelength, orientation)."""
    bank = []
    for lam in GIST_WAVELENGTHS:
        sigma = 0.56 * lam  # one-octave bandwidth
        size = int(2 * round(2.5 * sigma) + 1)
        for k in range(GIST_ORIENTATIONS):
            theta = np.pi * k / GIST_ORIENTATIONS
            even = cv2.getGaborKernel((size, size), sigma, theta, lam, 1.0, 0.0, ktype=cv2.CV_32F)
            odd = cv2.getGaborKernel((size, size), sigma, theta, lam, 1.0, np.pi / 2, ktype=cv2.CV_32F)
            even -= even.mean()  # no response to a flat image
            bank.append((even / np.abs(even).sum(), odd / np.abs(odd).sum()))
    return bank


def grid_means(image, grid):
    """Mean of each of grid x grid cells of (H, W, C) `image` (H, W divisible by grid): (grid, grid, C)."""
    h, w = image.shape[:2]
    return image.reshape(grid, h // grid, grid, w // grid, -1).mean(axis=(1, 3))


def gist_descriptor(gray):
    """GIST-like descriptor of a luminance image (H, W) in [0, 1]: float32 (288,), unit norm.

    The image is resized to 64x64 (its aspect ratio is not kept: the grid
    cells then cover the same share of every image), its local mean removed
    and its local contrast normalised (Gaussian windows of sigma 4 px), then
    each Gabor pair's energy sqrt(even^2 + odd^2) is averaged over a 4x4 grid.
    """
    gray = np.asarray(gray, np.float32)
    if gray.ndim != 2 or min(gray.shape) < 1:
        raise ValueError(f"gray must be a non-empty 2-D image, got shape {gray.shape}")
    img = cv2.resize(gray, (GIST_SIZE, GIST_SIZE), interpolation=cv2.INTER_AREA)
    img = img - cv2.GaussianBlur(img, (0, 0), 4.0, borderType=cv2.BORDER_REFLECT)
    img = img / (np.sqrt(cv2.GaussianBlur(img * img, (0, 0), 4.0, borderType=cv2.BORDER_REFLECT)) + 0.05)
    energies = []
    for even, odd in _gabor_bank():
        e = cv2.filter2D(img, -1, even, borderType=cv2.BORDER_REFLECT)
        o = cv2.filter2D(img, -1, odd, borderType=cv2.BORDER_REFLECT)
        energies.append(np.sqrt(e * e + o * o))
    cells = grid_means(np.stack(energies, axis=-1), GIST_GRID)  # (4, 4, 18)
    d = cells.reshape(-1)
    return (d / max(float(np.linalg.norm(d)), 1e-12)).astype(np.float32)


def semantic_descriptor(prob):
    """Semantic layout of parser probabilities (H, W, K): float32 (5 K,) = sqrt of 2x2-cell and whole-image shares."""
    prob = np.asarray(prob, np.float32)
    if prob.ndim != 3 or min(prob.shape[:2]) < 1:
        raise ValueError(f"prob must be a non-empty (H, W, K) array, got shape {prob.shape}")
    h, w = prob.shape[:2]
    rb = np.linspace(0, h, SEMANTIC_GRID + 1).astype(int)[:-1]  # cell starts (cells differ by <= 1 px)
    cb = np.linspace(0, w, SEMANTIC_GRID + 1).astype(int)[:-1]
    sums = np.add.reduceat(np.add.reduceat(prob, rb, axis=0), cb, axis=1)  # (g, g, K)
    cells = sums.reshape(-1, prob.shape[-1])  # (4, K); normalised to shares below
    whole = prob.reshape(-1, prob.shape[-1]).mean(axis=0, keepdims=True)  # (1, K)
    shares = np.concatenate([whole, cells])
    shares = np.maximum(shares, 0) / np.maximum(shares.sum(axis=1, keepdims=True), 1e-12)
    return np.sqrt(shares).reshape(-1).astype(np.float32) / np.sqrt(len(shares), dtype=np.float32)


def combine(gist, semantic, name):
    """The descriptor `name` (one of `DESCRIPTORS`) from the two parts (N, .) or (.,)."""
    if name == "gist":
        return gist
    if name == "semantic":
        return semantic
    if name == "gist+semantic":
        return np.concatenate([gist, semantic], axis=-1) / np.float32(np.sqrt(2.0))
    raise ValueError(f"descriptor must be one of {DESCRIPTORS}, got {name!r}")


def image_descriptors(gray, parser, gist=True):
    """Everything the clustering and the selector need of one working-size luminance image.

    Parameters
    ----------
    gray : ndarray (H, W) float32 in [0, 1]
    parser : object with ``predict_proba(gray) -> (H, W, K)``
    gist : bool
        Compute the GIST descriptor (None in its place otherwise: colorizing
        with a model clustered by the semantic descriptor does not need it).

    Returns
    -------
    dict with ``gist`` (288,), ``semantic`` (5 K,) and ``histogram`` (K,), float32
    """
    prob = parser.predict_proba(np.asarray(gray, np.float32))
    histogram = semantic_histogram(prob)
    histogram = histogram / max(float(histogram.sum()), 1e-12)
    return {"gist": gist_descriptor(gray) if gist else None, "semantic": semantic_descriptor(prob),
            "histogram": histogram.astype(np.float32)}
