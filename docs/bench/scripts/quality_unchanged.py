"""Issue 19: the bundled model's test-set scores with this checkout's code against a saved run's.

    .venv/bin/python docs/bench/scripts/quality_unchanged.py \
        docs/bench/issue14-test-bundled-rebuilt.json docs/bench/issue19-quality-unchanged.json

Scores the bundled model on every test set of the saved JSON (`deepcolor.bench_quality.score_set`,
the saved run's mean chroma for the mean-colour row) and writes both runs' PSNR mean and median,
SSIM and colourfulness side by side, with the largest difference of each.
"""

import json
import sys
from pathlib import Path

from deepcolor.bench_quality import score_set, test_sets
from deepcolor.bundled import DEFAULT_MODEL
from deepcolor.ensemble import Model
from deepcolor.testsets import default_data_dir, load_test_set

KEYS = ("psnr_mean", "psnr_median", "ssim_mean", "colourfulness")


def main(before_path, out_path):
    before = json.loads(Path(before_path).read_text())
    model = Model.load(DEFAULT_MODEL)
    sets = test_sets(default_data_dir(), names=set(before["sets"]))
    rows, worst = {}, dict.fromkeys(KEYS, 0.0)
    for name, paths in sets.items():
        now = score_set({"bundled": model}, load_test_set(paths), before["mean_chroma_uv"])["bundled"]
        was = before["sets"][name]["bundled"]
        rows[name] = {k: {"before": was[k], "now": now[k], "diff": round(now[k] - was[k], 4)} for k in KEYS}
        rows[name]["seconds_per_image"] = {"before": was["seconds_per_image"], "now": now["seconds_per_image"]}
        for k in KEYS:
            worst[k] = max(worst[k], abs(now[k] - was[k]))
        print(name, {k: rows[name][k]["diff"] for k in KEYS}, flush=True)
    out = {"before": str(before_path), "model": str(DEFAULT_MODEL), "sets": rows,
           "largest_abs_diff": {k: round(v, 4) for k, v in worst.items()}}
    Path(out_path).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["largest_abs_diff"]))


if __name__ == "__main__":
    main(*sys.argv[1:3])
