#!/usr/bin/env bash
# The end-to-end load benchmark of issue 9: real nodepool-launcher
# processes on the simulated cloud (zero boot time) and a local ZooKeeper,
# driven only through ZooKeeper by cmd/nodepool-bench acting as Zuul.
#
#   scripts/bench.sh                 # all scenarios
#   scripts/bench.sh 200 1000 two    # only these: burst sizes, and named
#                                    # scenarios delete, minready, two
#
# Environment: WARMUP=0 skips the unreported warm-up burst (WARMUP_N sets
# its size, default 10000); LEAN=1 builds the launcher without the cloud SDKs the
# simulated cloud does not need; LAUNCHER_ENV="GOGC=50 ..." is passed to
# the launcher processes only; BENCH_PORT moves the launchers' web ports.
#
# The scenario "python" compares with another launcher in the same run:
# PY_LAUNCHER names a command that takes a ZooKeeper chroot as its only
# argument and runs, in the foreground (exec, so its PID is the
# launcher's), a launcher with a provider serving label fake-label from
# that chroot on the same ZooKeeper, such as upstream's Python launcher with
# its fake driver. It gets a burst of PY_N requests (default 200), and so
# does this launcher if that size is not among the bursts already asked for.
# The run ends with a summary of every burst (and the 10,000/1,000
# throughput ratio when both ran); the full reports are above it and in
# bin/bench/<scenario>.out.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
zk=$(scripts/zookeeper.sh start)
BENCH_PORT=${BENCH_PORT:-18005} # launcher web ports: BENCH_PORT and the next one
mkdir -p bin/bench
tags=()
if [ "${LEAN:-}" = 1 ]; then
  tags=(-tags "nodepool_omit_kubernetes nodepool_omit_openshift nodepool_omit_openshiftpods nodepool_omit_gce nodepool_omit_ibmvpc")
fi
go build "${tags[@]}" -o bin/ ./cmd/nodepool-launcher
go build -o bin/ ./cmd/nodepool-bench
sizes=()
named=()
for a in "$@"; do
  case $a in
  [0-9]*) sizes+=("$a") ;;
  delete | minready | two | python) named+=("$a") ;;
  *) echo "unknown scenario $a (burst sizes, delete, minready, two, python)" >&2; exit 2 ;;
  esac
done
if [ $# -eq 0 ]; then
  sizes=(200 1000 10000)
  named=(delete minready two)
  [ -n "${PY_LAUNCHER:-}" ] && named+=(python)
fi
want() { [[ " ${named[*]} " == *" $1 "* ]]; }
py_n=${PY_N:-200}
if want python; then
  if [ -z "${PY_LAUNCHER:-}" ]; then
    echo "the python scenario needs PY_LAUNCHER (see the top of this script)" >&2
    exit 2
  fi
  [[ " ${sizes[*]+${sizes[*]}} " == *" $py_n "* ]] || sizes=("$py_n" "${sizes[@]+"${sizes[@]}"}")
fi

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
  # shellcheck disable=SC2086 # LAUNCHER_ENV is a list of NAME=value words
  env ${LAUNCHER_ENV:-} bin/nodepool-launcher -c "bin/bench/$4.yaml" >"bin/bench/$4.log" 2>&1 &
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

run() { # name title chroot pid metrics-urls args...
  local name=$1 title=$2 chroot=$3 pid=$4 urls=$5
  shift 5
  echo "== $title"
  bin/nodepool-bench -zk "$zk" -chroot "$chroot" -launcher-pid "$pid" -zk-mntr "$zk" \
    -launcher-metrics "$urls" "$@" | tee "bin/bench/$name.out"
  echo
}

# field <name> <report line prefix>: the first number after the prefix.
field() { sed -n "s/^$2 *\([0-9.]*\).*/\1/p" "bin/bench/$1.out" | head -1; }

summary() {
  echo "== summary"
  printf '%-10s %12s %10s %10s %12s %14s %14s %14s\n' burst fulfilled/s p50 p99/p50 "zk req/req" "peak RSS MB" "of it anon MB" "RSS at end MB"
  for n in "${sizes[@]+"${sizes[@]}"}"; do
    local f="bin/bench/l-$n.out"
    [ -f "$f" ] || continue
    local lat p50 p99
    lat=$(sed -n 's/^latency p50\/p95\/p99: *//p' "$f")
    p50=$(echo "$lat" | awk '{print $1}')
    p99=$(echo "$lat" | awk '{print $5}')
    printf '%-10s %12s %10s %10s %12s %14s %14s %14s\n' "$n" "$(field "l-$n" 'fulfilled\/s:')" "$p50" \
      "$(awk -v a="$(secs "$p99")" -v b="$(secs "$p50")" 'BEGIN { if (b > 0) printf "%.2f", a / b }')" \
      "$(sed -n 's/^launcher zk ops: *[0-9]* (\([0-9.]*\) per request)/\1/p' "$f")" \
      "$(sed -n 's/^launcher peak RSS: *\([0-9.]*\) MB.*/\1/p' "$f")" \
      "$(sed -n 's/^launcher RSS split: *peak \([0-9.]*\) MB anonymous.*/\1/p' "$f")" \
      "$(sed -n 's/^launcher peak RSS:.*; \([0-9.]*\) MB resident.*/\1/p' "$f")"
  done
  if want python && [ -f "bin/bench/l-$py_n.out" ] && [ -f bin/bench/python.out ]; then
    awk -v a="$(field "l-$py_n" 'fulfilled\/s:')" -v b="$(field python 'fulfilled\/s:')" -v n="$py_n" \
      'BEGIN { if (b > 0) printf "fulfilled/s at a burst of %d against PY_LAUNCHER: %.1f vs %.1f, %.1fx\n", n, a, b, a / b }'
  fi
  if [[ " ${sizes[*]+${sizes[*]}} " == *" 1000 "* && " ${sizes[*]+${sizes[*]}} " == *" 10000 "* ]]; then
    awk -v a="$(field l-10000 'fulfilled\/s:')" -v b="$(field l-1000 'fulfilled\/s:')" \
      'BEGIN { if (b > 0) printf "fulfilled/s at 10,000 as a share of 1,000: %.0f%% (%.1f vs %.1f)\n", 100 * a / b, a, b }'
  fi
}

# secs converts a Go duration (1.5s, 250ms, 80µs) to seconds.
secs() {
  case $1 in
  *ms) awk -v v="${1%ms}" 'BEGIN { print v / 1000 }' ;;
  *µs) awk -v v="${1%µs}" 'BEGIN { print v / 1000000 }' ;;
  *m*s) awk -v m="${1%%m*}" -v s="${1#*m}" 'BEGIN { sub(/s$/, "", s); print m * 60 + s }' ;;
  *s) echo "${1%s}" ;;
  *) echo 0 ;;
  esac
}

