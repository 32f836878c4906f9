# Shared by the single-server scripts here (sourced, not run): builds featgrid and the ceiling in
# release, stops the running server on exit, and `start NAME CMD...` runs a server that prints
# "... listening on http://ADDR" (output in $OUT/NAME.*), sets $url and $pid, and preloads
# $ENTITIES entities through it; `stop` stops it. Needs $OUT and $ENTITIES set.
cargo build --release --quiet --bin featgrid --example ceiling
BIN=target/release/featgrid
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

start() { # NAME CMD...
  local name=$1; shift
  "$@" >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" &
  pid=$!
  url=
  for _ in $(seq 100); do
    url=$(grep -o 'http://[0-9.:]*' "$OUT/$name.stdout" 2>/dev/null | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "$name did not start; see $OUT/$name.stderr" >&2; exit 1; }
  "$BIN" bench --target "$url" --entities "$ENTITIES" --preload-batch 5000 --max-requests 1 --warmup 0s >/dev/null
}

stop() {
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}
