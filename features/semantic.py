"""High-level feature: scene-parser class probabilities (Cheng et al. 2015, Sec. 3.1).

The paper's semantic feature at a pixel is the vector of class probabilities
that a scene parser gives on the *grey* image, smoothed by an edge-preserving
filter guided by the grey image (the parser is unreliable at region
boundaries). The same probabilities give each image a semantic histogram
(the share of each class), which the cluster selector uses.

This module holds the parts that do not depend on which parser is used:
class groups that merge a parser's classes, the guided smoothing, the
histogram, and the ADE20K parser that runs with TensorFlow Lite. A parser is
any object with ``class_names`` (or ``classes_``, the same tuple) and
``predict_proba(gray) -> (H, W, K)``.
"""

import functools
import hashlib
from pathlib import Path

import numpy as np

from ._validate import check_gray

# The pretrained ADE20K parser of ../shared/data/models (DeepLabV3, MobileNetV2).
ADE20K_MODEL_SHA256 = "9476784566f88bf0bdc3169f0012fb7d08857b325811d8c1aaf5ada1c0d4e4f9"
ADE20K_MODEL_NAME = "deeplabv3_mobilenetv2_ade20k.tflite"
ADE20K_INPUT_SIZE = 513

# The 17 groups that ADE20K's and MSRC-v2's classes share (../shared/data/README.md).
SHARED_GROUPS = ("building", "grass", "tree", "sky", "mountain", "water", "car", "road", "person",
                 "flower", "animal", "boat", "aeroplane", "bicycle", "chair", "book", "sign")

# ADE20K channel (1..150; 0 is background) -> shared group. Channels not listed
# fall into no group. Names as in ade20k_labels.txt.
ADE20K_TO_SHARED = {
    2: "building", 26: "building", 49: "building", 80: "building", 85: "building",  # house, skyscraper, hovel, tower
    10: "grass", 30: "grass",  # field
    5: "tree", 18: "tree", 73: "tree",  # plant, palm
    3: "sky",
    17: "mountain", 69: "mountain", 35: "mountain",  # hill, rock
    22: "water", 27: "water", 61: "water", 129: "water", 114: "water", 110: "water",  # 57 is a pool table
    21: "car", 81: "car", 84: "car", 103: "car",  # bus, truck, van
    7: "road", 12: "road", 53: "road", 55: "road",  # sidewalk, path, runway
    13: "person",
    67: "flower",
    127: "animal",
    77: "boat", 104: "boat",  # ship
    91: "aeroplane",
    128: "bicycle", 117: "bicycle",  # minibike
    20: "chair", 31: "chair", 76: "chair", 111: "chair",  # armchair, swivel chair, stool
    68: "book",
    44: "sign",  # signboard
}

# MSRC-v2 label (0..22; 255 unlabelled) -> shared group.
MSRC_CLASSES = ("building", "grass", "tree", "cow", "horse", "sheep", "sky", "mountain", "aeroplane",
                "water", "face", "car", "bicycle", "flower", "sign", "bird", "book", "chair", "road",
                "cat", "dog", "body", "boat")
MSRC_TO_SHARED = {i: {"cow": "animal", "horse": "animal", "sheep": "animal", "bird": "animal",
                      "cat": "animal", "dog": "animal", "face": "person", "body": "person"}.get(n, n)
                  for i, n in enumerate(MSRC_CLASSES)}


# Class sets a student parser can predict: name -> (groups, ADE20K channel -> group).
# Every set adds a last group "other" for the classes it leaves out.
CLASS_SETS = {
    "shared": (SHARED_GROUPS, ADE20K_TO_SHARED),
}


def group_matrix(n_classes, mapping, groups):
    """(n_classes, len(groups) + 1) 0/1 matrix summing class probabilities into groups.

    Classes absent from `mapping` go to the last column, "other".
    """
    index = {g: i for i, g in enumerate(groups)}
    unknown = sorted({g for g in mapping.values() if g not in index})
    if unknown:
        raise ValueError(f"mapping names groups {unknown} that are not in groups {list(groups)}")
    mat = np.zeros((n_classes, len(groups) + 1), np.float32)
    for c in range(n_classes):
        mat[c, index[mapping[c]] if c in mapping else len(groups)] = 1.0
    return mat


