"""The comparison systems' estimator: `Baseline`, what every baseline shares.

A baseline is a scikit-learn-like estimator: settings in ``__init__``,
``fit(paths)`` on colour photos (the shared training loop,
`deepcolor.training.fit_held_out`), ``predict_chroma(y)`` and ``colorize(y)``
with the grey input's luminance kept exactly, ``save(dir)`` /
``Baseline.load(dir)`` (`deepcolor.baselines.files`).

The networks predict the CIELAB chrominance (a, b) of a whole image from its
lightness L (`deepcolor.color`'s CIE Lab section); they are compared with
Cheng et al. (2015) on the same inputs, so at colorization time they obey the
project's contract: the input is BT.601 luminance Y in [0, 1], and the output
keeps it exactly.
"""

import math
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deepcolor.baselines.data import load_training_set
from deepcolor.baselines.files import load_baseline, save_baseline
from deepcolor.color import combine_luma_chroma, lab_to_rgb, luma_to_lightness, rgb_to_yuv, to_uint8
from deepcolor.training import fit_held_out

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
        Training settings, see `deepcolor.training.fit_held_out`. Mirroring
        (`flip`) is on by default: it raised the mean PSNR on the BSDS500
        test photos by 0.08 to 0.37 dB (docs/DESIGN.md).
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
            Called after each epoch with a dict (see `deepcolor.training.fit_held_out`).
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
        history = fit_held_out(module, self._loss, self._tensors(data), self.epochs, self.batch_size, self.lr,
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

    def predict_chroma(self, y):
        """The colorizer interface (as `deepcolor.ensemble.Model.predict_chroma`): (U, V, record).

        Parameters
        ----------
        y : ndarray of shape (H, W), float in [0, 1]
            BT.601 luminance at full resolution.

        Returns
        -------
        uv : ndarray of shape (H, W, 2), float32
            `chroma`, at full size (a baseline upsamples its own ab).
        record : None
            A baseline has no cluster choice to record.
        """
        return self.chroma(y), None

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
        uv = self.chroma(gray)
        return to_uint8(combine_luma_chroma(np.asarray(gray, np.float32), uv))

    # -- files (deepcolor.baselines.files) --

    def save(self, model_dir):
        """Write the baseline's directory; each file atomically, the manifest last."""
        self._check_fitted()
        save_baseline(self, model_dir)

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
        return load_baseline(model_dir, cls)
