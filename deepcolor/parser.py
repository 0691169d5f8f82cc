"""A scene parser for grey images, distilled from a colour-image parser (issue 3).

The pretrained ADE20K parser (`deepcolor.features.semantic.TFLiteParser`) is
good on colour photos and poor on grey ones, which is what a colorizer has.
Distillation: the teacher, run on colour photos, gives soft class targets;
a small torch network (the student) learns them from the photos' luminance
alone.

This module makes the teacher's targets: for every colour photo, the
teacher's 151 class probabilities on a ``target_size`` x ``target_size`` grid
over the (stretched) image, and the photo's 8-bit luminance at
``input_size`` x ``input_size``, one ``.npz`` shard per photo.
"""

import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from deepcolor.color import rgb_to_gray_u8
from deepcolor.io import ImageError, atomic_write_bytes, atomic_write_text, read_rgb_u8, to_float

log = logging.getLogger(__name__)

INPUT_SIZE = 128  # student input, pixels per side (the image is stretched, as the teacher's is)
TARGET_SIZE = 32  # teacher targets, cells per side
PARSER_FORMAT = "deepcolor-parser"
PARSER_FORMAT_VERSION = 1
PARSER_WEIGHTS = "student.safetensors"


def msrc_split(images_dir):
    """MSRC-v2 photos split into (train, eval) by sorted name: every third photo is for evaluation only."""
    names = sorted(Path(images_dir).glob("*.jpg"))
    if not names:
        raise ValueError(f"{images_dir}: no MSRC-v2 .jpg photos")
    return [p for i, p in enumerate(names) if i % 3], names[::3]


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

    from deepcolor.io import find_images

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
        paths += msrc_split(msrc_images)[0]
    return paths


def _block_mean(stack, size):
    """Average (S, S, K) over size x size blocks of S // size cells (extra rows and columns dropped)."""
    f = stack.shape[0] // size
    return stack[: f * size, : f * size].reshape(size, f, size, f, -1).mean(axis=(1, 3))


def teacher_sample(teacher, rgb_u8, input_size=INPUT_SIZE, target_size=TARGET_SIZE):
    """(grey uint8 (input_size, input_size), teacher probabilities float16 (target_size, target_size, 151))."""
    import cv2

    from deepcolor.features.semantic import softmax

    logits = teacher.raw_logits(to_float(rgb_u8))  # (513, 513, 151) over the stretched image
    prob = softmax(_block_mean(logits, target_size * 4))  # (4 * target, 4 * target, 151)
    prob = _block_mean(prob, target_size)  # (target, target, 151)
    grey = cv2.resize(rgb_to_gray_u8(rgb_u8), (input_size, input_size), interpolation=cv2.INTER_AREA)
    return grey, prob.astype(np.float16)


def make_targets(paths, out_dir, teacher_path, threads=2, quiet=False):
    """Write one shard per colour photo with its grey input and the teacher's targets; resumable."""
    from deepcolor.features.semantic import TFLiteParser
    from deepcolor.progress import progress_bar

    out_dir = Path(out_dir)
    teacher = TFLiteParser(teacher_path, threads=threads)
    entries = []
    bar = progress_bar(total=len(paths), desc="teacher", unit="img", quiet=quiet)
    for path in paths:
        bar.update(1)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            log.error("%s: cannot read (%s)", path, exc.strerror)
            continue
        shard = out_dir / "shards" / f"{hashlib.sha256(data).hexdigest()[:24]}.npz"
        entries.append({"source": str(path), "shard": str(shard.relative_to(out_dir))})
        if shard.exists():
            continue
        try:
            grey, prob = teacher_sample(teacher, read_rgb_u8(path))
        except ImageError as exc:
            log.error("%s", exc)
            entries.pop()
            continue
        buf = io.BytesIO()
        np.savez(buf, grey=grey, prob=prob)
        atomic_write_bytes(shard, buf.getvalue())
    bar.close()
    atomic_write_text(out_dir / "manifest.json", json.dumps(
        {"format": "deepcolor-parser-targets", "format_version": 1, "input_size": INPUT_SIZE,
         "target_size": TARGET_SIZE, "teacher": str(teacher_path), "images": entries}, indent=1))
    return entries


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


def load_targets(targets_dir, matrix):
    """All shards of `make_targets` as arrays: grey (N, S, S) uint8, targets (N, T, T, G) float32.

    `matrix` (151, G) merges the teacher's classes into the student's groups.
    """
    shards = sorted((Path(targets_dir) / "shards").glob("*.npz"))
    if not shards:
        raise ValueError(f"{targets_dir}: no teacher target shards; run make_targets first")
    greys, probs = [], []
    for path in shards:
        try:
            with np.load(path, allow_pickle=False) as data:
                grey, prob = data["grey"], data["prob"].astype(np.float32) @ matrix
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: unreadable teacher target shard ({type(exc).__name__}: {exc}); "
                             f"delete it and rerun 'deepcolor parser targets'") from None
        greys.append(grey)
        probs.append(prob)
    return np.stack(greys), np.stack(probs)


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


