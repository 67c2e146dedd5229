#!/bin/bash
cd "$(dirname "$0")/../../.."  # the repository root
LIB=$(ls .cache/jemalloc/usr/lib/*/libjemalloc.so.2)
for conf in dirty_decay_ms:-1,muzzy_decay_ms:-1 oversize_threshold:0,dirty_decay_ms:-1,muzzy_decay_ms:-1; do
  echo "fused $conf $(env LD_PRELOAD=$LIB MALLOC_CONF=$conf .venv/bin/python benchmarks/layers.py --case lga fused 256 --repeats 3 | cut -c1-60)"
done
echo "fused kept $(env MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_TOP_PAD_=1073741824 .venv/bin/python benchmarks/layers.py --case lga fused 256 --repeats 3 | cut -c1-60)"
echo "fused default $(.venv/bin/python benchmarks/layers.py --case lga fused 256 --repeats 3 | cut -c1-60)"
