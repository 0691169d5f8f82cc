"""`make demo`: the whole pipeline on sample photos that ship with installed packages.

No data download: the colour sample photos inside the scikit-image and
scikit-learn wheels serve as references and test images. Trains one network
on the references, colorizes the grey versions of the held-out photos, and
prints their PSNR next to the grey (zero-chroma) baseline.
"""

import argparse
import json
import sys
from pathlib import Path

# (package, file) of the colour photos in the installed wheels.
REFERENCES = [
    ("skimage", "astronaut.png"), ("skimage", "chelsea.png"), ("skimage", "rocket.jpg"),
    ("skimage", "motorcycle_left.png"), ("skimage", "hubble_deep_field.jpg"),
    ("skimage", "retina.jpg"), ("skimage", "ihc.png"), ("sklearn", "china.jpg"),
]
TESTS = [("skimage", "coffee.png"), ("skimage", "motorcycle_right.png"), ("sklearn", "flower.jpg")]


def sample_path(package, name):
    if package == "skimage":
        import skimage.data

        return Path(skimage.data.__file__).parent / name
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images" / name


def prepare(work):
    """Copy the references as PNG into work/refs, grey test inputs into work/grey, truths into work/truth."""
    from deepcolor.color import rgb_to_gray_u8
    from deepcolor.io import read_rgb_u8, write_image

    work = Path(work)
    for package, name in REFERENCES:
        out = work / "refs" / (Path(name).stem + ".png")
        if not out.exists():
            write_image(out, read_rgb_u8(sample_path(package, name)))
    for package, name in TESTS:
        rgb = read_rgb_u8(sample_path(package, name))
        stem = Path(name).stem
        if not (work / "truth" / f"{stem}.png").exists():
            write_image(work / "truth" / f"{stem}.png", rgb)
            write_image(work / "grey" / f"{stem}.png", rgb_to_gray_u8(rgb))


def main(argv=None):
    from deepcolor.cli import main as cli

    parser = argparse.ArgumentParser(prog="python -m deepcolor.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("work/demo"), help="folder for everything it writes")
    args = parser.parse_args(argv)
    work = args.work
    prepare(work)
    steps = [
        ["features", str(work / "refs"), "--out", str(work / "features")],
        ["train", str(work / "features"), "--out", str(work / "model"), "--overwrite"],
        ["colorize", str(work / "grey"), str(work / "colorized"), "--model", str(work / "model"), "--overwrite"],
        ["evaluate", "--truth", str(work / "truth"), "--pred", str(work / "colorized"), "--out", str(work / "evaluation")],
    ]
    for step in steps:
        print(f"$ deepcolor {' '.join(step)}", file=sys.stderr)
        code = cli(step + ["--quiet"])
        if code:
            return code
    from deepcolor.evaluate import evaluate_dirs

    model = json.loads((work / "evaluation" / "summary.json").read_text())
    grey = evaluate_dirs(work / "truth", work / "grey").summary
    print(f"demo: PSNR over {model['count']} held-out sample photos: model {model['psnr_mean']:.2f} dB, "
          f"grey input {grey['psnr_mean']:.2f} dB; colorized photos in {work / 'colorized'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
