"""Measure `colorize --saturation` on the BSDS500 test set (docs/DESIGN.md, "Saturation").

The bundled model colorizes each of the 200 test photos once (grey input = the
8-bit BT.601 luma of the truth, as `make bench` makes it, `deepcolor.testsets.load_test_set`);
its refined U, V are then scaled by each factor and composed exactly as
`deepcolor colorize --saturation` does (`scale_chroma`, then `compose`), and
scored by PSNR (RGB, uint8, native size) and the colourfulness of Hasler and
Suesstrunk against the truth (`deepcolor.evaluate`).

    .venv/bin/python docs/saturation/measure.py [--data DIR] [--model DIR] [--out FILE.json]
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
    from deepcolor.color import scale_chroma
    from deepcolor.chroma import predict_chroma, working_luma
    from deepcolor.colorize import compose
    from deepcolor.ensemble import Model
    from deepcolor.metrics import colourfulness, psnr
    from deepcolor.images.formats import find_images

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="data folder (default: $DEEPCOLOR_DATA or ../shared/data)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--factors", type=float, nargs="+", default=[0.0, 1.0, 1.25, 1.5, 2.0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    items = load_test_set(find_images((args.data or default_data_dir()) / "bsds500" / "test"))
    model = Model.load(args.model)
    rows = {f: {"psnr": [], "cf": []} for f in args.factors}
    cf_truth = []
    for _, y, truth in items:
        uv, _ = predict_chroma(model, working_luma(model, y))
        cf_truth.append(colourfulness(truth))
        for f in args.factors:
            rgb = compose(y, scale_chroma(uv, f))
            rows[f]["psnr"].append(psnr(truth, rgb))
            rows[f]["cf"].append(colourfulness(rgb))
    commit = subprocess.run(["git", "log", "-1", "--format=%H", "--", str(args.model)], capture_output=True,
                            text=True).stdout.strip()
    import hashlib

    model_path = args.model.resolve()
    shown = model_path.relative_to(Path.cwd()) if model_path.is_relative_to(Path.cwd()) else model_path
    manifest_sha = hashlib.sha256((args.model / "manifest.json").read_bytes()).hexdigest()
    result = {"n_images": len(items), "model": str(shown), "model_last_commit": commit,
              "model_manifest_sha256": manifest_sha, "grey_input": "8-bit BT.601 luma of the truth",
              "cf_truth_mean": round(float(np.mean(cf_truth)), 2),
              "seconds": round(time.perf_counter() - start, 1), "factors": {}}
    base = np.asarray(rows[1.0]["psnr"]) if 1.0 in rows else None
    for f, r in rows.items():
        p, cf = np.asarray(r["psnr"]), np.asarray(r["cf"])
        result["factors"][str(f)] = {
            "psnr_mean": round(float(p.mean()), 3), "psnr_median": round(float(np.median(p)), 3),
            "cf_mean": round(float(cf.mean()), 2),
            "cf_gap_mean": round(float(np.mean(np.abs(cf - np.asarray(cf_truth)))), 2),
            "photos_above_factor_1": None if base is None else round(float(np.mean(p > base)), 3)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
