"""The small grey-image student of issue 3 (parser format version 1), kept so that its directories load.

Since issue 15 the bundled parser is the ADE20K parser adapted to grey photos
(`deepcolor.features.deeplab.GreyParser`, `deepcolor.distill`); this module
only reads and runs the older student, and chooses photos for the bench.
"""

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from deepcolor.files import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

INPUT_SIZE = 128  # student input, pixels per side (the image is stretched, as the teacher's is)
PARSER_FORMAT = "deepcolor-parser"
PARSER_FORMAT_VERSION = 1
PARSER_WEIGHTS = "student.safetensors"


def select_photos(folders, msrc_images=None, max_per_folder=None, seed=0):
    """The colour photos a student is distilled on, in a reproducible order.

    Parameters
    ----------
    folders : sequence of path
        Folders searched recursively; each contributes all its images, or a
        seeded random `max_per_folder` of them.
    msrc_images : path, optional
        The MSRC-v2 ``images`` folder: its training split (`msrc_split`) is
        added; its evaluation split is never used.
    max_per_folder : int, optional
    seed : int

    Returns
    -------
    paths : list of Path
    """
    import random

    from deepcolor.images.formats import find_images

    if max_per_folder is not None and max_per_folder < 1:
        raise ValueError(f"max_per_folder must be a positive int, got {max_per_folder!r}")
    paths = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise ValueError(f"{folder}: no such folder of colour photos")
        found = find_images(folder)
        if not found:
            raise ValueError(f"{folder}: no image files")
        if max_per_folder is not None and len(found) > max_per_folder:
            random.Random(seed).shuffle(found)
            found = sorted(found[:max_per_folder])
        paths += found
    if msrc_images is not None:
        from deepcolor.features.labelsets import msrc_split

        paths += msrc_split(msrc_images)[0]
    return paths


# ---------------------------------------------------------------------------
# The student: a small fully convolutional network on the grey image.


def _student_module(n_classes, width):
    import torch
    from torch import nn

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

    def __init__(self, net, class_names, input_size=INPUT_SIZE, info=None):
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
        """Write a parser directory (``manifest.json`` + ``student.safetensors``); files atomically, manifest last."""
        from safetensors.torch import save as st_save

        from deepcolor import __version__
        from deepcolor.ensemble import versions

        out_dir = Path(out_dir)
        state = {k: v.contiguous() for k, v in self.net.state_dict().items()}
        weights = st_save(state, metadata={"format": f"{PARSER_FORMAT} {__version__}"})  # one key: same bytes
        atomic_write_bytes(out_dir / PARSER_WEIGHTS, weights)
        manifest = {"format": PARSER_FORMAT, "format_version": PARSER_FORMAT_VERSION,
                    "versions": versions(), "class_names": list(self.class_names),
                    "width": self.width, "input_size": self.input_size,
                    "files": {PARSER_WEIGHTS: hashlib.sha256(weights).hexdigest()}, "info": self.info}
        atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=1, default=float))

    @classmethod
    def load(cls, parser_dir):
        """Load and verify a parser directory; raises ModelError naming the file and the problem."""
        from safetensors.torch import load as st_load

        from deepcolor.ensemble import ModelError, read_verified

        manifest, blobs = read_verified(parser_dir, PARSER_FORMAT, PARSER_FORMAT_VERSION, "parser")
        try:
            names = manifest["class_names"]
            net = _student_module(len(names), int(manifest["width"]))
            net.load_state_dict(st_load(blobs[PARSER_WEIGHTS]), strict=True)
            parser = cls(net, names, int(manifest["input_size"]), manifest.get("info"))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{Path(parser_dir) / 'manifest.json'}: inconsistent parser "
                             f"({type(exc).__name__}: {exc})") from None
        parser.sha256 = manifest["files"][PARSER_WEIGHTS]
        return parser

    def logits_grid(self, gray):
        """Logits (K, S/4, S/4) of a grey image stretched to S x S."""
        import cv2
        import torch

        from deepcolor.features.semantic import check_gray

        gray = check_gray(gray).astype(np.float32)
        x = cv2.resize(gray, (self.input_size, self.input_size), interpolation=cv2.INTER_AREA)
        with torch.no_grad():
            return self.net(torch.from_numpy(x)[None, None])[0].numpy()

    def predict_proba(self, gray):
        """Class probabilities (H, W, K) float32 of a grey image (H, W) in [0, 1]."""
        from deepcolor.features.semantic import resize_channels, softmax

        prob = softmax(self.logits_grid(gray).transpose(1, 2, 0))  # (S/4, S/4, K)
        # Bilinear weights sum to 1, so the upsampled probabilities still do.
        prob = resize_channels(np.ascontiguousarray(prob), np.asarray(gray).shape)  # (H, W, K)
        return prob / prob.sum(axis=-1, keepdims=True)  # float32 rounding only