def group_probabilities(prob, matrix):
    """Merge class probabilities (H, W, C) into groups (H, W, G) with a `group_matrix`."""
    prob = np.asarray(prob, np.float32)
    if prob.ndim != 3 or prob.shape[-1] != matrix.shape[0]:
        raise ValueError(f"prob must be (H, W, {matrix.shape[0]}), got {prob.shape}")
    return prob @ matrix  # (H, W, G)


def label_groups(labels, mapping, groups, ignore=255):
    """Map an integer label image to group indices; `ignore` (and unmapped labels) become -1."""
    lut = np.full(256, -1, np.int16)
    index = {g: i for i, g in enumerate(groups)}
    unknown = sorted({g for g in mapping.values() if g not in index})
    if unknown:
        raise ValueError(f"mapping names groups {unknown} that are not in groups {list(groups)}")
    for label, group in mapping.items():
        lut[label] = index[group]
    labels = np.asarray(labels)
    if labels.dtype != np.uint8:
        raise TypeError(f"labels must be uint8, got {labels.dtype}")
    out = lut[labels]
    out[labels == ignore] = -1
    return out


def smooth_probabilities(prob, guide, radius=8, eps=1e-3):
    """Edge-preserving smoothing of class probabilities guided by the grey image.

    Parameters
    ----------
    prob : ndarray of shape (H, W, K)
        Class probabilities (each pixel sums to 1).
    guide : ndarray of shape (H, W)
        Luminance in [0, 1].
    radius : int, optional
        Window radius of the guided filter, pixels.
    eps : float, optional
        Its regularisation, in squared luminance units: edges whose contrast
        is well above sqrt(eps) are kept.

    Returns
    -------
    smoothed : ndarray of shape (H, W, K), float32
        Non-negative and summing to 1 at every pixel.

    Notes
    -----
    The paper smooths with an edge-preserving filter it does not name; we use
    the guided filter (He et al. 2013, ``cv2.ximgproc.guidedFilter``), which is
    linear in the filtered image and so keeps the sum of the K maps at 1 up to
    clipping of small negative values, renormalised here.

    References
    ----------
    .. [1] K. He, J. Sun, X. Tang, "Guided Image Filtering", IEEE TPAMI 35(6), 2013.
    """
    import cv2

    guide = check_gray(guide)
    prob = np.asarray(prob, np.float32)
    if prob.ndim != 3 or prob.shape[:2] != guide.shape:
        raise ValueError(f"prob must be (H, W, K) with (H, W) = guide's {guide.shape}, got {prob.shape}")
    if not isinstance(radius, (int, np.integer)) or isinstance(radius, bool) or radius < 1:
        raise ValueError(f"radius must be a positive int, got {radius!r}")
    if isinstance(eps, bool) or not (isinstance(eps, (int, float, np.floating)) and 0 < eps < np.inf):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    out = cv2.ximgproc.guidedFilter(guide.astype(np.float32), np.ascontiguousarray(prob),
                                    int(radius), float(eps))
    out = out.reshape(prob.shape)  # a single class comes back as (H, W)
    np.maximum(out, 0.0, out=out)
    out /= np.maximum(out.sum(axis=-1, keepdims=True), np.float32(1e-12))
    return out


def semantic_histogram(prob):
    """Share of each class in an image: the mean of its probabilities over pixels, shape (K,)."""
    prob = np.asarray(prob, np.float32)
    if prob.ndim != 3 or prob.shape[0] * prob.shape[1] == 0:
        raise ValueError(f"prob must be a non-empty (H, W, K) array, got {prob.shape}")
    return prob.reshape(-1, prob.shape[-1]).mean(axis=0)


def resize_channels(stack, shape, interpolation=None):
    """Resize an (h, w, K) float32 stack to `shape` (rows, cols) for any K.

    ``cv2.resize`` takes at most 4 channels at a time, so K is cut in fours.
    """
    import cv2

    interpolation = cv2.INTER_LINEAR if interpolation is None else interpolation
    rows, cols = shape
    return np.concatenate([cv2.resize(np.ascontiguousarray(stack[..., k:k + 4]), (cols, rows),
                                      interpolation=interpolation).reshape(rows, cols, -1)
                           for k in range(0, stack.shape[-1], 4)], axis=-1)


def softmax(logits, axis=-1):
    """Softmax along `axis` (a new float array; float64 unless the input is float32)."""
    logits = np.asarray(logits)
    logits = logits - logits.max(axis=axis, keepdims=True)
    if not np.issubdtype(logits.dtype, np.floating):
        logits = logits.astype(np.float64)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=axis, keepdims=True)
    return logits


