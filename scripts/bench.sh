#!/usr/bin/env bash
# The end-to-end load benchmark of issue 9: real nodepool-launcher
# processes on the simulated cloud (zero boot time) and a local ZooKeeper,
# driven only through ZooKeeper by cmd/nodepool-bench acting as Zuul.
#
#   scripts/bench.sh                 # all scenarios
#   scripts/bench.sh 200 1000 two    # only these: burst sizes, and named
#                                    # scenarios delete, minready, two
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
zk=$(scripts/zookeeper.sh start)
BENCH_PORT=${BENCH_PORT:-18005} # launcher web ports: BENCH_PORT and the next one
mkdir -p bin/bench
go build -o bin/ ./cmd/nodepool-launcher ./cmd/nodepool-bench
sizes=()
named=()
for a in "$@"; do
  case $a in
  [0-9]*) sizes+=("$a") ;;
  delete | minready | two) named+=("$a") ;;
  *) echo "unknown scenario $a (burst sizes, delete, minready, two)" >&2; exit 2 ;;
  esac
done
if [ $# -eq 0 ]; then
  sizes=(200 1000 10000)
  named=(delete minready two)
fi
want() { [[ " ${named[*]} " == *" $1 "* ]]; }

config() { # chroot port min-ready
  cat <<CFG
zookeeper-servers:
  - host: ${zk%:*}
    port: ${zk#*:}
    chroot: $1
webapp:
  port: $2
  listen_address: 127.0.0.1
labels:
  - name: fake-label
    min-ready: $3
providers:
  - name: bench
    driver: simcloud
    pools:
      - name: main
        max-servers: 100000
        labels:
          - name: fake-label
CFG
}

pids=()
start_launcher() { # chroot port min-ready name
  config "$1" "$2" "$3" >"bin/bench/$4.yaml"
  bin/nodepool-launcher -c "bin/bench/$4.yaml" >"bin/bench/$4.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2" && printf 'GET /ready HTTP/1.0\r\n\r\n' >&3 && grep -q "200 OK" <&3) 2>/dev/null; then
      return
    fi
    sleep 0.1
  done
  echo "launcher $4 did not become ready; see bin/bench/$4.log" >&2
  exit 1
}
stop_launchers() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap stop_launchers EXIT

run() { # title chroot pid metrics-urls args...
  local title=$1 chroot=$2 pid=$3 urls=$4
  shift 4
  echo "== $title"
  bin/nodepool-bench -zk "$zk" -chroot "$chroot" -launcher-pid "$pid" -zk-mntr "$zk" \
    -launcher-metrics "$urls" "$@"
  echo
}

stamp=$(date +%s)
for n in "${sizes[@]+"${sizes[@]}"}"; do
  chroot=/bench-$stamp-$n
  start_launcher "$chroot" ${BENCH_PORT} 0 "l-$n"
  run "burst of $n single-node requests, one launcher" "$chroot" "${pids[0]}" http://127.0.0.1:${BENCH_PORT}/metrics -n "$n"
  stop_launchers
done

if want delete; then
  chroot=/bench-$stamp-delete
  start_launcher "$chroot" ${BENCH_PORT} 0 delete
  run "5000 node sets returned at once (deletion throughput)" "$chroot" "${pids[0]}" http://127.0.0.1:${BENCH_PORT}/metrics \
    -n 5000 -return-together
  stop_launchers
fi

if want minready; then
  chroot=/bench-$stamp-minready
  start_launcher "$chroot" ${BENCH_PORT} 1000 minready
  for _ in $(seq 1 600); do
    ready=$( (exec 3<>/dev/tcp/127.0.0.1/${BENCH_PORT} && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3) 2>/dev/null |
      awk '/^nodepool_nodes\{state="ready"\}/ {print int($2)}')
    [ "${ready:-0}" -ge 1000 ] && break
    sleep 0.5
  done
  echo "min-ready: ${ready:-0} ready nodes waiting"
  run "1000 requests with 1,000 min-ready nodes waiting" "$chroot" "${pids[0]}" http://127.0.0.1:${BENCH_PORT}/metrics -n 1000
  stop_launchers
fi

if want two; then
  chroot=/bench-$stamp-two
  start_launcher "$chroot" ${BENCH_PORT} 0 two-a
  start_launcher "$chroot" $((BENCH_PORT + 1)) 0 two-b
  run "burst of 1000 requests, two launchers sharing the provider" "$chroot" "${pids[0]}" \
    http://127.0.0.1:${BENCH_PORT}/metrics,http://127.0.0.1:$((BENCH_PORT + 1))/metrics -n 1000
  stop_launchers
fi
