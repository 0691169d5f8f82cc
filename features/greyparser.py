"""The grey-image scene parsers: parser directories that load, run on a luminance image, and save.

`GreyParser` (parser format version 2, the bundled ``deepcolor/models/parser``)
is the ADE20K DeepLab network of `deepcolor.features.deeplab` with one grey
input channel, distilled from the teacher on colour photos
(`deepcolor.distill`), its 151 classes merged into `COLOUR_CLASSES`.
`StudentParser` (format version 1) is the small student of issue 3, kept so
that its directories (``deepcolor/models/parser-v1``) still load and run.

Both answer ``predict_proba(gray) -> (H, W, K)`` and name their classes in
``classes_`` (and ``class_names``). A parser directory holds
``manifest.json`` and the weights as safetensors, written and read through
`deepcolor.modelfiles` (checksums verified on loading).

A format-2 directory also runs without torch, in OpenCV
(`deepcolor.features.cvparser.OpenCVGreyParser`, what `load_parser` gives by
default); `GreyParser` is the network that distillation trains.
"""

import contextlib
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from deepcolor import __version__
from deepcolor.modelfiles import ModelError, read_verified, versions, write_model_dir

from ._validate import check_gray
from .classprob import resize_channels, softmax
from .cvparser import (PARSER_FORMAT, PARSER_FORMAT_VERSION, PARSER_WEIGHTS, GridParser, _parser_args,
                       parser_input, read_parser_dir)
from .deeplab import DeepLabNet

STUDENT_FORMAT_VERSION = 1
STUDENT_WEIGHTS = "student.safetensors"
STUDENT_INPUT_SIZE = 128  # student input, pixels per side (the image is stretched, as the teacher's is)


# ---------------------------------------------------------------------------
# Format version 2: a DeepLabNet on the luminance, its classes merged.


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread inside the block, then as before.

    The parser's floats depend on how many threads split its convolutions and
    products (up to 4e-6 apart between one and two threads), and the features
    of a reference must not depend on `--jobs` or on the machine's cores: the
    same references give the same model (`make default-model`) wherever it is
    built. One thread is also what colorizing uses (`deepcolor.colorize`).
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class GreyParser(GridParser):
    """A DeepLab scene parser run on a grey image in torch: ``predict_proba(gray) -> (H, W, K)``.

    The network that distillation trains (`deepcolor.distill`);
    `deepcolor.features.cvparser.OpenCVGreyParser` runs the same directory
    without torch, to float32 rounding.

    Parameters
    ----------
    net : DeepLabNet
        One input channel (`grey_from_rgb`), 151 ADE20K logits out.
    input_size, classes, mapping, info
        As `GridParser` (its attributes too; ``predict_proba``'s Notes say
        how the 151 classes are merged before upsampling).
    """

    def __init__(self, net, input_size, classes=None, mapping=None, info=None):
        if net.in_channels != 1:
            raise ValueError(f"a grey parser's network takes 1 channel, got {net.in_channels}")
        super().__init__(input_size, classes, mapping, info)
        self.net = net.eval()

    @property
    def _matrix(self):
        return torch.from_numpy(self.class_matrix_)

    def grid_logits(self, gray):
        """ADE20K logits (151, g, g) of a grey image (H, W) in [0, 1] stretched to the input size."""
        x = parser_input(gray, self.input_size)
        with torch.inference_mode(), one_thread():
            return self.net(torch.from_numpy(x)[None, None])[0]

    def _grid(self, gray):
        with torch.inference_mode(), one_thread():
            prob = torch.softmax(self.grid_logits(gray), dim=0)  # (151, g, g)
            return torch.tensordot(prob, self._matrix, dims=([0], [0])).numpy()  # (g, g, K)

    def save(self, out_dir, overwrite=False):
        """Write a parser directory: ``manifest.json`` and float16 ``deeplab.safetensors``, swapped in whole.

        Raises
        ------
        FileExistsError
            A parser is at `out_dir` and `overwrite` is False.
        deepcolor.modelfiles.ModelError
            `out_dir` holds files other than a parser's.
        """
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in self.net.state_dict().items()}
        weights = st_save(state, metadata={"format": f"{PARSER_FORMAT} {__version__}"})
        manifest = {"format": PARSER_FORMAT, "format_version": PARSER_FORMAT_VERSION, "versions": versions(),
                    "architecture": "deeplab", "input_size": self.input_size, "classes": list(self.classes_),
                    "mapping": {str(k): v for k, v in sorted(self.mapping.items())}, "spec": self.net.spec,
                    "files": None, "info": self.info}
        manifest = write_model_dir(out_dir, manifest, {PARSER_WEIGHTS: weights}, "parser", overwrite=overwrite)
        self.sha256 = manifest["files"][PARSER_WEIGHTS]

    @classmethod
    def load(cls, parser_dir):
        """Load and verify a parser directory; raises ModelError naming the file and the problem."""
        manifest, weights = read_parser_dir(parser_dir)
        try:
            net = DeepLabNet(manifest["spec"], in_channels=1)
            net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
            parser = cls(net, *_parser_args(manifest))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{Path(parser_dir) / 'manifest.json'}: inconsistent parser "
                             f"({type(exc).__name__}: {exc})") from None
        parser.sha256 = manifest["files"][PARSER_WEIGHTS]
        return parser


