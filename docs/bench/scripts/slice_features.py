"""Derive a features folder without the semantic block from one with it (same pixels: the sample RNG does not
depend on the feature list, see deepcolor.extract._process). Experiment tooling for issue 16."""
import io, json, sys
from pathlib import Path
import numpy as np
from deepcolor.features.config import FeatureConfig
from deepcolor.extract import _shard_name, load_manifest, MANIFEST
from deepcolor.files import atomic_write_bytes, atomic_write_text

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
keep = tuple(sys.argv[3].split(",")) if len(sys.argv) > 3 else ("patch", "daisy")
m = load_manifest(src)
cfg = FeatureConfig.from_dict(m["feature_config"])
new = cfg.replace(features=keep)
assert cfg.features[:len(keep)] == keep
dim = new.dim
images = []
for e in m["images"]:
    e = dict(e)
    if e["status"] == "ok":
        with np.load(src / e["shard"], allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
        arrays["x"] = np.ascontiguousarray(arrays["x"][:, :dim])
        name = _shard_name(e["sha256"], new)
        buf = io.BytesIO(); np.savez(buf, **arrays)
        atomic_write_bytes(dst / "shards" / name, buf.getvalue())
        e["shard"] = f"shards/{name}"
    images.append(e)
m.update(feature_config=new.to_dict(), feature_dim=dim, images=images, derived_from=str(src))
atomic_write_text(dst / MANIFEST, json.dumps(m, indent=1))
print("sliced", sum(e["status"] == "ok" for e in images), "shards to", dim, "columns ->", dst)
