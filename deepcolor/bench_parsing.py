"""`make bench` section ``parsing``: the scene parsers on photos no parser was trained on (issue 15).

Test splits: MSRC-v2 evaluation split (every third photo by name), Stanford
Background test, CamVid test. Scored in `COLOUR_CLASSES` on all three, and on
MSRC-v2 also in the 17 groups it shares with ADE20K (`SHARED_GROUPS`, the
measure of earlier issues). Pixel accuracy over labelled pixels, mean IoU
over the classes present in the truth or the prediction. Parsers:

- the ADE20K teacher on colour, at 513 (the TFLite file's size) and at the new
  parser's input size, and on grey at the new parser's input size, all
  through its torch rebuild (`deepcolor.features.deeplab`), which agrees with
  the TFLite interpreter on 99 % of pixels;
- the old student of issue 3 (``deepcolor/models/parser-v1``), on grey;
- the new grey-image parser (the bundled one, or ``--parser``), on grey.

Times: the new parser's `predict_proba` (probabilities at full size) and the
whole semantic feature, on the luminance of BSDS500 test photos (481x321),
model loaded, torch on 2 threads, median over the photos.
"""

import time
from pathlib import Path

import cv2
import numpy as np
import torch

from deepcolor.color import rgb_to_gray_u8
from deepcolor.features import semantic_features
from deepcolor.features.labelsets import (ADE20K_TO_COLOUR, ADE20K_TO_SHARED, COLOUR_CLASSES, LABEL_SETS,
                                          MSRC_TO_SHARED, SHARED_GROUPS, class_matrix, label_groups, labelled_pairs,
                                          map_labels, read_labelled)
from deepcolor.features.classprob import merge_matrix, resize_channels
from deepcolor.features.deeplab import grey_from_rgb, teacher_net
from deepcolor.features.greyparser import GreyParser, StudentParser
from deepcolor.images.read import read_rgb_u8
from deepcolor.metrics import segmentation_scores

TEST_SPLITS = (("msrc", "eval"), ("stanford", "test"), ("camvid", "test"))


