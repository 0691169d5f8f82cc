"""What the comparison systems share: Lab colour, training data, a training loop, saving.

The baselines of issue #6 are end-to-end convolutional networks that predict
the CIELAB chrominance (a, b) of a whole image from its lightness L. They are
compared with Cheng et al. (2015) on the same inputs, so at colorization time
they obey the project's contract: the input is BT.601 luminance Y in [0, 1]
(`deepcolor.color`), and the output keeps it exactly.

Conventions
-----------
- Lab is scikit-image's CIELAB (sRGB, D65, 2 degree observer):
  L in [0, 100], a and b in Lab units.
- Network tensors are channels first: L as ``(N, 1, S, S)`` scaled to
  [0, 1] (L / 100), ab as ``(N, 2, S, S)`` scaled to [-1, 1] (ab / AB_RANGE).
- A baseline's directory holds ``manifest.json`` (format, version, baseline
  name, settings, training record, sha256 of every file),
  ``weights.safetensors`` and, where the baseline has fitted arrays (palette,
  bin centres), ``arrays.npz`` read with ``allow_pickle=False``. Loading
  verifies every checksum (`deepcolor.modelfiles.read_verified`).
"""

import dataclasses
import io
import json
import logging
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deepcolor.color import to_float
from deepcolor.files import atomic_write_bytes, atomic_write_text
from deepcolor.images.picture import ImageError
from deepcolor.images.read import read_rgb_u8
from deepcolor.modelfiles import MANIFEST, ModelError, _sha, read_verified

log = logging.getLogger(__name__)

# Half-width of the a and b range the networks cover, in Lab units. The sRGB
# gamut in CIELAB (D65) spans a in [-86.2, 98.2] and b in [-107.9, 94.5]
# (scikit-image's rgb2lab over all 8-bit colours; `test_ab_range_covers_srgb`),
# so +-110 holds every colour a photo can have, with little output range spent
# on colours no photo has. The nominal +-128 of 8-bit Lab would waste 15 %.
AB_RANGE = 110.0

FORMAT = "deepcolor-baseline"
FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
ARRAYS = "arrays.npz"

# Same default as FeatureConfig.min_chroma_spread: a reference whose (U, V)
# spread is smaller teaches no colour (near-grey or sepia photos).
MIN_CHROMA_SPREAD = 0.01


# --- Lab ------------------------------------------------------------------------------------


def rgb_to_lab(rgb):
    """CIELAB lightness and chrominance of an sRGB image (scikit-image's `rgb2lab`).

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3)
        uint8, or float in [0, 1].

    Returns
    -------
    L : ndarray of shape (H, W), float32
        Lightness in [0, 100].
    ab : ndarray of shape (H, W, 2), float32
        a and b in Lab units, within +-AB_RANGE for sRGB colours.
    """
    from skimage.color import rgb2lab

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must have shape (H, W, 3), got {rgb.shape}")
    if rgb.dtype == np.uint8:
        rgb = rgb.astype(np.float32) / np.float32(255.0)
    elif not np.issubdtype(rgb.dtype, np.floating):
        raise TypeError(f"rgb must be uint8 or float in [0, 1], got {rgb.dtype}")
    lab = rgb2lab(rgb).astype(np.float32, copy=False)  # (H, W, 3)
    return lab[..., 0], lab[..., 1:]


def lab_to_rgb(L, ab):
    """sRGB of CIELAB colours (scikit-image's `lab2rgb`), clipped to the gamut.

    Parameters
    ----------
    L : ndarray of shape (H, W)
        Lightness in [0, 100].
    ab : ndarray of shape (H, W, 2)
        Chrominance in Lab units.

    Returns
    -------
    rgb : ndarray of shape (H, W, 3), float32 in [0, 1]

    Notes
    -----
    A predicted (L, a, b) may lie outside the sRGB gamut; scikit-image clips
    the XYZ and RGB values (its warning about clipped negative Z values is
    silenced: clipping is the intended handling here). The baselines use only
    the chroma of this colour, at the input's own luminance.
    """
    from skimage.color import lab2rgb

    L = np.asarray(L, dtype=np.float32)
    ab = np.asarray(ab, dtype=np.float32)
    if L.ndim != 2 or ab.shape != L.shape + (2,):
        raise ValueError(f"L must be (H, W) and ab (H, W, 2), got {L.shape} and {ab.shape}")
    lab = np.concatenate([L[..., None], ab], axis=-1)  # (H, W, 3)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*negative Z values.*")
        return lab2rgb(lab).astype(np.float32, copy=False)