# ---------------------------------------------------------------------------
# Format version 1: the small student of issue 3, a fully convolutional network on the grey image.


def _student_module(n_classes, width):
    class Block(nn.Module):
        def __init__(self, ch, dilation):
            super().__init__()
            self.conv = nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation, bias=False)
            self.norm = nn.BatchNorm2d(ch)

        def forward(self, x):
            return torch.relu(x + self.norm(self.conv(x)))

    class Student(nn.Module):
        """Grey (N, 1, S, S) -> class logits (N, K, S/4, S/4).

        Two strided convolutions, four residual dilated blocks (dilations 1, 2,
        4, 8: a receptive field covering most of the image) and an image-level
        context vector added back to every cell, then a 1x1 classifier.
        """

        def __init__(self):
            super().__init__()
            w = width
            self.stem = nn.Sequential(
                nn.Conv2d(1, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                nn.Conv2d(w, 2 * w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
            )
            self.blocks = nn.Sequential(*[Block(2 * w, d) for d in (1, 2, 4, 8)])
            self.context = nn.Linear(2 * w, 2 * w)
            self.head = nn.Conv2d(2 * w, n_classes, 1)

        def forward(self, x):
            h = self.blocks(self.stem(x - 0.5))  # (N, 2w, S/4, S/4)
            ctx = self.context(h.mean(dim=(2, 3)))  # (N, 2w): what kind of scene
            return self.head(torch.relu(h + ctx[:, :, None, None]))

    return Student()


class StudentParser:
    """The distilled grey-image parser: ``predict_proba(gray) -> (H, W, K)``.

    Parameters
    ----------
    net : torch.nn.Module
        From `_student_module`.
    class_names : sequence of str
        The K groups it predicts, in output order.
    """

    def __init__(self, net, class_names, input_size=STUDENT_INPUT_SIZE, info=None):
        self.net = net.eval()
        self.class_names = tuple(class_names)
        self.input_size = input_size
        self.info = info or {}
        self.width = net.head.in_channels // 2
        if net.head.out_channels != len(self.class_names):
            raise ValueError(f"the network predicts {net.head.out_channels} classes, "
                             f"{len(self.class_names)} class names given")

    @property
    def classes_(self):
        """The class names, in the order of `predict_proba`'s last axis."""
        return self.class_names

    def save(self, out_dir):
        """Write a parser directory (``manifest.json`` + ``student.safetensors``), replacing any there in one step."""
        state = {k: v.contiguous() for k, v in self.net.state_dict().items()}
        weights = st_save(state, metadata={"format": f"{PARSER_FORMAT} {__version__}"})  # one key: same bytes
        manifest = {"format": PARSER_FORMAT, "format_version": STUDENT_FORMAT_VERSION,
                    "versions": versions(), "class_names": list(self.class_names),
                    "width": self.width, "input_size": self.input_size, "files": None, "info": self.info}
        write_model_dir(out_dir, manifest, {STUDENT_WEIGHTS: weights}, "parser")

    @classmethod
    def load(cls, parser_dir):
        """Load and verify a parser directory; raises ModelError naming the file and the problem."""
        manifest, blobs = read_verified(parser_dir, PARSER_FORMAT, STUDENT_FORMAT_VERSION, "parser")
        try:
            names = manifest["class_names"]
            net = _student_module(len(names), int(manifest["width"]))
            net.load_state_dict(st_load(blobs[STUDENT_WEIGHTS]), strict=True)
            parser = cls(net, names, int(manifest["input_size"]), manifest.get("info"))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{Path(parser_dir) / 'manifest.json'}: inconsistent parser "
                             f"({type(exc).__name__}: {exc})") from None
        parser.sha256 = manifest["files"][STUDENT_WEIGHTS]
        return parser

    def logits_grid(self, gray):
        """Logits (K, S/4, S/4) of a grey image stretched to S x S."""
        gray = check_gray(gray).astype(np.float32)
        x = cv2.resize(gray, (self.input_size, self.input_size), interpolation=cv2.INTER_AREA)
        with torch.no_grad():
            return self.net(torch.from_numpy(x)[None, None])[0].numpy()

    def predict_proba(self, gray):
        """Class probabilities (H, W, K) float32 of a grey image (H, W) in [0, 1]."""
        prob = softmax(self.logits_grid(gray).transpose(1, 2, 0))  # (S/4, S/4, K)
        # Bilinear weights sum to 1, so the upsampled probabilities still do.
        prob = resize_channels(np.ascontiguousarray(prob), np.asarray(gray).shape)  # (H, W, K)
        return prob / prob.sum(axis=-1, keepdims=True)  # float32 rounding only
