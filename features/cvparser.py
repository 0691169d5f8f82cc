"""The grey-image scene parser (format version 2) run with OpenCV's dnn module, without torch.

A parser directory (``manifest.json`` with the layer ``spec``, and
``deeplab.safetensors``) is read here (`read_parser_dir`), its graph written
as ONNX in memory (`deepcolor.features.onnxgraph`) and run by OpenCV
(`OpenCVGreyParser`). Colorizing uses it: torch is not imported. The torch
network of the same directory (`deepcolor.features.greyparser.GreyParser`)
is what distillation trains; both share `GridParser`, the part of a parser
that is not the network: the input image, the classes, the one-image memo and
the upsampling of the class probabilities.
"""

import copy
import hashlib
import threading
from pathlib import Path

import cv2
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load

from deepcolor.modelfiles import ModelError, read_verified

from ._validate import check_gray
from .classprob import resize_channels, softmax
from .labelsets import ADE20K_TO_COLOUR, COLOUR_CLASSES, class_matrix
from .onnxgraph import INPUT_NAME, deeplab_onnx, tensor_shapes

PARSER_FORMAT = "deepcolor-parser"
PARSER_FORMAT_VERSION = 2  # 2: DeepLab graph (1 was the small student of issue 3, still read)
PARSER_WEIGHTS = "deeplab.safetensors"
N_LOGITS = 151  # ADE20K: background + 150 classes


def parser_input(gray, input_size):
    """The network's input: a grey image stretched to a square, in the teacher's range.

    Parameters
    ----------
    gray : ndarray of shape (H, W)
        Luminance in [0, 1], float32 or float64.
    input_size : int
        Rows and columns of the result.

    Returns
    -------
    x : ndarray of shape (input_size, input_size), float32 in [-1, 1]
        Area-averaged when the image is larger than the input on both
        sides, bilinear otherwise.
    """
    gray = check_gray(gray).astype(np.float32)
    s = input_size
    interp = cv2.INTER_AREA if min(gray.shape) > s else cv2.INTER_LINEAR
    return cv2.resize(gray, (s, s), interpolation=interp) * 2.0 - 1.0


def _image_key(gray):
    """What identifies an image for the memo: shape, dtype and a digest of the bytes."""
    return gray.shape, gray.dtype.str, hashlib.blake2b(gray.tobytes(), digest_size=16).digest()


class GridParser:
    """What a format-2 parser is besides its network: classes, memo, upsampling.

    A subclass gives ``_grid(gray) -> (g, g, K)``, the class probabilities on
    the network's quarter-size grid of a grey image stretched to
    `input_size`.

    Parameters
    ----------
    input_size : int
        The grey image is stretched to `input_size` x `input_size` (as the
        teacher's input is), best 16 n + 1.
    classes : sequence of str, optional
        The classes it answers in, in order; the last must be "other".
    mapping : dict of int -> str, optional
        ADE20K channel -> class of `classes`; unlisted channels are "other".
    info : dict, optional
        What made it (training record), kept in the manifest.

    Attributes
    ----------
    classes_ : tuple of str
        The K classes of `predict_proba`'s last axis, in order.
    class_matrix_ : ndarray of shape (151, K), float32
        0/1: which class each ADE20K channel is merged into.
    sha256 : str or None
        The sha256 of the weights file it was loaded from.
    """

    def __init__(self, input_size, classes=None, mapping=None, info=None):
        if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 33:
            raise ValueError(f"input_size must be an int >= 33, got {input_size!r}")
        self.input_size = input_size
        self.classes_ = tuple(COLOUR_CLASSES if classes is None else classes)
        self.mapping = dict(ADE20K_TO_COLOUR if mapping is None else mapping)
        self.class_matrix_ = class_matrix(N_LOGITS, self.mapping, self.classes_)
        self.info = dict(info or {})
        self.sha256 = None
        self._memo = None  # (key of the last grey image, its grid probabilities)

    @property
    def class_names(self):
        """The classes, as every parser of deepcolor names them (`classes_`)."""
        return self.classes_

    def with_classes(self, classes, mapping):
        """The same network answering in another class set (e.g. the 17 groups shared with MSRC-v2)."""
        other = copy.copy(self)  # shares the network
        GridParser.__init__(other, self.input_size, classes, mapping, self.info)
        other.sha256 = self.sha256
        return other

    def grid_proba(self, gray):
        """Class probabilities (g, g, K) float32 on the network's quarter-size grid.

        The last image's result is kept: the semantic feature and the semantic
        histogram ask for the same image one after the other.
        """
        gray = np.ascontiguousarray(gray)
        key = _image_key(gray)
        memo = self._memo
        if memo is not None and memo[0] == key:
            return memo[1]
        grid = self._grid(gray)
        self._memo = (key, grid)  # one assignment: a reader sees an old or a new pair, never half
        return grid

    def predict_proba(self, gray):
        """Class probabilities (H, W, K) float32 of a grey image (H, W) in [0, 1], summing to 1.

        Notes
        -----
        The 151 class probabilities are merged into the K classes on the
        network's quarter-size grid and only the K maps are upsampled
        (bilinearly) to the image's size: the same result as upsampling the
        151 logits first, to interpolation error, at a fraction of the cost.
        """
        prob = resize_channels(np.ascontiguousarray(self.grid_proba(gray)), np.asarray(gray).shape)
        return prob / prob.sum(axis=-1, keepdims=True)  # float32 rounding only