def train_student(grey, targets, class_names, width=32, epochs=30, batch_size=32, lr=2e-3,
                  seed=0, val_fraction=0.1, progress=None):
    """Distil: fit the student's softmax to the teacher's group probabilities (soft cross-entropy).

    Parameters
    ----------
    grey : ndarray (N, S, S) uint8
        The photos' luminance.
    targets : ndarray (N, T, T, K) float32
        The teacher's group probabilities on the colour photos.

    Returns
    -------
    parser : StudentParser
        With the weights of the epoch of lowest held-out loss.
    history : dict
    """
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(grey)
    order = rng.permutation(n)
    n_val = max(1, round(n * val_fraction))
    va, tr = order[:n_val], order[n_val:]
    x = torch.from_numpy(grey.astype(np.float32) / 255.0)[:, None]  # (N, 1, S, S)
    y = torch.from_numpy(np.ascontiguousarray(targets.transpose(0, 3, 1, 2)))  # (N, K, T, T)
    net = _student_module(targets.shape[-1], width)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * -(-len(tr) // batch_size))

    def loss_of(xb, yb):
        return -(yb * torch.log_softmax(net(xb), dim=1)).sum(dim=1).mean()

    gen = torch.Generator().manual_seed(seed)
    best, best_state, history = np.inf, None, {"train": [], "val": []}
    for epoch in range(epochs):
        net.train()
        perm = torch.from_numpy(tr)[torch.randperm(len(tr), generator=gen)]
        total = 0.0
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5  # horizontal flips
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            yb = torch.where(flip[:, None, None, None], yb.flip(-1), yb)
            loss = loss_of(xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        net.eval()
        with torch.no_grad():
            val = float(loss_of(x[va], y[va]))
        history["train"].append(total / len(tr))
        history["val"].append(val)
        if progress:
            progress(epoch, total / len(tr), val)
        if val < best:
            best, best_state = val, {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    history["best_val"] = best
    return StudentParser(net, class_names, input_size=grey.shape[1]), history


def msrc_parsing_scores(predict, msrc_root, quiet=True):
    """Parsing quality on the MSRC-v2 evaluation split (`msrc_split`), in the 17 shared groups.

    Parameters
    ----------
    predict : callable
        ``predict(rgb_u8 (H, W, 3)) -> (H, W, K)`` group probabilities whose
        first 17 channels are `SHARED_GROUPS` in order (any further channel,
        such as "other", counts as a miss). Grey-input parsers convert the
        photo themselves.
    msrc_root : path
        Holds ``images/*.jpg`` and ``labels/*.png`` (MSRC-v2 label indices, 255 unlabelled).

    Returns
    -------
    scores : dict
        ``pixel_accuracy``, ``mean_iou``, ``n_images``, ``seconds_per_image`` (median of `predict`).
    """
    import time

    from PIL import Image

    from deepcolor.evaluate import segmentation_scores
    from deepcolor.features.semantic import MSRC_TO_SHARED, SHARED_GROUPS, label_groups
    from deepcolor.progress import progress_bar

    root = Path(msrc_root)
    _, paths = msrc_split(root / "images")
    preds, truths, times = [], [], []
    bar = progress_bar(total=len(paths), desc="parse", unit="img", quiet=quiet)
    for path in paths:
        bar.update(1)
        label_path = root / "labels" / f"{path.stem}.png"
        try:
            labels = np.asarray(Image.open(label_path))
        except OSError as exc:
            raise ValueError(f"{label_path}: cannot read the MSRC-v2 labels of {path.name} ({exc})") from None
        rgb = read_rgb_u8(path)
        if labels.shape != rgb.shape[:2]:
            raise ValueError(f"{label_path}: labels {labels.shape} do not match the photo {rgb.shape[:2]}")
        start = time.perf_counter()
        prob = predict(rgb)
        times.append(time.perf_counter() - start)
        preds.append(np.asarray(prob).argmax(axis=-1).ravel())
        truths.append(label_groups(labels, MSRC_TO_SHARED, SHARED_GROUPS).ravel())
    bar.close()
    s = segmentation_scores(np.concatenate(preds), np.concatenate(truths), len(SHARED_GROUPS))
    return {"pixel_accuracy": round(float(s["pixel_accuracy"]), 4), "mean_iou": round(float(s["mean_iou"]), 4),
            "n_images": len(paths), "seconds_per_image": round(float(np.median(times)), 4)}
