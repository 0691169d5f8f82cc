"""Rebuild docs/gallery: grey input | deepcolor (bundled model) | truth, for a few test photos of each test set.

Run from the repository root: python docs/gallery/make_gallery.py [DATA]. The photos are fixed by name
(the first of each test set by sorted name, so nothing is picked by how well it came out).
"""
import sys
from pathlib import Path

import cv2
import numpy as np

from deepcolor.testsets import load_test_set
from deepcolor.bench_quality import test_sets
from deepcolor.colorize import colorize_luma
from deepcolor.ensemble import Model
from deepcolor.metrics import psnr
from deepcolor.features.parsers import default_parser_dir
from deepcolor.files import atomic_write_bytes

data = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
model = Model.load(default_parser_dir().parent / "default")
out = Path(__file__).parent
sets = test_sets(data, names=["bsds500_test", "imagenet_test", "stanford_test", "camvid_test"])
lines = []
for name, paths in sets.items():
    (stem, y, truth), = load_test_set(sorted(paths)[:1])
    rgb = colorize_luma(model, y)
    grey = np.repeat((y * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    row = np.concatenate([grey, rgb, truth], axis=1)
    scale = 720 / row.shape[1]
    row = cv2.resize(row, (720, round(row.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
    atomic_write_bytes(out / f"{name}-{stem}.png", png.tobytes())
    lines.append(f"{name}-{stem}.png: PSNR {psnr(truth, rgb):.2f} dB (grey input {psnr(truth, grey):.2f} dB)")
print("\n".join(lines))
