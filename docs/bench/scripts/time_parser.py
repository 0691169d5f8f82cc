"""Seconds per 481x321 grey photo of the bundled parser (model loaded, probabilities at full size), 2 threads."""
import json, sys, time
import numpy as np, torch
from deepcolor.bench_parsing import _grey, time_parser
from deepcolor.features.greyparser import GreyParser
from deepcolor.features.parsers import default_parser_dir
from deepcolor.images.formats import find_images
from deepcolor.images.read import read_rgb_u8
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
p = GreyParser.load(default_parser_dir())
ys = [_grey(read_rgb_u8(x)) for x in find_images("../shared/data/bsds500/test")[:50]]
ys = [y for y in ys if y.shape == (321, 481)]
r = time_parser(p, ys)
r["torch_threads"] = torch.get_num_threads()
print(json.dumps(r))
