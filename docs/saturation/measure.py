"""Measure `colorize --saturation` on the BSDS500 test set or the validation sets (docs/DESIGN.md, "Saturation").

The bundled model colorizes each photo once (grey input = the
8-bit BT.601 luma of the truth, as `make bench` makes it, `deepcolor.testsets.load_test_set`);
its refined U, V are then scaled by each factor and composed exactly as
`deepcolor colorize --saturation` does (`scale_chroma`, then `compose`), and
scored by PSNR (RGB, uint8, native size) and the colourfulness of Hasler and
Suesstrunk against the truth (`deepcolor.evaluate`).

    .venv/bin/python docs/saturation/measure.py [--data DIR] [--model DIR] [--out FILE.json]
        [--sets bsds500_test | validation] [--factors F ...]

``validation``: the photos that issue 16's choices were made on and that no
reference and no parser saw (`deepcolor.bench_quality.validation_sets`:
``val_intel``, ``val_camvid``), each set scored apart.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None):
    from deepcolor.testsets import default_data_dir, load_test_set
    from deepcolor.bundled import DEFAULT_MODEL
    from deepcolor.ensemble import Model
    from deepcolor.images.formats import find_images

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="data folder (default: $DEEPCOLOR_DATA or ../shared/data)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--factors", type=float, nargs="+", default=[0.0, 1.0, 1.25, 1.5, 2.0])
    parser.add_argument("--sets", choices=("bsds500_test", "validation"), default="bsds500_test")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    data = args.data or default_data_dir()
    if args.sets == "validation":
        from deepcolor.bench_quality import validation_sets

        sets = validation_sets(data)
    else:
        sets = {"bsds500_test": find_images(data / "bsds500" / "test")}

    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    model = Model.load(args.model)
    commit = subprocess.run(["git", "log", "-1", "--format=%H", "--", str(args.model)], capture_output=True,
                            text=True).stdout.strip()
    import hashlib

    model_path = args.model.resolve()
    shown = model_path.relative_to(Path.cwd()) if model_path.is_relative_to(Path.cwd()) else model_path
    manifest_sha = hashlib.sha256((args.model / "manifest.json").read_bytes()).hexdigest()
    result = {"model": str(shown), "model_last_commit": commit, "model_manifest_sha256": manifest_sha,
              "grey_input": "8-bit BT.601 luma of the truth", "sets": {}}
    for name, paths in sets.items():
        items = load_test_set(paths)
        # a truth with R = G = B everywhere has nothing to colour (as deepcolor.bench_quality leaves it out)
        items = [it for it in items if not (np.all(it[2][..., 0] == it[2][..., 1])
                                            and np.all(it[2][..., 1] == it[2][..., 2]))]
        result["sets"][name] = _measure(model, items, args.factors)
    result["seconds"] = round(time.perf_counter() - start, 1)
    if args.sets == "bsds500_test":  # the layout of docs/saturation/saturation.json
        result.update(result.pop("sets")["bsds500_test"])
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def _measure(model, items, factors):
    """PSNR and colourfulness of every factor on `items` ((path, y, truth)), each photo predicted once."""
    from deepcolor.chroma import predict_chroma, working_luma
    from deepcolor.color import scale_chroma
    from deepcolor.colorize import compose
    from deepcolor.metrics import colourfulness, psnr

    rows = {f: {"psnr": [], "cf": []} for f in factors}
    cf_truth = []
    for _, y, truth in items:
        uv, _ = predict_chroma(model, working_luma(model, y))
        cf_truth.append(colourfulness(truth))
        for f in factors:
            rgb = compose(y, scale_chroma(uv, f))
            rows[f]["psnr"].append(psnr(truth, rgb))
            rows[f]["cf"].append(colourfulness(rgb))
    out = {"n_images": len(items), "cf_truth_mean": round(float(np.mean(cf_truth)), 2), "factors": {}}
    base = np.asarray(rows[1.0]["psnr"]) if 1.0 in rows else None
    for f, r in rows.items():
        p, cf = np.asarray(r["psnr"]), np.asarray(r["cf"])
        out["factors"][str(f)] = {
            "psnr_mean": round(float(p.mean()), 3), "psnr_median": round(float(np.median(p)), 3),
            "cf_mean": round(float(cf.mean()), 2),
            "cf_gap_mean": round(float(np.mean(np.abs(cf - np.asarray(cf_truth)))), 2),
            "photos_above_factor_1": None if base is None else round(float(np.mean(p > base)), 3)}
    return out


if __name__ == "__main__":
    sys.exit(main())
