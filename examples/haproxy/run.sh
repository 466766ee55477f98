#!/usr/bin/env bash
# Three http_server instances behind a real HAProxy (TCP mode, PROXY protocol v2, health checks).
#
#   examples/haproxy/run.sh            # clients: http://127.0.0.1:8080/
#   curl -s http://127.0.0.1:8080/     # each backend logs "connected from <your address> via ..."
#   echo "set server sockloop/b2 state drain" | socat stdio /tmp/sockloop-haproxy.sock
#   kill -TERM <b2's pid>              # it finishes its requests; HAProxy sends new ones elsewhere
#
# Ctrl-C stops HAProxy, then the backends (gracefully: SIGTERM).
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v haproxy >/dev/null || { echo "run.sh: haproxy is not installed (apt-get install haproxy)" >&2; exit 1; }
cargo build --release --features proxy-protocol --example http_server
server=target/release/examples/http_server

export FRONT_ADDR="${FRONT_ADDR:-127.0.0.1:8080}"
export BACKEND_1="${BACKEND_1:-127.0.0.1:8081}"
export BACKEND_2="${BACKEND_2:-127.0.0.1:8082}"
export BACKEND_3="${BACKEND_3:-127.0.0.1:8083}"
export HAPROXY_SOCKET="${HAPROXY_SOCKET:-${TMPDIR:-/tmp}/sockloop-haproxy.sock}"

pids=()
stop_backends() {
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop_backends EXIT
for backend in "$BACKEND_1" "$BACKEND_2" "$BACKEND_3"; do
  RUST_LOG="${RUST_LOG:-info}" "$server" --listen "$backend" --proxy-protocol &
  pids+=($!)
  echo "backend $backend: pid $!"
done

echo "haproxy: clients connect to $FRONT_ADDR"
haproxy -db -f examples/haproxy/haproxy.cfg
