"""Seconds per 481x321 grey photo of the bundled parser in torch (1 thread) and in OpenCV (1 and 2 threads).

Model loaded; `predict_proba` at full size, its one-image memo cleared before every run; the three
set-ups alternate run by run (so a load from elsewhere on the machine falls on all three), 20 runs each.
Prints medians (s) and the ratios torch / OpenCV as JSON.
Usage: OMP_NUM_THREADS=1 python docs/bench/scripts/time_cvparser.py [data folder] [runs]
"""
import json, statistics, sys, time
from pathlib import Path
import cv2, numpy as np, torch
from deepcolor.bench_parsing import _grey
from deepcolor.features.cvparser import OpenCVGreyParser
from deepcolor.features.greyparser import GreyParser
from deepcolor.features.parsers import default_parser_dir
from deepcolor.images.formats import find_images
from deepcolor.images.read import read_rgb_u8
data = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
ys = [_grey(read_rgb_u8(x)) for x in find_images(data / "bsds500" / "test")[:40]]
ys = [y for y in ys if y.shape == (321, 481)][:5]
pt, cv = GreyParser.load(default_parser_dir()), OpenCVGreyParser.load(default_parser_dir())
torch.set_num_threads(1)
setups = {"torch_1": (pt, 1), "opencv_1": (cv, 1), "opencv_2": (cv, 2)}
times = {k: [] for k in setups}
for r in range(runs + 2):  # 2 warm-up rounds
    for name, (parser, threads) in setups.items():
        cv2.setNumThreads(threads)
        parser._memo = None
        t = time.perf_counter()
        parser.predict_proba(ys[r % len(ys)])
        if r >= 2:
            times[name].append(time.perf_counter() - t)
med = {k: statistics.median(v) for k, v in times.items()}
out = {"median_s": med, "torch_1_over_opencv_1": med["torch_1"] / med["opencv_1"],
       "torch_1_over_opencv_2": med["torch_1"] / med["opencv_2"], "runs": runs, "cpus": len(__import__("os").sched_getaffinity(0))}
print(json.dumps(out, indent=1))
