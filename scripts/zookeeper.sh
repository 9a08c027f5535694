#!/usr/bin/env bash
# Installs (when absent), starts and stops a throw-away standalone ZooKeeper
# from Debian's zookeeper package, listening on loopback only.
#
#   scripts/zookeeper.sh start   # prints the connect string on stdout
#   scripts/zookeeper.sh stop
#   scripts/zookeeper.sh status
#
# A three-server ensemble on loopback ports, as production runs it:
#
#   scripts/zookeeper.sh ensemble start        # all three; prints the connect string
#   scripts/zookeeper.sh ensemble stop         # all three
#   scripts/zookeeper.sh ensemble status       # "<id> <port> leader|follower|down" per server
#   scripts/zookeeper.sh ensemble kill N       # kill -9 server N (1-3)
#   scripts/zookeeper.sh ensemble restart N    # start server N again (after kill), wait for it
#   scripts/zookeeper.sh ensemble leader       # the id of the current leader
#
# Environment:
#   NODEPOOL_ZK_DIR   state directory (default /tmp/nodepool-zk)
#   NODEPOOL_ZK_PORT  plaintext client port (default 22181)
#   NODEPOOL_ZK_ENSEMBLE_DIR   ensemble state (default /tmp/nodepool-zk-ensemble)
#   NODEPOOL_ZK_ENSEMBLE_PORT  first of nine consecutive ports (default 22281):
#                              client ports +0..+2, quorum +3..+5, election +6..+8
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

edir=${NODEPOOL_ZK_ENSEMBLE_DIR:-/tmp/nodepool-zk-ensemble}
ebase=${NODEPOOL_ZK_ENSEMBLE_PORT:-22281}

eport() { echo $((ebase + $1 - 1)); }

four() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && echo "$2" >&3 && cat <&3' _ "$1" "$2" 2>/dev/null || true
}

emode() {
  local m
  m=$(four "$(eport "$1")" srvr | sed -n 's/^Mode: //p')
  echo "${m:-down}"
}

econnect() { echo "127.0.0.1:$(eport 1),127.0.0.1:$(eport 2),127.0.0.1:$(eport 3)"; }

# ewrite writes server N's configuration (once; its data survives restarts).
ewrite() {
  local i=$1 d="$edir/$1" j
  [ -f "$d/conf/zoo.cfg" ] && return
  mkdir -p "$d/data" "$d/conf"
  echo "$i" >"$d/data/myid"
  {
    echo "tickTime=500"
    echo "initLimit=20"
    echo "syncLimit=10"
    echo "dataDir=$d/data"
    echo "clientPortAddress=127.0.0.1"
    echo "clientPort=$(eport "$i")"
    echo "maxClientCnxns=0"
    echo "admin.enableServer=false"
    echo "4lw.commands.whitelist=*"
    echo "minSessionTimeout=1000"
    echo "maxSessionTimeout=60000"
    echo "cnxTimeout=1000"
    for j in 1 2 3; do
      echo "server.$j=127.0.0.1:$((ebase + 2 + j)):$((ebase + 5 + j))"
    done
    echo "${NODEPOOL_ZK_EXTRA_CFG:-}"
  } >"$d/conf/zoo.cfg"
  sed "s|\${zookeeper.log.dir}|$d|" >"$d/conf/log4j.properties" <<'CFG'
log4j.rootLogger=WARN, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=${zookeeper.log.dir}/zookeeper.log
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
CFG
}

# elaunch starts server N in the background.
elaunch() {
  local i=$1 d="$edir/$1"
  ewrite "$i"
  if [ -f "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null; then
    return
  fi
  dir=$d nohup java -Xmx192m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dzookeeper.log.dir="$d" \
    -cp "$(dir=$d classpath)" org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/conf/zoo.cfg" \
    >"$d/stdout.log" 2>&1 </dev/null &
  echo $! >"$d/pid"
}

# ewait waits until the given servers serve clients (have joined a quorum).
ewait() {
  local i
  for _ in $(seq 1 240); do
    local ok=1
    for i in "$@"; do
      case $(emode "$i") in leader|follower) ;; *) ok=0 ;; esac
    done
    [ $ok = 1 ] && return 0
    sleep 0.25
  done
  log "ensemble servers $* did not join a quorum; see $edir/*/zookeeper.log"
  return 1
}

ekill() {
  local d="$edir/$1"
  if [ -f "$d/pid" ]; then
    kill -9 "$(cat "$d/pid")" 2>/dev/null || true
    rm -f "$d/pid"
  fi
}

ensemble() {
  case "${1:-}" in
    start)
      install
      rm -rf "$edir"
      mkdir -p "$edir"
      elaunch 1; elaunch 2; elaunch 3
      ewait 1 2 3
      econnect ;;
    stop) ekill 1; ekill 2; ekill 3 ;;
    status) for i in 1 2 3; do echo "$i $(eport "$i") $(emode "$i")"; done ;;
    kill) ekill "$2" ;;
    restart) elaunch "$2"; ewait "$2" ;;
    leader)
      for i in 1 2 3; do
        if [ "$(emode "$i")" = leader ]; then echo "$i"; return 0; fi
      done
      return 1 ;;
    *) echo "usage: $0 ensemble start|stop|status|kill N|restart N|leader" >&2; exit 2 ;;
  esac
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) ruok "$port" && echo "imok 127.0.0.1:$port" ;;
  ensemble) shift; ensemble "$@" ;;
  *) echo "usage: $0 start|stop|status|ensemble ..." >&2; exit 2 ;;
esac
