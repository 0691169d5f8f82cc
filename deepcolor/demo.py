"""`make demo`: colorize sample photos that ship with installed packages, with the bundled model.

No data set and no download: the colour sample photos inside the
scikit-image and scikit-learn wheels are turned grey (8-bit BT.601 luma),
colorized by deepcolor's bundled default model (trained by the project on
BSDS500, `make default-model`) and scored against their true colours, next to
the grey (zero-chroma) baseline. ``--train`` instead trains a model on eight of
the photos and colorizes the other three: the whole pipeline, still without data.
"""

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import skimage.data

from deepcolor.cli import main as cli
from deepcolor.color import rgb_to_gray_u8
from deepcolor.images.read import read_rgb_u8
from deepcolor.images.write import write_image

# (package, file) of the colour photos in the installed wheels.
REFERENCES = [
    ("skimage", "astronaut.png"), ("skimage", "chelsea.png"), ("skimage", "rocket.jpg"),
    ("skimage", "motorcycle_left.png"), ("skimage", "hubble_deep_field.jpg"),
    ("skimage", "retina.jpg"), ("skimage", "ihc.png"), ("sklearn", "china.jpg"),
]
TESTS = [("skimage", "coffee.png"), ("skimage", "motorcycle_right.png"), ("sklearn", "flower.jpg")]


def sample_path(package, name):
    if package == "skimage":
        return Path(skimage.data.__file__).parent / name
    import sklearn.datasets  # lazy: scikit-learn is heavy

    return Path(sklearn.datasets.__file__).parent / "images" / name


def prepare(work, references, tests):
    """References as PNG in work/refs; grey test inputs in work/grey and their truths in work/truth."""
    work = Path(work)
    for package, name in references:
        out = work / "refs" / (Path(name).stem + ".png")
        if not out.exists():
            write_image(out, read_rgb_u8(sample_path(package, name)))
    for package, name in tests:
        stem = Path(name).stem
        if not (work / "truth" / f"{stem}.png").exists():
            rgb = read_rgb_u8(sample_path(package, name))
            write_image(work / "truth" / f"{stem}.png", rgb)
            write_image(work / "grey" / f"{stem}.png", rgb_to_gray_u8(rgb))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m deepcolor.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("work/demo"), help="folder for everything it writes")
    parser.add_argument("--train", action="store_true",
                        help="train on eight sample photos and colorize the other three (about a minute)")
    args = parser.parse_args(argv)
    work = args.work / ("trained" if args.train else "bundled")
    if args.train:
        prepare(work, REFERENCES, TESTS)
        steps = [["features", str(work / "refs"), "--out", str(work / "features")],
                 ["train", str(work / "features"), "--out", str(work / "model"), "--overwrite"]]
        model = ["--model", str(work / "model")]
    else:
        prepare(work, [], REFERENCES + TESTS)
        steps, model = [], []
    steps += [
        ["colorize", str(work / "grey"), str(work / "colorized"), *model, "--overwrite", "--gallery",
         "--truth", str(work / "truth")],
        ["evaluate", "--truth", str(work / "truth"), "--pred", str(work / "colorized"), "--out", str(work / "evaluation")],
    ]
    for step in steps:
        print(f"$ deepcolor {' '.join(step)}", file=sys.stderr)
        with contextlib.redirect_stdout(io.StringIO()):  # evaluate's JSON: the demo prints its own line
            code = cli(step + ["--quiet"])
        if code:
            return code
    scores = json.loads((work / "evaluation" / "summary.json").read_text())
    which = "a model trained on 8 sample photos" if args.train else "the bundled model"
    print(f"demo: PSNR over {scores['count']} sample photos colorized by {which}: {scores['psnr_mean']:.2f} dB, "
          f"grey input {scores['psnr_grey_mean']:.2f} dB, the truths' mean colour "
          f"{scores['psnr_mean_colour_mean']:.2f} dB; colorized photos in {work / 'colorized'}, "
          f"to look at: {work / 'colorized' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
