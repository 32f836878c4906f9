#!/usr/bin/env bash
# CPU time of one featgrid process per request, closed loop (its utime + stime over a wrk run of 8 s, divided by the
# requests), for read 1 x 3, read 100 x 3 and push 100 with the shared ceiling's wrk bodies, --fsync no, 1M
# entities preloaded; then its resident size. A steadier measure than requests/s on a shared machine:
#   benches/scripts/cpu_per_request_wrk.sh [BIN] [PORT]      (needs wrk; WRK_BODIES=dir overrides the bodies)
set -u
bin=${1:-target/release/featgrid}; port=${2:-16950}
cd "$(dirname "$0")/../.."
W=${WRK_BODIES:-../shared/ceiling/wrk}
d=$(mktemp -d)
$bin serve --bind 127.0.0.1:$port --fsync no --data-dir $d >$d/log 2>&1 & sp=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$port/health && break; sleep 0.2; done
$bin bench --target http://127.0.0.1:$port --entities 1000000 --preload-batch 5000 --max-requests 1 --warmup 0s >/dev/null
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' /proc/$sp/stat; }
for w in read1 read100 push100; do
  url=/get-online-features; [ $w = push100 ] && url=/push
  a=$(cpu)
  n=$(wrk -t2 -c64 -d8s -s $W/$w.lua http://127.0.0.1:$port$url | awk '/requests in/ {print $1}')
  b=$(cpu)
  python3 -c "import sys; n=int(sys.argv[1]); c=(int(sys.argv[3])-int(sys.argv[2]))/int(sys.argv[4]); print(f'{sys.argv[5]}: {n/8:,.0f}/s, {c*1e6/n:.1f} us CPU per request')" $n $a $b $tck $w
done
grep VmRSS /proc/$sp/status
kill $sp; wait $sp 2>/dev/null; rm -rf $d
