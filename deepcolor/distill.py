"""Adapting the ADE20K parser to grey photos by distillation (issue 15).

The teacher is the ADE20K DeepLab parser rebuilt in torch
(`deepcolor.features.deeplab`), run on the *colour* photo. The student is the
same network, started from the teacher's own weights, with one grey input
channel (the first convolution's colour weights summed, so that it starts as
the teacher on a grey image) and, for speed, output stride 16. It learns to
give, on the grey photo, what the teacher gives on the colour one: the KL
divergence between their 151-class distributions at every cell of the
quarter-size grid. Where a photo has real labels (MSRC-v2, Stanford
Background, CamVid training splits), the student's probabilities merged into
`COLOUR_CLASSES` are also fitted to them (cross-entropy), so the classes that
matter for colour are learned from the truth, not only from the teacher.

Every step sees a random view of each photo: a crop of 60-100 % of each side,
mirrored half of the time, stretched to the input size (the teacher's own
recipe) and its grey version as the 8-bit BT.601 luma, as grey inputs are
made everywhere in deepcolor. The parser of the best validation pixel
accuracy is kept; validation photos are held out from the labelled training
splits and never trained on; the evaluation splits (MSRC-v2 every third photo,
Stanford Background test, CamVid test) are used by neither.

The training loop (`distill`) is not `deepcolor.training.fit`, the loop of
the chroma networks and the comparison systems: it validates every
``val_every`` steps rather than after each epoch, keeps the step of best
validation pixel accuracy (higher is better) without stopping early, steps a
cosine learning-rate schedule and clips gradients after every batch, and
draws the photo order and each random view from one numpy generator. Fitting
those into `fit` would take hooks that only this loop uses.
"""

import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from deepcolor.color import rgb_to_gray_u8, to_float
from deepcolor.features.labelsets import (ADE20K_TO_COLOUR, COLOUR_CLASSES, LABEL_SETS, class_matrix,
                                          labelled_pairs, map_labels, read_labelled)
from deepcolor.images.formats import find_images
from deepcolor.images.picture import ImageError
from deepcolor.images.read import read_rgb_u8
from deepcolor.metrics import segmentation_scores
from deepcolor.modelfiles import check_replaceable
from deepcolor.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillConfig:
    """Settings of `distill_parser` (defaults: the bundled parser, `make parser`)."""

    input_size: int = 257  # teacher's recipe: stretched square, 16 n + 1; accuracy/time curve in docs/DESIGN.md
    output_stride: int = 16  # the student's; the teacher runs at its native 8
    epochs: int = 3
    batch_size: int = 8
    lr: float = 1e-4  # AdamW, cosine decay to lr / 10; the weights start pretrained
    weight_decay: float = 1e-4
    label_weight: float = 1.0  # of the labelled cross-entropy against the KL to the teacher
    intel_per_category: int = 200  # Intel scenes photos per category among the unlabelled photos
    crop_min: float = 0.6  # smallest crop side, as a share of the photo's side
    val_every: int = 150  # steps between validations
    threads: int = 1  # one: with other work on the 2 cores, two threads spin on each other (8x slower, measured)
    seed: int = 0

    def __post_init__(self):
        for name in ("input_size", "epochs", "batch_size", "val_every", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if (self.input_size - 1) % 16 or self.input_size < 33:
            raise ValueError(f"input_size must be 16 n + 1 and >= 33 (257, 321...), got {self.input_size!r}")
        if self.output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {self.output_stride!r}")
        if not 0 < self.crop_min <= 1:
            raise ValueError(f"crop_min must be in (0, 1], got {self.crop_min!r}")
        for name in ("lr", "weight_decay", "label_weight"):
            if not 0 <= getattr(self, name) < np.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)!r}")


# ---------------------------------------------------------------------------
# The photos


@dataclass
class Sample:
    """A training or validation photo: RGB uint8 and, if labelled, its classes (H, W) int16 (-1 unlabelled)."""

    path: str
    rgb: np.ndarray
    labels: np.ndarray = None