class TFLiteParser:
    """The ADE20K scene parser (DeepLabV3 + MobileNetV2) run with TensorFlow Lite.

    Parameters
    ----------
    model_path : str or Path
        The ``.tflite`` file (see ../shared/data/README.md); its sha256 is checked.
    threads : int, optional
        Interpreter threads.

    Notes
    -----
    The network takes a 513x513 RGB image scaled to [-1, 1]; the image is
    stretched to that size and the 151 logits (channel 0: background) are
    resized back to the image's size before the softmax. A grey image is fed
    as three equal channels. Needs the optional package ``ai-edge-litert``
    (``pip install 'deepcolor[semantic]'``).
    """

    def __init__(self, model_path, threads=2):
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(
                f"{model_path}: ADE20K parser not found; it is {ADE20K_MODEL_NAME} from the data "
                f"folder (../shared/data/models/, see its README), the TF-Hub model "
                f"lite-model/deeplabv3-mobilenetv2-ade20k/1/default/1"
            )
        sha = hashlib.sha256(model_path.read_bytes()).hexdigest()
        if sha != ADE20K_MODEL_SHA256:
            raise ValueError(f"{model_path}: sha256 {sha} is not that of {ADE20K_MODEL_NAME} "
                             f"({ADE20K_MODEL_SHA256})")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ImportError("the TFLite parser needs the package ai-edge-litert: "
                              "pip install 'deepcolor[semantic]'") from None
        self.interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self.n_classes = 151
        self.sha256 = sha
        self.class_names = tuple(f"ade20k-{i}" for i in range(self.n_classes))

    def raw_logits(self, rgb):
        """Logits (513, 513, 151) float32 of a float RGB image (H, W, 3) in [0, 1], stretched to 513x513."""
        import cv2

        rgb = np.asarray(rgb, np.float32)
        if rgb.ndim != 3 or rgb.shape[-1] != 3:
            raise ValueError(f"rgb must be (H, W, 3), got {rgb.shape}")
        size = (ADE20K_INPUT_SIZE, ADE20K_INPUT_SIZE)
        x = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR) * 2.0 - 1.0  # [-1, 1]
        self.interpreter.set_tensor(self._input, x[None])
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output)[0]  # (513, 513, 151)

    def logits(self, rgb):
        """Logits (H, W, 151) float32 of a float RGB image (H, W, 3) in [0, 1], at the image's size."""
        return resize_channels(self.raw_logits(rgb), np.asarray(rgb).shape[:2])  # (H, W, 151)

    def predict_proba(self, gray):
        """Class probabilities (H, W, 151) of a grey image (H, W) in [0, 1]."""
        gray = check_gray(gray)
        rgb = np.repeat(gray.astype(np.float32)[..., None], 3, axis=2)
        return softmax(self.logits(rgb))


SMOOTHINGS = ("guided", "none")

# Merges of a parser's classes applied when the feature is computed, by class
# name (a class not named goes to "other"): "parser" keeps the parser's own
# classes; "coarse" sums them into 7 broad colour-relevant groups + other;
# "landscape" keeps only sky, vegetation, water and ground + other.
GROUP_MERGES = {
    "parser": None,
    "coarse": {
        "sky": ("sky",), "vegetation": ("grass", "tree", "flower"), "water": ("water",),
        "ground": ("road", "ground", "mountain"), "person": ("person",), "animal": ("animal",),
        "built": ("building", "sign", "chair", "book", "car", "boat", "aeroplane", "bicycle", "vehicle"),
    },
    "landscape": {
        "sky": ("sky",), "vegetation": ("grass", "tree", "flower"), "water": ("water",),
        "ground": ("road", "ground", "mountain"),
    },
}


def merge_matrix(class_names, merge):
    """(K, G + 1) 0/1 matrix summing a parser's K classes, by name, into `merge`'s G groups + other."""
    index = {}
    for g, (group, members) in enumerate(merge.items()):
        for name in members:
            index[name] = g
    mat = np.zeros((len(class_names), len(merge) + 1), np.float32)
    for k, name in enumerate(class_names):
        mat[k, index.get(name, len(merge))] = 1.0
    return mat


