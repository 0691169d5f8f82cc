"""Train the single network and the ensemble warm-started from it on one features folder (as bench.train_pipeline)."""
import json, sys, time, torch
from pathlib import Path
from deepcolor.clustering.config import ClusterConfig
from deepcolor.networks_config import TrainConfig
from deepcolor.refine.config import RefineConfig
from deepcolor.train import train_model, train_ensemble
fdir, out = Path(sys.argv[1]), Path(sys.argv[2])
jobs = int(sys.argv[3]) if len(sys.argv) > 3 else 1
torch.set_num_threads(1)
t0 = time.time()
single = train_model(fdir, TrainConfig(), RefineConfig(), quiet=True)
single.save(out / "single")
t1 = time.time()
print("single", round(t1 - t0), single.info["history"]["epochs_run"], flush=True)
ens = train_ensemble(fdir, TrainConfig(), ClusterConfig(), RefineConfig(), jobs=jobs, quiet=True, init=single.networks[0])
ens.save(out / "ensemble")
t2 = time.time()
print("ensemble", round(t2 - t1), len(ens.networks), [c["n_members"] for c in ens.clusters], flush=True)
(out / "times.json").write_text(json.dumps({"single_s": round(t1 - t0), "ensemble_extra_s": round(t2 - t1)}))
