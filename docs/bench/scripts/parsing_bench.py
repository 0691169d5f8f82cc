"""The parsing section as `make bench` runs it (deepcolor.bench.run_parsing), on its own."""
import json, sys
from pathlib import Path
from deepcolor.bench import run_parsing
from deepcolor.features.config import FeatureConfig
from deepcolor.images.formats import find_images
data = Path("../shared/data")
r = run_parsing(data, FeatureConfig(), find_images(data / "bsds500" / "test")[:50])
print(json.dumps(r, indent=1))