def _load_labelled(pairs, name):
    mapping, ignore = LABEL_SETS[name]
    out = []
    for photo, label_path in pairs:
        rgb, labels = read_labelled(photo, label_path)
        out.append(Sample(str(photo), rgb, map_labels(labels, mapping, COLOUR_CLASSES, ignore)))
    return out


def training_sets(data, cfg):
    """The distillation photos under the data folder, split into (train, val) lists of `Sample`.

    Labelled (train splits; every 10th held out for validation): MSRC-v2
    training split, Stanford Background train without its MSRC-v2 photos,
    CamVid train (validation: CamVid val, every second frame, neighbours being
    near duplicates). Unlabelled: BSDS500 train+val, ImageNet sample train and
    `cfg.intel_per_category` seeded photos of each Intel scenes category.
    """
    data = Path(data)
    train, val = [], []
    for name, split in (("msrc", "train"), ("stanford", "train"), ("camvid", "train")):
        pairs = labelled_pairs(data, name, split)
        train += _load_labelled([p for i, p in enumerate(pairs) if i % 10 != 5], name)
        if name != "camvid":
            val += _load_labelled(pairs[5::10], name)
    val += _load_labelled(labelled_pairs(data, "camvid", "val")[::2], "camvid")
    photos = []
    for folder in ("bsds500/train", "bsds500/val", "imagenet_sample/train"):
        photos += find_images(data / folder)
    rng = random.Random(cfg.seed)
    intel = data / "intel_scenes" / "train"
    for category in sorted(p for p in intel.iterdir() if p.is_dir()) if intel.is_dir() else []:
        found = sorted(find_images(category))
        rng.shuffle(found)
        photos += sorted(found[:cfg.intel_per_category])
    for path in photos:
        try:
            train.append(Sample(str(path), read_rgb_u8(path)))
        except ImageError as exc:
            log.warning("%s", exc)
    return train, val


def random_view(sample, size, grid, rng, crop_min=0.6):
    """A random crop of a sample stretched to size x size: (rgb float32 [-1, 1], grey float32 [-1, 1], labels on the grid)."""
    h, w = sample.rgb.shape[:2]
    ch = max(1, int(round(h * rng.uniform(crop_min, 1.0))))
    cw = max(1, int(round(w * rng.uniform(crop_min, 1.0))))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    rgb = sample.rgb[top:top + ch, left:left + cw]
    labels = None if sample.labels is None else sample.labels[top:top + ch, left:left + cw]
    if rng.random() < 0.5:
        rgb = rgb[:, ::-1]
        labels = None if labels is None else labels[:, ::-1]
    rgb = np.ascontiguousarray(rgb)
    grey = rgb_to_gray_u8(rgb)
    interp = cv2.INTER_AREA if min(ch, cw) > size else cv2.INTER_LINEAR
    rgb_s = cv2.resize(rgb, (size, size), interpolation=interp).astype(np.float32) / 127.5 - 1.0
    grey_s = cv2.resize(grey, (size, size), interpolation=interp).astype(np.float32) / 127.5 - 1.0
    if labels is not None:
        labels = cv2.resize(np.ascontiguousarray(labels), (grid, grid), interpolation=cv2.INTER_NEAREST)
    return rgb_s, grey_s, labels


# ---------------------------------------------------------------------------
# Training


def evaluate_parser(parser, samples):
    """Pixel accuracy and mean IoU of a parser over labelled samples (their grey versions), in its classes."""
    preds, truths = [], []
    for s in samples:
        gray = to_float(rgb_to_gray_u8(s.rgb))
        preds.append(parser.predict_proba(gray).argmax(axis=-1).ravel())
        truths.append(s.labels.ravel())
    k = len(parser.classes_)
    scores = segmentation_scores(np.concatenate(preds), np.concatenate(truths), k)
    return float(scores["pixel_accuracy"]), float(scores["mean_iou"])