def check_network(spec, weights, input_size, **kwargs):
    """ValueError unless `spec` and `weights` fit (`tensor_shapes`, with `kwargs`) and give ADE20K's logits."""
    shapes = tensor_shapes(spec, weights, input_size, **kwargs)
    if shapes[-1][0] != N_LOGITS:
        raise ValueError(f"the network gives {shapes[-1][0]} logits, ADE20K's {N_LOGITS} expected")


def read_parser_dir(parser_dir):
    """A format-2 parser directory, verified and checked: its manifest and float32 weights.

    Parameters
    ----------
    parser_dir : str or Path

    Returns
    -------
    manifest : dict
        ``spec``, ``input_size``, ``classes``, ``mapping`` (str keys as
        stored) and the rest, as read.
    weights : dict of str -> ndarray
        ``convs.{i}.weight`` and ``convs.{i}.bias``, float32 (stored as
        float16: the conversion is exact).

    Raises
    ------
    deepcolor.modelfiles.ModelError
        Naming the file: missing, another format, a checksum that differs
        (`deepcolor.modelfiles.read_verified`), weights that are not
        safetensors, or a spec its weights do not fit (an unknown op, a
        weight of another shape, a weight no layer uses), or that does not
        give the 151 ADE20K logits.
    """
    manifest, blobs = read_verified(parser_dir, PARSER_FORMAT, PARSER_FORMAT_VERSION, "parser")
    if PARSER_WEIGHTS not in blobs:
        raise ModelError(f"{Path(parser_dir) / 'manifest.json'}: inconsistent parser, its files do not list "
                         f"{PARSER_WEIGHTS}")
    try:
        weights = {k: v.astype(np.float32) for k, v in st_load(blobs[PARSER_WEIGHTS]).items()}
    except SafetensorError as exc:
        raise ModelError(f"{Path(parser_dir) / PARSER_WEIGHTS}: inconsistent parser, its weights are not "
                         f"safetensors ({type(exc).__name__}: {exc})") from None
    try:
        check_network(manifest["spec"], weights, int(manifest["input_size"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{Path(parser_dir) / 'manifest.json'}: inconsistent parser "
                         f"({type(exc).__name__}: {exc})") from None
    return manifest, weights


def _parser_args(manifest):
    """The constructor's input_size, classes, mapping, info from a parser manifest."""
    mapping = {int(k): v for k, v in manifest["mapping"].items()}
    return int(manifest["input_size"]), manifest["classes"], mapping, manifest.get("info")


class OpenCVGreyParser(GridParser):
    """The format-2 grey-image parser run by OpenCV: ``predict_proba(gray) -> (H, W, K)``, no torch.

    The same answers as `deepcolor.features.greyparser.GreyParser` on the
    same directory, to float32 rounding.

    Parameters
    ----------
    spec : list of dict
        The layers (a parser manifest's ``spec``), one grey input channel,
        151 ADE20K logits out.
    weights : dict of str -> ndarray
        ``convs.{i}.weight`` and ``convs.{i}.bias`` of every convolution i.
    input_size, classes, mapping, info
        As `GridParser`.

    Attributes
    ----------
    net : cv2.dnn.Net
        The network, read from the ONNX bytes of `deeplab_onnx`; shared by
        `with_classes`, one `forward` at a time.

    Notes
    -----
    OpenCV's results do not depend on its thread count
    (`cv2.setNumThreads`): every output value is summed by one thread
    (checked in the tests). The parser leaves the thread count to the caller.
    """

    def __init__(self, spec, weights, input_size, classes=None, mapping=None, info=None):
        super().__init__(input_size, classes, mapping, info)
        check_network(spec, weights, input_size, in_channels=1)
        model = deeplab_onnx(spec, weights, input_size, in_channels=1)
        # a uint8 array: bytes would be read as a file name
        self.net = cv2.dnn.readNetFromONNX(np.frombuffer(model, np.uint8), cv2.dnn.ENGINE_NEW)
        self.spec = [dict(layer) for layer in spec]
        self._lock = threading.Lock()  # setInput + forward is one step of the shared net

    def grid_logits(self, gray):
        """ADE20K logits (151, g, g) float32 of a grey image (H, W) in [0, 1] stretched to the input size."""
        x = parser_input(gray, self.input_size)[None, None]  # (1, 1, S, S)
        with self._lock:
            self.net.setInput(x, INPUT_NAME)
            return self.net.forward()[0].copy()  # a copy: the net writes its next output in place

    def _grid(self, gray):
        prob = softmax(self.grid_logits(gray), axis=0)  # (151, g, g)
        return np.tensordot(prob, self.class_matrix_, axes=([0], [0]))  # (g, g, K)

    @classmethod
    def load(cls, parser_dir):
        """Load and verify a parser directory; raises ModelError naming the file and the problem."""
        manifest, weights = read_parser_dir(parser_dir)
        try:
            parser = cls(manifest["spec"], weights, *_parser_args(manifest))
        except (KeyError, TypeError, ValueError, AttributeError, cv2.error) as exc:
            raise ModelError(f"{Path(parser_dir) / 'manifest.json'}: inconsistent parser "
                             f"({type(exc).__name__}: {exc})") from None
        parser.sha256 = manifest["files"][PARSER_WEIGHTS]
        return parser