stamp=$(date +%s)
# A ZooKeeper server that has just started runs its code interpreted for a
# while; production servers are warm. One unreported burst warms it (and
# the launcher binary's pages) before anything is measured.
if [ "${WARMUP:-1}" != 0 ]; then
  chroot=/bench-$stamp-warmup
  start_launcher "$chroot" ${BENCH_PORT} 0 warmup
  bin/nodepool-bench -zk "$zk" -chroot "$chroot" -n "${WARMUP_N:-10000}" >bin/bench/warmup.out 2>&1 ||
    { echo "warm-up burst failed; see bin/bench/warmup.out" >&2; exit 1; }
  stop_launchers
  echo "== warm-up: a burst of ${WARMUP_N:-10000} (not reported)"
  echo
fi
for n in "${sizes[@]+"${sizes[@]}"}"; do
  chroot=/bench-$stamp-$n
  start_launcher "$chroot" ${BENCH_PORT} 0 "l-$n"
  run "l-$n" "burst of $n single-node requests, one launcher" "$chroot" "${pids[0]}" http://127.0.0.1:${BENCH_PORT}/metrics -n "$n"
  stop_launchers
done

if want python; then
  chroot=/bench-$stamp-python
  "$PY_LAUNCHER" "$chroot" >bin/bench/python.log 2>&1 &
  pids+=($!)
  run python "burst of $py_n single-node requests, PY_LAUNCHER ($PY_LAUNCHER)" "$chroot" "${pids[0]}" "" \
    -n "$py_n" -wait-launcher 60s
  stop_launchers
fi

if want delete; then
  chroot=/bench-$stamp-delete
  start_launcher "$chroot" ${BENCH_PORT} 0 delete
  run delete "5000 node sets returned at once (deletion throughput)" "$chroot" "${pids[0]}" http://127.0.0.1:${BENCH_PORT}/metrics \
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
  run minready "1000 requests with 1,000 min-ready nodes waiting" "$chroot" "${pids[0]}" http://127.0.0.1:${BENCH_PORT}/metrics -n 1000
  stop_launchers
fi

if want two; then
  chroot=/bench-$stamp-two
  start_launcher "$chroot" ${BENCH_PORT} 0 two-a
  start_launcher "$chroot" $((BENCH_PORT + 1)) 0 two-b
  run two "burst of 1000 requests, two launchers sharing the provider" "$chroot" "${pids[0]}" \
    http://127.0.0.1:${BENCH_PORT}/metrics,http://127.0.0.1:$((BENCH_PORT + 1))/metrics -n 1000
  stop_launchers
fi

summary
