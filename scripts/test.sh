#!/usr/bin/env bash
# The whole test suite: installs and starts what the tests need (ZooKeeper,
# kazoo, an SSH server, qemu-img), then go vet and go test -race.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
need=()
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
/usr/bin/python3 -c 'import kazoo' 2>/dev/null || need+=(python3-kazoo)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
scripts/zookeeper.sh start
go vet ./...
go test -race -timeout 20m "$@" ./...