def distill_parser(teacher_path, data, cfg=DistillConfig(), progress=None, log_every=25):
    """Distil the grey-image parser from the TFLite teacher on the data folder's photos.

    Parameters
    ----------
    teacher_path : path
        The ADE20K ``.tflite`` file.
    data : path
        The data folder (../shared/data layout), for `training_sets`.
    cfg : DistillConfig
    progress : callable, optional
        ``progress(step, total_steps, message)``.

    Returns
    -------
    parser : GreyParser
        With the weights of the best validation pixel accuracy.
    info : dict
        The training record (settings, validation history, time).
    """
    # lazy: torch is heavy; importing this module (for DistillConfig) stays light
    import torch

    from deepcolor.features.deeplab import DeepLabNet, grey_from_rgb, teacher_net, with_output_stride

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    start = time.time()
    train, val = training_sets(data, cfg)
    log.info("distillation: %d training photos (%d labelled), %d validation photos, loaded in %.0f s",
             len(train), sum(s.labels is not None for s in train), len(val), time.time() - start)
    teacher = teacher_net(teacher_path, output_stride=8)
    restrided = DeepLabNet(with_output_stride(teacher.spec, cfg.output_stride))  # the file read once
    restrided.load_state_dict(teacher.state_dict())
    student = grey_from_rgb(restrided)
    parser, info = distill(teacher, student, train, val, cfg, rng, progress, log_every, start)
    info["teacher"] = parser.info["teacher"] = Path(teacher_path).name
    return parser, info


def _distill_loss(teacher, student, views, matrix, label_weight):
    """A batch's loss and its KL part: the student's KL to the teacher, plus the labelled cross-entropy.

    `views` are `random_view`'s; `matrix` (151, K) merges ADE20K's classes into `COLOUR_CLASSES`.
    """
    import torch  # lazy: torch is heavy (as in `distill`)

    x_rgb = torch.from_numpy(np.stack([v[0] for v in views]).transpose(0, 3, 1, 2).copy())
    x_grey = torch.from_numpy(np.stack([v[1] for v in views])[:, None])
    with torch.no_grad():
        target = torch.log_softmax(teacher(x_rgb), dim=1)  # (B, 151, g, g)
    logp = torch.log_softmax(student(x_grey), dim=1)
    kl = (target.exp() * (target - logp)).sum(dim=1).mean()
    loss = kl
    labelled = [i for i, v in enumerate(views) if v[2] is not None]
    if labelled and label_weight > 0:
        labels = torch.from_numpy(np.stack([views[i][2] for i in labelled]).astype(np.int64))
        prob = torch.einsum("bchw,ck->bkhw", logp[labelled].exp(), matrix).contiguous()
        ce = torch.nn.functional.nll_loss(torch.log(prob.clamp_min(1e-8)), labels, ignore_index=-1)
        if torch.isfinite(ce):
            loss = loss + label_weight * ce
    return loss, kl


def _validate(student, parser, val):
    """The parser's validation (pixel accuracy, mean IoU), its student in eval mode meanwhile."""
    student.eval()
    acc, miou = evaluate_parser(parser, val)
    student.train()
    return acc, miou


def _step(student, opt, sched, loss):
    """One optimizer step on `loss`: gradients clipped to norm 5, then the learning rate's schedule."""
    import torch  # lazy: torch is heavy (as in `distill`)

    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(student.parameters(), 5.0)
    opt.step()
    sched.step()


