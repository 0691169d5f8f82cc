#!/usr/bin/env bash
# Issue 16 pipeline, run when the distilled parser is written (experiment driver, logs in work/).
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # two jobs side by side on 2 cores: one thread each
cd /work/main
while [ ! -f work/parser-e3/manifest.json ]; do sleep 20; done
echo "parser ready $(date)"
if [ ! -d deepcolor/models/parser-v1 ]; then git mv deepcolor/models/parser deepcolor/models/parser-v1; fi
mkdir -p deepcolor/models/parser && cp work/parser-e3/manifest.json work/parser-e3/deeplab.safetensors deepcolor/models/parser/
for g in coarse parser; do
  printf '[features]\nfeatures = ["patch", "daisy", "semantic"]\nsemantic_groups = "%s"\n' $g > work/sem-$g.toml
  nohup .venv/bin/deepcolor features work/wide-refs --out work/wide-pds-$g --config work/sem-$g.toml --jobs 1 --seed 0 -q > work/wide-pds-$g.log 2>&1 &
done
wait
echo "features done $(date)"
.venv/bin/python work/scripts/slice_features.py work/wide-pds-coarse work/wide-pd
( .venv/bin/python work/scripts/train_both.py work/wide-pd work/m-pd 1 > work/m-pd.log 2>&1 ) &
( .venv/bin/python work/scripts/train_both.py work/wide-pds-coarse work/m-pds-coarse 1 > work/m-pds-coarse.log 2>&1 ) &
wait
( .venv/bin/python work/scripts/train_both.py work/wide-pds-parser work/m-pds-parser 1 > work/m-pds-parser.log 2>&1 ) &
.venv/bin/python -m deepcolor.bench_quality --validation --features work/wide-pd --model pd-single=work/m-pd/single --model pd-ens=work/m-pd/ensemble --model pdsc-single=work/m-pds-coarse/single --model pdsc-ens=work/m-pds-coarse/ensemble --out work/val-1.json > /dev/null 2> work/val-1.log
wait
.venv/bin/python -m deepcolor.bench_quality --validation --features work/wide-pd --model pdsp-single=work/m-pds-parser/single --model pdsp-ens=work/m-pds-parser/ensemble --out work/val-2.json > /dev/null 2> work/val-2.log
echo "all done $(date)"
