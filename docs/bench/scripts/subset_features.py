"""A features folder holding the shards of one subset of another's references (by source path prefix)."""
import json, os, sys
from pathlib import Path
src, dst, prefixes = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(",")
m = json.loads((src / "manifest.json").read_text())
keep = [e for e in m["images"] if any(e["source"].startswith(p) for p in prefixes)]
(dst / "shards").mkdir(parents=True, exist_ok=True)
for e in keep:
    if e["status"] == "ok":
        os.link(src / e["shard"], dst / e["shard"])
counts = {}
for e in keep:
    counts[e["status"]] = counts.get(e["status"], 0) + 1
m.update(images=keep, counts=counts, derived_from=str(src))
(dst / "manifest.json").write_text(json.dumps(m, indent=1))
print(counts)
