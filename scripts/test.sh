#!/usr/bin/env bash
# The whole test suite: installs and starts what the tests need (ZooKeeper,
# kazoo, an SSH server, qemu-img, headless Chromium for the status page's
# browser test), then go vet and go test: with the race detector for every
# package whose tests link no cloud SDK (the launcher, ZooKeeper client,
# builder, core drivers, ...), without it for those that do (the cloud
# drivers, their fakes, the commands that link every driver). Compiling the
# cloud SDKs with -race costs CI more than ten minutes; NODEPOOL_RACE_ALL=1
# runs everything under the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
need=()
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
/usr/bin/python3 -c 'import kazoo' 2>/dev/null || need+=(python3-kazoo)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
scripts/zookeeper.sh start
go vet ./...
log=$(mktemp /tmp/nodepool-test.XXXXXX)
status=0
sdk='k8s.io/|github.com/aws/|google.golang.org/api|github.com/IBM/|github.com/Azure/'
race=() plain=()
while read -r pkg deps; do
  pkg=${pkg%.test}
  if [ -n "${NODEPOOL_RACE_ALL:-}" ] || ! grep -qE "$sdk" <<<"$deps"; then
    race+=("$pkg")
  else
    plain+=("$pkg")
  fi
done < <(go list -test -f '{{.ImportPath}} {{join .Deps " "}}' ./... | awk '$1 ~ /\.test$/')
(
  st=0
  go test -race -timeout 20m "$@" "${race[@]}" || st=$?
  # The patched ZooKeeper client is a module of its own: ./... skips it.
  (cd third_party/go-zookeeper-zk && go test -race "$@" .) || st=$?
  if [ ${#plain[@]} -gt 0 ]; then
    go test -timeout 20m "$@" "${plain[@]}" || st=$?
  fi
  exit "$st"
) 2>&1 | tee "$log" || status=$?
if [ "$status" -ne 0 ]; then
  # The suite's output is long; repeat every failure report at the end so
  # the last lines of a CI log name what failed and why.
  echo
  echo "=== failures (repeated from above) ==="
  awk '/^(--- FAIL|panic:|fatal error:|FAIL\t|    --- FAIL)/ {show=1; n=0}
       show && /^(ok  |=== RUN|--- PASS|PASS$)/ {show=0}
       show {print; if (++n > 120) show=0}' "$log"
  echo
  echo "=== in short: each failure and the first lines it printed ==="
  awk '/^ *--- FAIL|^panic:|^fatal error:/ {print; n=3; next}
       n > 0 && /^ / {print; n--; next} {n=0}' "$log"
fi
rm -f "$log"
exit "$status"