class GroupedParser:
    """A parser whose class probabilities are summed into groups: ``predict_proba -> (H, W, G + 1)``.

    Parameters
    ----------
    parser : object with ``predict_proba(gray) -> (H, W, C)``
    matrix : ndarray (C, G + 1)
        From `group_matrix`.
    names : sequence of str
        The G + 1 group names (the last is "other").
    """

    def __init__(self, parser, matrix, names):
        if matrix.shape[1] != len(names):
            raise ValueError(f"matrix has {matrix.shape[1]} groups, {len(names)} names given")
        self.parser, self.matrix, self.class_names = parser, matrix, tuple(names)
        self.sha256 = getattr(parser, "sha256", None)

    @property
    def classes_(self):
        """The group names, in the order of `predict_proba`'s last axis."""
        return self.class_names

    def predict_proba(self, gray):
        return group_probabilities(self.parser.predict_proba(gray), self.matrix)


def _parser_format_version(path):
    """The ``format_version`` a parser directory's manifest claims (None if unreadable: the loader says why)."""
    import json

    try:
        return json.loads((Path(path) / "manifest.json").read_text()).get("format_version")
    except (OSError, ValueError, AttributeError):
        return None


def _manifest_digest(path):
    """sha256 of a parser directory's manifest (None if unreadable): a parser rewritten in place is reloaded."""
    try:
        return hashlib.sha256((Path(path) / "manifest.json").read_bytes()).hexdigest()
    except OSError:
        return None


@functools.lru_cache(maxsize=4)
def _load_parser_dir(path, manifest_digest):
    """A parser directory, loaded once per process (per manifest) whatever merges of its classes are asked for."""
    if _parser_format_version(path) == 1:  # the small student of issue 3
        from deepcolor.parser import StudentParser

        return StudentParser.load(path)
    from .deeplab import GreyParser

    return GreyParser.load(path)


def default_parser_dir():
    """The grey-image parser that ships with deepcolor (``deepcolor/models/parser``)."""
    import deepcolor

    return Path(deepcolor.__file__).parent / "models" / "parser"


@functools.lru_cache(maxsize=4)
def load_parser(spec="default", groups="parser", threads=1):
    """The parser named by a feature setting, loaded once per process.

    Parameters
    ----------
    spec : str
        ``"default"`` (the bundled grey-image parser, `default_parser_dir`), a parser
        directory written by ``deepcolor parser train``, or the ADE20K
        ``.tflite`` file (its 151 classes summed into `SHARED_GROUPS` + other).
    groups : str
        A key of `GROUP_MERGES`: "parser" keeps the parser's classes, another
        merge sums them into its groups.
    threads : int
        Threads of the TFLite interpreter.

    Returns
    -------
    parser : object with ``class_names``, ``sha256`` and ``predict_proba(gray) -> (H, W, K)``
    """
    if spec == "default":
        spec = default_parser_dir()
        if not (spec / "manifest.json").is_file():
            raise FileNotFoundError(f"{spec}: the bundled parser is missing from this installation; "
                                    f"rebuild it with `make parser` or name one with semantic_parser")
    if groups not in GROUP_MERGES:
        raise ValueError(f"groups must be one of {sorted(GROUP_MERGES)}, got {groups!r}")
    path = Path(spec)
    if path.suffix == ".tflite":
        teacher = TFLiteParser(path, threads=threads)
        parser = GroupedParser(teacher, group_matrix(teacher.n_classes, ADE20K_TO_SHARED, SHARED_GROUPS),
                               SHARED_GROUPS + ("other",))
    else:
        parser = _load_parser_dir(str(path), _manifest_digest(path))
    merge = GROUP_MERGES[groups]
    if merge is None:
        return parser
    return GroupedParser(parser, merge_matrix(parser.class_names, merge), tuple(merge) + ("other",))


def semantic_features(gray, parser, smoothing="guided", radius=8, eps=1e-2):
    """The paper's high-level feature: class probabilities of the grey image, smoothed under its guidance.

    Parameters
    ----------
    gray : ndarray of shape (H, W)
        Luminance in [0, 1].
    parser : object with ``predict_proba(gray) -> (H, W, K)``
    smoothing : {"guided", "none"}
        Edge-preserving smoothing of the probability maps guided by `gray`
        (`smooth_probabilities`) or none.
    radius, eps : int, float
        Of the guided filter.

    Returns
    -------
    prob : ndarray of shape (H, W, K), float32
        Summing to 1 at every pixel.
    """
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"smoothing must be one of {SMOOTHINGS}, got {smoothing!r}")
    gray = check_gray(gray)
    prob = np.asarray(parser.predict_proba(gray), np.float32)
    if smoothing == "guided":
        prob = smooth_probabilities(prob, gray, radius, eps)
    return prob
