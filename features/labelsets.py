"""Class sets for colour and the labelled sets that measure a scene parser.

The grey-image parser predicts ADE20K's 151 classes; what colorization needs
is fewer, broader classes whose members share colours. `COLOUR_CLASSES` is
that set (issue 15): every ADE20K, MSRC-v2, Stanford Background and CamVid
class is mapped into it here, by name, so that a parser's probabilities and
each data set's labels meet in one label space. Classes a data set does not
separate (Stanford's "foreground object", CamVid's "bicyclist") are not
scored (-1).

`SHARED_GROUPS` is the older set of 17 groups that ADE20K and MSRC-v2 share,
kept so that MSRC-v2 scores stay comparable with earlier measurements, and the
ADE20K teacher run from its ``.tflite`` file answers in it.

The photos that distillation and the bench choose from these data sets are
chosen here too (`msrc_split`, `labelled_pairs`, `select_photos`).
"""

import random
from pathlib import Path

import numpy as np

from deepcolor.images.formats import find_images
from deepcolor.images.read import read_rgb_u8

# Broad classes whose members share colours; "other" takes the rest.
COLOUR_CLASSES = ("sky", "tree", "grass", "water", "ground", "building", "mountain", "person", "animal",
                  "vehicle", "flower", "other")

# ADE20K channel (1..150, as in ade20k_labels.txt; 0 is background) -> colour class;
# channels not listed are "other" (walls, furniture, objects indoors, signs, poles...).
ADE20K_TO_COLOUR = {
    3: "sky",
    5: "tree", 18: "tree", 73: "tree",  # plant, palm
    10: "grass", 30: "grass",  # field
    22: "water", 27: "water", 61: "water", 129: "water", 114: "water", 110: "water",  # sea, river, lake, waterfall, swimming pool
    7: "ground", 12: "ground", 14: "ground", 47: "ground", 53: "ground", 55: "ground", 92: "ground", 95: "ground",
    # road, sidewalk, earth, sand, path, runway, dirt track, land
    2: "building", 26: "building", 49: "building", 80: "building", 85: "building",  # house, skyscraper, hovel, tower
    17: "mountain", 69: "mountain", 35: "mountain",  # hill, rock
    13: "person",
    127: "animal",
    21: "vehicle", 81: "vehicle", 84: "vehicle", 103: "vehicle", 77: "vehicle", 104: "vehicle", 91: "vehicle",
    128: "vehicle", 117: "vehicle",  # car, bus, truck, van, boat, ship, airplane, bicycle, minibike
    67: "flower",
}

MSRC_CLASSES = ("building", "grass", "tree", "cow", "horse", "sheep", "sky", "mountain", "aeroplane",
                "water", "face", "car", "bicycle", "flower", "sign", "bird", "book", "chair", "road",
                "cat", "dog", "body", "boat")
_MSRC_RENAME = {"cow": "animal", "horse": "animal", "sheep": "animal", "bird": "animal", "cat": "animal",
                "dog": "animal", "face": "person", "body": "person", "aeroplane": "vehicle", "car": "vehicle",
                "bicycle": "vehicle", "boat": "vehicle", "road": "ground", "sign": "other", "book": "other",
                "chair": "other"}
MSRC_TO_COLOUR = {i: _MSRC_RENAME.get(n, n) for i, n in enumerate(MSRC_CLASSES)}

STANFORD_CLASSES = ("sky", "tree", "road", "grass", "water", "building", "mountain", "foreground")
STANFORD_TO_COLOUR = {0: "sky", 1: "tree", 2: "ground", 3: "grass", 4: "water", 5: "building", 6: "mountain"}

CAMVID_CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car", "pedestrian",
                  "bicyclist", "unlabelled")
CAMVID_TO_COLOUR = {0: "sky", 1: "building", 2: "other", 3: "ground", 4: "ground", 5: "tree", 6: "other",
                    7: "other", 8: "vehicle", 9: "person"}

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
MSRC_TO_SHARED = {i: {"cow": "animal", "horse": "animal", "sheep": "animal", "bird": "animal",
                      "cat": "animal", "dog": "animal", "face": "person", "body": "person"}.get(n, n)
                  for i, n in enumerate(MSRC_CLASSES)}


# Class sets a student parser can predict: name -> (groups, ADE20K channel -> group).
# Every set adds a last group "other" for the classes it leaves out.
CLASS_SETS = {
    "shared": (SHARED_GROUPS, ADE20K_TO_SHARED),
}