def distill(teacher, student, train, val, cfg, rng, progress=None, log_every=25, start=None):
    """The training loop: `student` (grey, 1 channel) learns `teacher` (RGB) on `train`, best of `val` kept.

    Parameters
    ----------
    teacher, student : DeepLabNet
        151 logits each; the student is trained in place.
    train, val : list of Sample
        Training photos (labelled or not) and labelled validation photos.
    cfg : DistillConfig
    rng : numpy.random.Generator
        Photo order and views.

    Returns
    -------
    parser, info : GreyParser, dict
    """
    # lazy: torch is heavy; importing this module (for DistillConfig) stays light
    import torch

    from deepcolor.features.greyparser import GreyParser

    if not val or any(s.labels is None for s in val):
        raise ValueError("distillation needs labelled validation photos")
    if len(train) < cfg.batch_size:
        raise ValueError(f"{len(train)} training photos, fewer than batch_size={cfg.batch_size}")
    start = time.time() if start is None else start
    for p in teacher.parameters():
        p.requires_grad_(False)
    teacher.eval()
    student.train()
    parser = GreyParser(student, cfg.input_size)
    matrix = torch.from_numpy(class_matrix(151, ADE20K_TO_COLOUR, COLOUR_CLASSES))  # (151, K)
    size, grid = cfg.input_size, (cfg.input_size - 1) // 4 + 1
    steps_per_epoch = len(train) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=cfg.lr / 10)

    best_acc, best_miou = _validate(student, parser, val)
    best_state, best_step = {k: v.clone() for k, v in student.state_dict().items()}, 0
    history = [{"step": 0, "val_pixel_accuracy": best_acc, "val_mean_iou": best_miou}]
    log.info("step 0: validation pixel accuracy %.4f, mean IoU %.4f (the teacher on grey)", best_acc, best_miou)
    step, running = 0, []
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(train))
        for b in range(steps_per_epoch):
            batch = [train[i] for i in order[b * cfg.batch_size:(b + 1) * cfg.batch_size]]
            views = [random_view(s, size, grid, rng, cfg.crop_min) for s in batch]
            loss, kl = _distill_loss(teacher, student, views, matrix, cfg.label_weight)
            _step(student, opt, sched, loss)
            step += 1
            running.append(float(kl.detach()))
            if step % log_every == 0:
                log.info("epoch %d step %d/%d: KL %.4f (%.0f s)", epoch, step, total, np.mean(running),
                         time.time() - start)
                running = []
            if progress:
                progress(step, total, f"KL {float(kl.detach()):.3f}")
            if step % cfg.val_every == 0 or step == total:
                acc, miou = _validate(student, parser, val)
                history.append({"step": step, "val_pixel_accuracy": acc, "val_mean_iou": miou,
                                "seconds": round(time.time() - start)})
                log.info("step %d: validation pixel accuracy %.4f, mean IoU %.4f", step, acc, miou)
                if acc > best_acc:
                    best_acc, best_miou, best_step = acc, miou, step
                    best_state = {k: v.clone() for k, v in student.state_dict().items()}
    student.load_state_dict(best_state)
    student.eval()
    info = {"config": asdict(cfg), "n_train": len(train), "n_val": len(val),
            "best_step": best_step, "steps": total, "val_pixel_accuracy": round(best_acc, 4),
            "val_mean_iou": round(best_miou, 4), "seconds": round(time.time() - start), "history": history}
    return GreyParser(student, cfg.input_size, info=info), info


def run(teacher, data, out, cfg=DistillConfig(), overwrite=False, quiet=False):
    """Distil and write the parser directory `out`; the command behind ``deepcolor parser train``."""
    out = Path(out)
    if (out / "manifest.json").exists() and not overwrite:
        raise FileExistsError(f"{out}: a parser is there already; pass --overwrite to replace it")
    check_replaceable(out, "parser")  # before the hours of training, as parser.save would refuse it after
    bar = progress_bar(total=None, desc="distil", unit="step", quiet=quiet)

    def progress(step, total, message):
        bar.total = total
        bar.update(1)
        bar.set_postfix_str(message)

    parser, info = distill_parser(teacher, data, cfg, progress=progress)
    bar.close()
    parser.save(out, overwrite=True)
    log.info("%s: grey-image parser written (validation pixel accuracy %.4f at step %d of %d, %.0f min)",
             out, info["val_pixel_accuracy"], info["best_step"], info["steps"], info["seconds"] / 60)
    return parser, info


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="distil the grey-image parser (python -m deepcolor.distill)")
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=DistillConfig.epochs)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run(a.teacher, a.data, a.out, DistillConfig(epochs=a.epochs, seed=a.seed), overwrite=a.overwrite, quiet=True)
