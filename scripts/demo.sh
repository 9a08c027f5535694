#!/usr/bin/env bash
# The quick start: starts a local ZooKeeper (installing it when absent),
# builds the binaries, runs nodepool-launcher on examples/nodepool.yaml with
# the simulated cloud, serves two requests the way Zuul does, and shows
# the nodes with `nodepool list`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
scripts/zookeeper.sh start >/dev/null
mkdir -p bin
go build -o bin/ ./cmd/...
go build -o bin/zuul-client ./examples/zuul-client
bin/nodepool-launcher -c examples/nodepool.yaml >bin/launcher.log 2>&1 &
launcher=$!
trap 'kill $launcher 2>/dev/null || true' EXIT
echo "launcher running (pid $launcher, log bin/launcher.log); web status on http://127.0.0.1:8005/node-list"
sleep 3
echo "== Zuul-style client: requesting two nodes"
bin/zuul-client -zk 127.0.0.1:22181 -chroot /nodepool-demo -label ubuntu-jammy,debian-bookworm -hold 3s &
client=$!
sleep 2
echo "== nodepool list (while the client holds its nodes)"
bin/nodepool -c examples/nodepool.yaml list
wait $client
sleep 2
echo "== nodepool list (after the nodes were returned; min-ready keeps 2 ubuntu-jammy)"
bin/nodepool -c examples/nodepool.yaml list
echo "== nodepool request-list"
bin/nodepool -c examples/nodepool.yaml request-list
if [ "${DEMO_KEEP_RUNNING:-}" = 1 ]; then
  echo "launcher keeps running; Ctrl-C to stop"
  wait $launcher
fi