# name -> (label mapping into COLOUR_CLASSES, ignored label value)
LABEL_SETS = {"msrc": (MSRC_TO_COLOUR, 255), "stanford": (STANFORD_TO_COLOUR, 255),
              "camvid": (CAMVID_TO_COLOUR, 11)}


def class_matrix(n_classes, mapping, classes):
    """(n_classes, len(classes)) 0/1 matrix summing a parser's classes into `classes`.

    Classes absent from `mapping` go to the column named "other", which
    `classes` must then hold.
    """
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({c for c in mapping.values() if c not in index})
    if unknown:
        raise ValueError(f"mapping names classes {unknown} that are not in {list(classes)}")
    if len(mapping) < n_classes and "other" not in index:
        raise ValueError(f"classes {list(classes)} need an 'other' for the {n_classes - len(mapping)} unmapped")
    mat = np.zeros((n_classes, len(classes)), np.float32)
    for c in range(n_classes):
        mat[c, index[mapping.get(c, "other")]] = 1.0
    return mat


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


def map_labels(labels, mapping, classes, ignore):
    """An integer label image (H, W) uint8 as indices into `classes`; `ignore` and unmapped labels become -1."""
    labels = np.asarray(labels)
    if labels.dtype != np.uint8:
        raise TypeError(f"labels must be uint8, got {labels.dtype}")
    index = {c: i for i, c in enumerate(classes)}
    lut = np.full(256, -1, np.int16)
    for label, name in mapping.items():
        if name not in index:
            raise ValueError(f"mapping names class {name!r} that is not in {list(classes)}")
        lut[label] = index[name]
    lut[ignore] = -1
    return lut[labels]


def _need(path, what):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} not found (see ../shared/data/README.md)")
    return path


def msrc_split(images_dir):
    """MSRC-v2 photos split into (train, eval) by sorted name: every third photo is for evaluation only."""
    names = sorted(_need(images_dir, "MSRC-v2 images folder").glob("*.jpg"))
    if not names:
        raise ValueError(f"{images_dir}: no MSRC-v2 .jpg photos")
    return [p for i, p in enumerate(names) if i % 3], names[::3]


def labelled_pairs(data, name, split):
    """(photo, label PNG) pairs of one labelled set under the data folder.

    Parameters
    ----------
    data : path
        The data folder (``../shared/data`` layout).
    name : {"msrc", "stanford", "camvid"}
    split : str
        msrc: "train" or "eval" (`msrc_split`); stanford: "train" (without
        the photos that are also MSRC-v2 photos) or "test"; camvid: "train",
        "val" or "test".

    Returns
    -------
    pairs : list of (Path, Path)
    """
    data = Path(data)
    if name == "msrc":
        if split not in ("train", "eval"):
            raise ValueError(f"msrc split must be 'train' or 'eval', got {split!r}")
        photos = msrc_split(data / "msrc_v2" / "images")[0 if split == "train" else 1]
        return [(p, data / "msrc_v2" / "labels" / f"{p.stem}.png") for p in photos]
    if name == "stanford":
        if split not in ("train", "test"):
            raise ValueError(f"stanford split must be 'train' or 'test', got {split!r}")
        root = data / "stanford_background"
        stems = _need(root / f"{split}.txt", "Stanford Background split").read_text().split()
        overlap = {line.split()[0].rsplit(".", 1)[0]
                   for line in _need(root / "msrc_overlap.txt", "MSRC overlap list").read_text().splitlines()
                   if line.strip()}
        if split == "train":
            stems = [s for s in stems if s not in overlap]
        return [(root / "images" / f"{s}.jpg", root / "labels" / f"{s}.png") for s in stems]
    if name == "camvid":
        if split not in ("train", "val", "test"):
            raise ValueError(f"camvid split must be 'train', 'val' or 'test', got {split!r}")
        root = _need(data / "camvid" / split / "images", "CamVid images folder")
        return [(p, data / "camvid" / split / "labels" / f"{p.stem}.png") for p in sorted(root.glob("*.jpg"))]
    raise ValueError(f"labelled set must be one of {sorted(LABEL_SETS)}, got {name!r}")


def read_labelled(photo, label_path):
    """A labelled photo: RGB uint8 (H, W, 3) and its label image (H, W) uint8; ValueError naming the file."""
    from PIL import Image  # lazy: only labelled sets need it (palette PNGs as indices), not colorizing

    rgb = read_rgb_u8(photo)
    try:
        labels = np.asarray(Image.open(label_path))
    except OSError as exc:
        raise ValueError(f"{label_path}: cannot read the labels of {Path(photo).name} ({exc})") from None
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"{label_path}: labels {labels.shape} do not match the photo {rgb.shape[:2]}")
    return rgb, labels


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
