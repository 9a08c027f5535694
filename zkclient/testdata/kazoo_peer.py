"""The Python side of the interop tests: a kazoo client playing nodepool
or Zuul against the same ZooKeeper chroot as the Go client under test.

usage: kazoo_peer.py <hosts-with-chroot> <command> [args...]
Every command prints one JSON object per line on stdout.
"""
import json
import sys

from kazoo.client import KazooClient
from kazoo.exceptions import LockTimeout


def out(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    hosts, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=15)
    try:
        if cmd == "hold-lock":
            # Hold a lock until a line arrives on stdin.
            lock = zk.Lock(args[0], identifier=args[1])
            lock.acquire()
            out(acquired=True, node=lock.node)
            sys.stdin.readline()
            lock.release()
            out(released=True)
        elif cmd == "try-lock":
            lock = zk.Lock(args[0], identifier="python")
            res = {"contenders": lock.contenders()}
            try:
                res["acquired"] = lock.acquire(timeout=float(args[1]))
                lock.release()
            except LockTimeout:
                res["acquired"] = False
                res["lock_timeout"] = True
            res["children_after"] = sorted(zk.get_children(args[0]))
            out(**res)
        elif cmd == "read":
            data, stat = zk.get(args[0])
            d = json.loads(data.decode("utf-8"))
            out(keys=list(d.keys()), value=d, version=stat.version,
                types={k: type(v).__name__ for k, v in d.items()})
        elif cmd == "write-node":
            d = json.loads(args[0])
            path = zk.create("/nodepool/nodes/", json.dumps(d).encode("utf-8"),
                             sequence=True, makepath=True)
            out(id=path.rsplit("/", 1)[1])
        elif cmd == "write-request":
            d = json.loads(args[0])
            path = zk.create("/nodepool/requests/%s-" % args[1],
                             json.dumps(d).encode("utf-8"),
                             sequence=True, makepath=True)
            out(id=path.rsplit("/", 1)[1])
        else:
            raise SystemExit("unknown command " + cmd)
    finally:
        zk.stop()
        zk.close()


if __name__ == "__main__":
    main()
