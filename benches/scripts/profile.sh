#!/usr/bin/env bash
# CPU profiles of read 1, read 100 and push 100 (BENCHMARKS.md "Where the time goes"): one release
# single node (--fsync no, 1M entities), the shared ceiling's wrk bodies, perf record for 8 s each;
# perf-<workload>.data in /tmp. Needs wrk, perf and ../shared/ceiling/wrk (WRK_BODIES=dir to override).
set -u
cd "$(dirname "$0")/../.."
BIN=target/release/featgrid
D=$(mktemp -d)
$BIN serve --bind 127.0.0.1:16811 --fsync no --data-dir $D/s >$D/s.log 2>&1 & sp=$!
sleep 2
$BIN bench --target http://127.0.0.1:16811 --entities 1000000 --preload-batch 5000 --max-requests 1 --warmup 0s >/dev/null
for w in read1 read100 push100; do
  url=/get-online-features; [ $w = push100 ] && url=/push
  perf record -e cpu-clock -F 2000 -g -p $sp -o /tmp/perf-$w.data -- sleep 8 >/dev/null 2>&1 &
  pp=$!
  wrk -t2 -c64 -d8s -s ${WRK_BODIES:-../shared/ceiling/wrk}/$w.lua http://127.0.0.1:16811$url | awk -v w=$w '/Requests\/sec/ {print w, $2}'
  wait $pp
done
kill $sp; wait $sp 2>/dev/null; rm -rf $D
