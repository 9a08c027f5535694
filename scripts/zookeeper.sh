#!/usr/bin/env bash
# Installs (when absent), starts and stops a throw-away standalone ZooKeeper
# from Debian's zookeeper package, listening on loopback only.
#
#   scripts/zookeeper.sh start   # prints the connect string on stdout
#   scripts/zookeeper.sh stop
#   scripts/zookeeper.sh status
#
# Environment:
#   NODEPOOL_ZK_DIR   state directory (default /tmp/nodepool-zk)
#   NODEPOOL_ZK_PORT  plaintext client port (default 22181)
set -euo pipefail

dir=${NODEPOOL_ZK_DIR:-/tmp/nodepool-zk}
port=${NODEPOOL_ZK_PORT:-22181}

log() { echo "zookeeper.sh: $*" >&2; }

install() {
  if [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1; then
    return
  fi
  log "installing Debian's zookeeper package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq zookeeper >&2
}

ruok() {
  local answer
  answer=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && echo ruok >&3 && cat <&3' _ "$1" 2>/dev/null || true)
  [ "$answer" = "imok" ]
}

classpath() {
  local cp="$dir/conf" j
  for j in zookeeper zookeeper-jute slf4j-api slf4j-log4j12 log4j-1.2 \
           netty-handler netty-common netty-buffer netty-transport netty-codec \
           netty-resolver netty-transport-native-unix-common netty-transport-native-epoll; do
    [ -f "/usr/share/java/$j.jar" ] && cp="$cp:/usr/share/java/$j.jar"
  done
  echo "$cp"
}

start() {
  if ruok "$port"; then
    echo "127.0.0.1:$port"
    return
  fi
  install
  rm -rf "$dir/data"
  mkdir -p "$dir/data" "$dir/conf"
  cat >"$dir/conf/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPortAddress=127.0.0.1
clientPort=$port
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=*
minSessionTimeout=1000
maxSessionTimeout=60000
${NODEPOOL_ZK_EXTRA_CFG:-}
CFG
  cat >"$dir/conf/log4j.properties" <<'CFG'
log4j.rootLogger=WARN, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=${zookeeper.log.dir}/zookeeper.log
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
CFG
  log "starting ZooKeeper on 127.0.0.1:$port (data in $dir)"
  nohup java -Xmx512m -Dzookeeper.log.dir="$dir" -cp "$(classpath)" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/conf/zoo.cfg" \
    >"$dir/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  for _ in $(seq 1 120); do
    if ruok "$port"; then
      echo "127.0.0.1:$port"
      return
    fi
    sleep 0.25
  done
  log "ZooKeeper did not answer ruok on port $port; see $dir/stdout.log and $dir/zookeeper.log"
  exit 1
}

stop() {
  if [ -f "$dir/pid" ]; then
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    rm -f "$dir/pid"
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) ruok "$port" && echo "imok 127.0.0.1:$port" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