def luma_to_lightness(y):
    """CIELAB lightness L of the grey sRGB colour (y, y, y), for BT.601 luminance y.

    Parameters
    ----------
    y : ndarray of shape (H, W), float in [0, 1]

    Returns
    -------
    L : ndarray of shape (H, W), float32 in [0, 100]

    Notes
    -----
    This is what a baseline sees of a grey input: the grey photo (R = G = B =
    Y) in Lab. It is computed in closed form (sRGB decoding, then CIE 1976
    L*), equal to scikit-image's ``rgb2lab`` of the grey image within 1e-3
    (`test_luma_to_lightness_unit`) at a third of the cost.
    """
    y = np.clip(np.asarray(y, dtype=np.float32), 0.0, 1.0)
    linear = np.where(y <= 0.04045, y / 12.92, ((y + 0.055) / 1.055) ** 2.4)  # relative luminance Y/Yn
    eps = (6.0 / 29.0) ** 3
    f = np.where(linear > eps, np.cbrt(linear), linear / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    return (116.0 * f - 16.0).astype(np.float32)


# --- training data ----------------------------------------------------------------------------


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
    import cv2

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


def load_training_set(paths, size=128, seed=0, labels=None, max_images=None,
                      min_chroma_spread=MIN_CHROMA_SPREAD):
    """Read colour photos as training tensors for the baselines.

    Parameters
    ----------
    paths : sequence of str or Path
        Colour images (any file `deepcolor.io.read_rgb_u8` reads).
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
    from deepcolor.color import rgb_to_luma, rgb_to_yuv
    from deepcolor.extract import chroma_spread

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
        try:
            rgb = centre_square(read_rgb_u8(path), size)  # (S, S, 3) float32
        except ImageError as exc:
            skipped.append((path, f"unreadable: {exc.problem}"))
            log.warning("%s: skipped, %s", path, exc.problem)
            continue
        spread = chroma_spread(rgb_to_yuv(rgb)[..., 1:])
        if spread < min_chroma_spread:
            skipped.append((path, f"near-grey (chroma spread {spread:.4f} < {min_chroma_spread})"))
            log.info("%s: skipped, near-grey (chroma spread %.4f)", path, spread)
            continue
        _, ab = rgb_to_lab(rgb)  # (S, S, 2)
        Ls.append(luma_to_lightness(rgb_to_luma(rgb)) / np.float32(100.0))  # (S, S)
        abs_.append(np.clip(ab / np.float32(AB_RANGE), -1.0, 1.0))
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


# --- training loop ----------------------------------------------------------------------------


def _n_held_out(n, val_fraction):
    """Held-out items: round(n * val_fraction), at least 1 and at most n - 1 (0 if n < 2 or fraction 0)."""
    if n < 2 or val_fraction == 0:
        return 0
    return min(n - 1, max(1, round(n * val_fraction)))


def _check_fit_args(tensors, epochs, batch_size, lr, val_fraction, patience, flip):
    if not tensors or len(tensors[0]) == 0:
        raise ValueError("training needs at least one item, got none")
    lengths = [len(t) for t in tensors]
    if len(set(lengths)) != 1:
        raise ValueError(f"tensors must have the same length (first axis), got {lengths}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if not isinstance(val_fraction, (int, float)) or isinstance(val_fraction, bool) or not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if patience is not None and (not isinstance(patience, int) or isinstance(patience, bool) or patience < 1):
        raise ValueError(f"patience must be a positive int or None, got {patience!r}")
    if not isinstance(flip, bool):
        raise ValueError(f"flip must be True or False, got {flip!r}")


def _mean_loss(model, loss_fn, tensors, idx, batch_size):
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(idx), batch_size):
            b = idx[i:i + batch_size]
            total += float(loss_fn(model, *(t[b] for t in tensors))) * len(b)
    return total / len(idx)


def flip_half(batch, gen):
    """Mirror a random half of a batch's items left to right (the same items in every tensor).

    Tensors of 3 or more dimensions are images with the width last and are
    mirrored; others (labels) are kept.
    """
    mirror = torch.rand(len(batch[0]), generator=gen) < 0.5  # (N,)
    return [torch.where(mirror.view(-1, *[1] * (t.ndim - 1)), t.flip(-1), t) if t.ndim >= 3 else t
            for t in batch]


def fit(model, loss_fn, tensors, epochs, batch_size, lr, seed, progress=None, val_fraction=0.1,
        patience=None, flip=False):
    """Train `model` with Adam on mini-batches; keep the weights of the best held-out epoch.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place.
    loss_fn : callable
        ``loss_fn(model, *batch) -> scalar tensor``, where ``batch`` holds
        the rows of each of `tensors` for the batch's items.
    tensors : sequence of torch.Tensor
        Same length on the first axis (items, e.g. images).
    epochs : int
        Maximum number of passes over the training items.
    batch_size : int
    lr : float
        Adam's learning rate.
    seed : int
        Seeds the held-out split and the batch order.
    progress : callable, optional
        Called after each epoch with a dict (epoch, train_loss, val_loss).
    val_fraction : float, optional
        Share of the items held out (at least 1 and at most all but 1 when
        there are 2 or more items); 0 trains on all of them.
    patience : int, optional
        Stop after this many epochs without a lower held-out loss; None
        runs all `epochs`.
    flip : bool, optional
        Mirror a seeded random half of each training batch left to right
        (`flip_half`); held-out items are never mirrored.

    Returns
    -------
    history : dict
        ``train_loss`` and ``val_loss`` per epoch (``val_loss`` None without
        held-out items), ``best_epoch``, ``best_val_loss``, ``epochs_run``,
        ``n_train``, ``n_val``, ``seconds``.

    Raises
    ------
    ValueError
        For empty or unequal tensors and invalid settings.
    FloatingPointError
        When a batch's loss is not finite (training diverged).

    Notes
    -----
    A fixed number of epochs bounds the training time (issue #6 budgets 20
    minutes per baseline on 2 cores); the held-out loss, computed in eval
    mode after every epoch, picks the weights that are returned, as
    `deepcolor.networks.train_network` does for Cheng et al.'s network.
    Without held-out items the last epoch's weights are returned.
    """
    _check_fit_args(tensors, epochs, batch_size, lr, val_fraction, patience, flip)
    gen = torch.Generator().manual_seed(seed)
    n = len(tensors[0])
    perm = torch.randperm(n, generator=gen)
    n_val = _n_held_out(n, val_fraction)
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = {"train_loss": [], "val_loss": []}
    best, best_state, best_epoch, stale = math.inf, None, -1, 0
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        total = 0.0
        for i in range(0, len(order), batch_size):
            b = order[i:i + batch_size]
            batch = [t[b] for t in tensors]
            loss = loss_fn(model, *(flip_half(batch, gen) if flip else batch))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training diverged: loss {loss.item()} in epoch {epoch}; "
                                         f"try a smaller lr than {lr}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        history["train_loss"].append(total / len(train_idx))
        val_loss = _mean_loss(model, loss_fn, tensors, val_idx, batch_size) if n_val else None
        history["val_loss"].append(val_loss)
        if progress is not None:
            progress({"epoch": epoch, "train_loss": history["train_loss"][-1], "val_loss": val_loss})
        log.debug("epoch %d train loss %.6f held-out loss %s", epoch, history["train_loss"][-1], val_loss)
        if n_val == 0:
            best_epoch = epoch
            continue
        if val_loss < best - 1e-9:
            best, best_epoch, stale = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if patience is not None and stale >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history.update(best_epoch=best_epoch, best_val_loss=best if n_val else None, epochs_run=epoch + 1,
                   n_train=len(train_idx), n_val=n_val, seconds=round(time.perf_counter() - start, 3))
    return history


# --- the common estimator ---------------------------------------------------------------------


def _check_int(name, value, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_float(name, value, low, high, low_open=True):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low < value if low_open else low <= value) and value <= high
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")


class NotFittedError(ValueError, AttributeError):
    """A baseline used before `fit` or `load` (as scikit-learn's NotFittedError)."""


class Baseline:
    """A comparison colorizer: a network from L to ab, trained on colour photos.

    Parameters
    ----------
    size : int, optional
        Working size: training images are size x size, and an image to
        colorize is resized to longest side `size` (aspect kept).
    width : int, optional
        Channels of the network's first layer; deeper layers are multiples.
    epochs, batch_size, lr, val_fraction, patience, flip : optional
        Training settings, see `fit` in this module. Mirroring (`flip`) is
        on by default: it raised the mean PSNR on the BSDS500 test photos
        by 0.08 to 0.37 dB (docs/DESIGN.md).
    seed : int, optional
        Seeds the weights' initialisation, the held-out split and the batch
        order (and the k-means of the palette baseline).

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network (set by `fit` or `load`).
    history_ : dict
        Training record: the loop's history plus the data used.

    Notes
    -----
    Subclasses set `name` (the registry key), `stride` (the factor the
    network's input sides must be multiples of) and implement the hooks
    `_build`, `_tensors`, `_loss`, `_decode`; baselines with fitted
    arrays or values also `_prepare`, `_arrays`/`_set_arrays` and
    `_fitted`/`_set_fitted`.
    """

    name = None
    stride = 8
    uses_labels = False
    _extra_settings = ()  # names of the subclass's own settings

    def __init__(self, size=128, width=16, epochs=30, batch_size=16, lr=1e-3, seed=0, val_fraction=0.1,
                 patience=None, flip=True):
        self.size = size
        self.width = width
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.val_fraction = val_fraction
        self.patience = patience
        self.flip = flip

    # -- settings --

    def settings(self):
        """All settings as a plain dict (stored in the manifest)."""
        names = ("size", "width", "epochs", "batch_size", "lr", "seed", "val_fraction", "patience", "flip")
        return {k: getattr(self, k) for k in names + tuple(self._extra_settings)}

    def _check_settings(self):
        _check_int("size", self.size, 16)
        if self.size % self.stride:
            raise ValueError(f"size must be a multiple of {self.stride} for {self.name}, got {self.size}")
        _check_int("width", self.width, 2)
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("seed", self.seed, 0)
        _check_float("lr", self.lr, 0.0, 1.0)
        _check_float("val_fraction", self.val_fraction, 0.0, 0.9, low_open=False)
        if self.patience is not None:
            _check_int("patience", self.patience, 1)
        if not isinstance(self.flip, bool):
            raise ValueError(f"flip must be True or False, got {self.flip!r}")

    # -- hooks --

    def _prepare(self, data):
        """Learn what the network's shape depends on (palette, bins, classes) from the TrainingSet."""

    def _fitted(self):
        """JSON-able fitted values for the manifest."""
        return {}

    def _set_fitted(self, fitted):
        pass

    def _arrays(self):
        """Fitted numpy arrays for ``arrays.npz``."""
        return {}

    def _set_arrays(self, arrays):
        pass

    def _build(self):
        raise NotImplementedError

    def _tensors(self, data):
        """The tensors `fit` batches: by default (L, ab)."""
        return (data.L, data.ab)

    def _loss(self, module, *batch):
        raise NotImplementedError

    def _decode(self, out):
        """Network output -> ab (N, 2, h, w) in Lab units."""
        raise NotImplementedError

    # -- training --

    def fit(self, paths, labels=None, progress=None, max_images=None):
        """Train on colour photos.

        Parameters
        ----------
        paths : sequence of str or Path
            Colour reference images.
        labels : callable, optional
            ``labels(path) -> int or None``; used only by baselines with a
            classification loss (`uses_labels`), ignored by the others.
        progress : callable, optional
            Called after each epoch with a dict (see `fit` in this module).
        max_images : int, optional
            A seeded random subset of this many images.

        Returns
        -------
        self
        """
        self._check_settings()
        start = time.perf_counter()
        data = load_training_set(paths, self.size, self.seed, labels if self.uses_labels else None,
                                 max_images)
        seconds = time.perf_counter() - start
        self.fit_training_set(data, progress)
        self.history_["load_seconds"] = round(seconds, 3)
        return self

    def fit_training_set(self, data, progress=None):
        """Train on a loaded `TrainingSet` (e.g. to train several baselines on the same data).

        Its images must be ``size x size``. Returns self.
        """
        self._check_settings()
        if tuple(data.L.shape[2:]) != (self.size, self.size):
            raise ValueError(f"training images are {tuple(data.L.shape[2:])}, "
                             f"this {self.name} needs size={self.size}")
        self._prepare(data)
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG untouched
            torch.manual_seed(self.seed)
            module = self._build()
        history = fit(module, self._loss, self._tensors(data), self.epochs, self.batch_size, self.lr,
                      self.seed, progress, self.val_fraction, self.patience, self.flip)
        self.module_ = module
        history.update(n_images=len(data), n_skipped=len(data.skipped))
        self.history_ = history
        return self

    # -- prediction --

    def _check_fitted(self):
        if not hasattr(self, "module_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit or load first")

    def predict_ab(self, L_small):
        """Chrominance of a working-size lightness image.

        Parameters
        ----------
        L_small : ndarray of shape (h, w), float in [0, 1]
            Lightness / 100.

        Returns
        -------
        ab : ndarray of shape (h, w, 2), float32
            In Lab units.

        Notes
        -----
        The image is padded (edge replicated) to multiples of `stride` and
        the prediction cropped back.
        """
        self._check_fitted()
        L_small = np.asarray(L_small, dtype=np.float32)
        if L_small.ndim != 2 or 0 in L_small.shape:
            raise ValueError(f"L_small must have shape (h, w), got {L_small.shape}")
        h, w = L_small.shape
        x = torch.from_numpy(L_small)[None, None]  # (1, 1, h, w)
        pad_r, pad_c = -h % self.stride, -w % self.stride
        x = F.pad(x, (0, pad_c, 0, pad_r), mode="replicate")  # (1, 1, h', w')
        self.module_.eval()
        with torch.inference_mode():
            ab = self._decode(self.module_(x))[0, :, :h, :w]  # (2, h, w)
        return np.ascontiguousarray(ab.permute(1, 2, 0).numpy(), dtype=np.float32)

    def chroma(self, gray):
        """BT.601 chrominance (U, V) of the colour predicted for a grey image, at its full size.

        Parameters
        ----------
        gray : ndarray of shape (H, W), float in [0, 1]
            BT.601 luminance Y.

        Returns
        -------
        uv : ndarray of shape (H, W, 2), float32

        Notes
        -----
        The network sees the lightness of the grey image resized to longest
        side `size` (aspect kept); its ab is upsampled bilinearly to (H, W),
        converted with the full-size lightness to sRGB, and only that
        colour's BT.601 chroma (U, V) is kept, to be put on the input's Y
        (`colorize`, and `deepcolor colorize --method`) as `deepcolor` does for
        Cheng et al.
        """
        import cv2

        from deepcolor.color import rgb_to_yuv

        self._check_fitted()
        gray = np.asarray(gray)
        if gray.ndim != 2 or 0 in gray.shape:
            raise ValueError(f"gray must have shape (H, W), got {gray.shape}")
        if not np.issubdtype(gray.dtype, np.floating):
            raise TypeError(f"gray must be float luminance in [0, 1], got {gray.dtype}")
        gray = gray.astype(np.float32, copy=False)
        if not np.isfinite(gray).all():
            raise ValueError("gray must be finite, got NaN or infinite values")
        if gray.min() < 0.0 or gray.max() > 1.0:
            raise ValueError(f"gray must lie in [0, 1], got range [{gray.min():.4g}, {gray.max():.4g}]")
        H, W = gray.shape
        scale = self.size / max(H, W)
        h, w = max(1, round(H * scale)), max(1, round(W * scale))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = cv2.resize(gray, (w, h), interpolation=interpolation) if (h, w) != (H, W) else gray
        ab = self.predict_ab(luma_to_lightness(small) / np.float32(100.0))  # (h, w, 2)
        if (h, w) != (H, W):
            ab = cv2.resize(ab, (W, H), interpolation=cv2.INTER_LINEAR)  # (H, W, 2)
        rgb = lab_to_rgb(luma_to_lightness(gray), ab)  # (H, W, 3)
        return rgb_to_yuv(rgb)[..., 1:]  # (H, W, 2)

    def colorize(self, gray):
        """Colour image of a grey one, with the grey image's luminance kept exactly.

        Parameters
        ----------
        gray : ndarray of shape (H, W), float in [0, 1]
            BT.601 luminance Y.

        Returns
        -------
        rgb : ndarray of shape (H, W, 3), uint8
            Its BT.601 luminance equals ``gray`` up to rounding to 8 bits:
            `chroma` put on the input's Y by `combine_luma_chroma`.
        """
        from deepcolor.color import combine_luma_chroma, to_uint8

        uv = self.chroma(gray)
        return to_uint8(combine_luma_chroma(np.asarray(gray, np.float32), uv))

    # -- files --

    def save(self, model_dir):
        """Write the baseline's directory; each file atomically, the manifest last."""
        from safetensors.torch import save as st_save

        from deepcolor import __version__
        from deepcolor.ensemble import versions

        self._check_fitted()
        model_dir = Path(model_dir)
        state = {k: v.contiguous() for k, v in self.module_.state_dict().items()}
        # one metadata key: the same network gives the same bytes (deepcolor.ensemble)
        files = {WEIGHTS: st_save(state, metadata={"format": f"{FORMAT} {__version__}"})}
        arrays = self._arrays()
        if arrays:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            files[ARRAYS] = buf.getvalue()
        for fname, data in files.items():
            atomic_write_bytes(model_dir / fname, data)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "baseline": self.name,
            "settings": self.settings(),
            "fitted": self._fitted(),
            "versions": versions(),
            "history": getattr(self, "history_", {}),
            "files": {fname: _sha(data) for fname, data in files.items()},
        }
        atomic_write_text(model_dir / MANIFEST, json.dumps(manifest, indent=1))

    @classmethod
    def load(cls, model_dir):
        """Load and verify a baseline directory, as the class its manifest names.

        ``Baseline.load`` loads any baseline; a subclass's ``load`` refuses
        another kind.

        Raises
        ------
        deepcolor.modelfiles.ModelError
            Naming the file and the problem: missing or corrupt files, an
            unknown or unexpected baseline, settings or weights that do not
            fit together.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load as st_load

        from deepcolor.baselines import BASELINES

        model_dir = Path(model_dir)
        mpath = model_dir / MANIFEST
        manifest, blobs = read_verified(model_dir, FORMAT, FORMAT_VERSION, "baseline")
        name = manifest.get("baseline")
        if name not in BASELINES:
            raise ModelError(f"{mpath}: unknown baseline {name!r}; known: {sorted(BASELINES)}")
        klass = BASELINES[name]
        if not issubclass(klass, cls):
            raise ModelError(f"{mpath}: a {name!r} baseline, not a {cls.name!r} one")
        try:
            model = klass(**manifest["settings"])
            model._check_settings()
            model._set_fitted(manifest["fitted"])
            if ARRAYS in blobs:
                with np.load(io.BytesIO(blobs[ARRAYS]), allow_pickle=False) as npz:
                    model._set_arrays({k: npz[k] for k in npz.files})
            module = model._build()
            module.load_state_dict(st_load(blobs[WEIGHTS]), strict=True)
        except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
            raise ModelError(f"{mpath}: inconsistent baseline ({type(exc).__name__}: {exc})") from None
        module.eval()
        model.module_ = module
        model.history_ = manifest.get("history", {})
        model.manifest = manifest
        return model


def count_parameters(module):
    """Number of trainable parameters of a torch module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def conv_block(c_in, c_out, stride=1, dilation=1):
    """3x3 convolution (zero padding keeps the size / stride), batch normalisation, ReLU."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