class ColourTeacher:
    """The ADE20K teacher on colour photos at a given input size: ``predict_rgb(rgb_u8) -> (H, W, K)``."""

    def __init__(self, net, input_size, classes, mapping):
        self.net, self.input_size, self.classes_ = net.eval(), input_size, tuple(classes)
        self._matrix = torch.from_numpy(class_matrix(151, mapping, classes))

    def predict_rgb(self, rgb):
        s = self.input_size
        x = cv2.resize(rgb, (s, s), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 127.5 - 1.0
        with torch.inference_mode():
            prob = torch.softmax(self.net(torch.from_numpy(x.transpose(2, 0, 1).copy())[None])[0], dim=0)
            grid = torch.tensordot(prob, self._matrix, dims=([0], [0])).numpy()
        return resize_channels(np.ascontiguousarray(grid), rgb.shape[:2])


def _grey(rgb):
    return rgb_to_gray_u8(rgb).astype(np.float32) / 255.0


def score_split(predict, pairs, name, classes):
    """Pixel accuracy and mean IoU of ``predict(rgb_u8) -> (H, W, K)`` on (photo, labels) pairs of a labelled set."""
    mapping, ignore = LABEL_SETS[name]
    preds, truths = [], []
    for photo, label_path in pairs:
        rgb, labels = read_labelled(photo, label_path)
        preds.append(np.asarray(predict(rgb)).argmax(axis=-1).ravel())
        truths.append(map_labels(labels, mapping, classes, ignore).ravel())
    s = segmentation_scores(np.concatenate(preds), np.concatenate(truths), len(classes))
    return {"pixel_accuracy": round(float(s["pixel_accuracy"]), 4), "mean_iou": round(float(s["mean_iou"]), 4),
            "n_images": len(pairs)}


def _msrc_shared_pairs_scores(predict_shared, pairs):
    """MSRC-v2 in the 17 shared groups (+ other), as issue 3 measured it."""
    preds, truths = [], []
    for photo, label_path in pairs:
        rgb, labels = read_labelled(photo, label_path)
        preds.append(np.asarray(predict_shared(rgb)).argmax(axis=-1).ravel())
        truths.append(label_groups(labels, MSRC_TO_SHARED, SHARED_GROUPS).ravel())
    s = segmentation_scores(np.concatenate(preds), np.concatenate(truths), len(SHARED_GROUPS))
    return {"pixel_accuracy": round(float(s["pixel_accuracy"]), 4), "mean_iou": round(float(s["mean_iou"]), 4),
            "n_images": len(pairs)}


def old_student_colour_matrix(class_names):
    """(K, len(COLOUR_CLASSES)) matrix merging the old student's shared groups into the colour classes."""
    rename = {"car": "vehicle", "boat": "vehicle", "aeroplane": "vehicle", "bicycle": "vehicle", "road": "ground",
              "chair": "other", "book": "other", "sign": "other"}
    merge = {c: tuple(n for n in class_names if rename.get(n, n) == c) for c in COLOUR_CLASSES[:-1]}
    return merge_matrix(class_names, merge)  # the last column, "other", takes the rest


def time_parser(parser, ys):
    """Median seconds of `predict_proba` and of the semantic feature over grey images `ys`."""
    parser.predict_proba(ys[0])  # warm-up

    def med(fn):
        times = []
        for y in ys:
            t = time.perf_counter()
            fn(y)
            times.append(time.perf_counter() - t)
        return round(float(np.median(times)), 4)

    return {"shape": list(ys[0].shape), "n": len(ys), "predict_proba_s": med(parser.predict_proba),
            "semantic_feature_s": med(lambda y: semantic_features(y, parser))}


def bench_parsing(data, teacher_path, parser_dir, old_parser_dir=None, time_photos=(), threads=2):
    """The parsing section: every parser on every test split, and the new parser's time.

    Parameters
    ----------
    data : path
        The data folder (../shared/data layout).
    teacher_path : path
        The ADE20K ``.tflite`` file.
    parser_dir : path
        The new grey-image parser (`GreyParser`).
    old_parser_dir : path, optional
        The student of issue 3, if it is to be scored.
    time_photos : sequence of path
        Colour photos whose luminance times the new parser.
    """
    torch.set_num_threads(threads)
    new = GreyParser.load(parser_dir)
    size = new.input_size
    teacher = teacher_net(teacher_path, output_stride=8)

    grey_teacher = GreyParser(grey_from_rgb(teacher), size)
    shared = SHARED_GROUPS + ("other",)
    parsers = {  # name -> (predict in colour classes, predict in shared groups)
        "teacher_colour_513": (ColourTeacher(teacher, 513, COLOUR_CLASSES, ADE20K_TO_COLOUR).predict_rgb,
                               ColourTeacher(teacher, 513, shared, ADE20K_TO_SHARED).predict_rgb),
        f"teacher_colour_{size}": (ColourTeacher(teacher, size, COLOUR_CLASSES, ADE20K_TO_COLOUR).predict_rgb,
                                   ColourTeacher(teacher, size, shared, ADE20K_TO_SHARED).predict_rgb),
        f"teacher_grey_{size}": (lambda rgb: grey_teacher.predict_proba(_grey(rgb)),
                                 lambda rgb: grey_teacher.with_classes(shared, ADE20K_TO_SHARED)
                                 .predict_proba(_grey(rgb))),
        "new_parser_grey": (lambda rgb: new.predict_proba(_grey(rgb)),
                            lambda rgb: new.with_classes(shared, ADE20K_TO_SHARED).predict_proba(_grey(rgb))),
    }
    if old_parser_dir is not None and Path(old_parser_dir, "manifest.json").is_file():
        old = StudentParser.load(old_parser_dir)
        to_colour = old_student_colour_matrix(old.class_names)
        parsers["old_student_grey"] = (lambda rgb: old.predict_proba(_grey(rgb)) @ to_colour,
                                       lambda rgb: old.predict_proba(_grey(rgb)))
    out = {"classes": list(COLOUR_CLASSES), "input_size": size, "torch_threads": threads,
           "parser": str(parser_dir), "scores": {}}
    for name, split in TEST_SPLITS:
        try:
            pairs = labelled_pairs(data, name, split)
        except (FileNotFoundError, ValueError) as exc:
            out["scores"][f"{name}_{split}"] = f"skipped: {exc}"
            continue
        table = {}
        for pname, (colour, shared_fn) in parsers.items():
            table[pname] = score_split(colour, pairs, name, COLOUR_CLASSES)
            if name == "msrc":
                table[pname]["shared_17"] = _msrc_shared_pairs_scores(shared_fn, pairs)
        out["scores"][f"{name}_{split}"] = table
    if time_photos:
        out["time"] = time_parser(new, [_grey(read_rgb_u8(p)) for p in time_photos])
    return out
