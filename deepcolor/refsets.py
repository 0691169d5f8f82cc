"""Named reference sets of the data folder, laid out as a folder of links for `deepcolor features`.

``wide`` (issue 16), the bundled model's references: BSDS500 train+val, the
ImageNet sample's train split, Stanford Background train without its MSRC-v2
photos, the MSRC-v2 training split (every third photo by name is kept out for
evaluation), CamVid train, and a seeded `intel_per_category` photos of each
Intel scenes category (train). None of the test splits (BSDS500 test,
ImageNet sample test, Stanford Background test, CamVid val and test, MSRC-v2
evaluation split, Intel scenes test) is ever a reference.

``bsds500``: BSDS500 train+val, the references of the bundled model before.

Run ``python -m deepcolor.refsets NAME --data DATA --out DIR``: DIR gets one
sub-folder per source holding symbolic links to the photos (nothing is
copied); an existing DIR is replaced only if it holds nothing but such links.
"""

import argparse
import os
import random
import shutil
import sys
from pathlib import Path

from deepcolor.features.labelsets import labelled_pairs
from deepcolor.images.formats import find_images
from deepcolor.images.picture import ImageError

REFERENCE_SETS = ("wide", "bsds500")


def reference_paths(name, data, intel_per_category=100, seed=0):
    """{source name: [photo paths]} of the reference set `name` under the data folder."""
    data = Path(data)
    if name not in REFERENCE_SETS:
        raise ValueError(f"reference set must be one of {REFERENCE_SETS}, got {name!r}")
    out = {"bsds500-train": find_images(data / "bsds500" / "train"),
           "bsds500-val": find_images(data / "bsds500" / "val")}
    if name == "bsds500":
        return out
    out["imagenet-train"] = find_images(data / "imagenet_sample" / "train")
    out["stanford-train"] = [p for p, _ in labelled_pairs(data, "stanford", "train")]
    out["msrc-train"] = [p for p, _ in labelled_pairs(data, "msrc", "train")]
    out["camvid-train"] = [p for p, _ in labelled_pairs(data, "camvid", "train")]
    intel = data / "intel_scenes" / "train"
    rng = random.Random(seed)
    for category in sorted(p for p in intel.iterdir() if p.is_dir()):
        found = sorted(find_images(category))
        rng.shuffle(found)
        out[f"intel-{category.name}"] = sorted(found[:intel_per_category])
    return out


def link_folder(groups, out):
    """Write `out`/<source>/<photo name> links to every photo of `groups`; returns the number of links."""
    out = Path(out)
    if out.exists():
        if any(p.is_file() and not p.is_symlink() for p in out.rglob("*")):
            raise FileExistsError(f"{out}: holds files that are not links; choose another folder")
        shutil.rmtree(out)
    n = 0
    for source, paths in groups.items():
        folder = out / source
        folder.mkdir(parents=True)
        for path in paths:
            os.symlink(Path(path).resolve(), folder / Path(path).name)
            n += 1
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m deepcolor.refsets", description=__doc__.split("\n")[0])
    ap.add_argument("name", choices=REFERENCE_SETS)
    ap.add_argument("--data", required=True, type=Path, help="the data folder (../shared/data layout)")
    ap.add_argument("--out", required=True, type=Path, help="folder of links to write")
    ap.add_argument("--intel-per-category", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        n = link_folder(reference_paths(args.name, args.data, args.intel_per_category, args.seed), args.out)
    except (OSError, ValueError, ImageError) as exc:
        print(f"refsets: {exc}", file=sys.stderr)
        return 2
    print(f"refsets: {n} references of set {args.name!r} linked under {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
