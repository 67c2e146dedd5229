#!/bin/bash
# jemalloc with and without the tuning guide's MALLOC_CONF, LGA2d fused and separable at 256^2
cd "$(dirname "$0")/../../.."  # the repository root
LIB=$(ls .cache/jemalloc/usr/lib/*/libjemalloc.so.2)
CONF='oversize_threshold:1,background_thread:true,metadata_thp:auto,dirty_decay_ms:9000000000,muzzy_decay_ms:9000000000'
for impl in fused separable; do
  for cfg in plain guide nobg; do
    case $cfg in
      plain) envs="LD_PRELOAD=$LIB";;
      guide) envs="LD_PRELOAD=$LIB MALLOC_CONF=$CONF";;
      nobg) envs="LD_PRELOAD=$LIB MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1";;
    esac
    echo "$impl $cfg $(env $envs .venv/bin/python benchmarks/layers.py --case lga $impl 256 --repeats 3 | cut -c1-60)"
  done
  echo "$impl kept $(env MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_TOP_PAD_=1073741824 .venv/bin/python benchmarks/layers.py --case lga $impl 256 --repeats 3 | cut -c1-60)"
done
