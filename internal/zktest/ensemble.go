package zktest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodepool-go/nodepool/zkclient"
)

// Ensemble is a three-server ZooKeeper ensemble on loopback ports for one
// test, run by scripts/zookeeper.sh ensemble; its servers can be killed
// and restarted. It is stopped when the test ends.
type Ensemble struct {
	Hosts []string // the client addresses of servers 1, 2 and 3
	t     testing.TB
	env   []string
}

// StartEnsemble starts an ensemble on nine free consecutive ports.
func StartEnsemble(t testing.TB) *Ensemble {
	t.Helper()
	base := freePortRange(t, 9)
	e := &Ensemble{t: t, env: append(os.Environ(),
		"NODEPOOL_ZK_ENSEMBLE_DIR="+t.TempDir(),
		"NODEPOOL_ZK_ENSEMBLE_PORT="+strconv.Itoa(base))}
	out := e.script("start")
	e.Hosts = strings.Split(strings.TrimSpace(out), ",")
	if len(e.Hosts) != 3 {
		t.Fatalf("zktest: unexpected ensemble connect string %q", out)
	}
	t.Cleanup(func() { e.script("stop") })
	return e
}

func (e *Ensemble) script(args ...string) string {
	e.t.Helper()
	cmd := exec.Command(scriptPath(e.t), append([]string{"ensemble"}, args...)...)
	cmd.Env = e.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("zktest: zookeeper.sh ensemble %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// Kill kills server id (1-3) with SIGKILL.
func (e *Ensemble) Kill(id int) { e.script("kill", strconv.Itoa(id)) }

// Restart starts server id again and waits until it has joined a quorum
// (which needs a second server up).
func (e *Ensemble) Restart(id int) { e.script("restart", strconv.Itoa(id)) }

// StartAsync starts server id again without waiting.
func (e *Ensemble) StartAsync(id int) {
	e.t.Helper()
	cmd := exec.Command(scriptPath(e.t), "ensemble", "restart", strconv.Itoa(id))
	cmd.Env = e.env
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("zktest: starting server %d: %v", id, err)
	}
	go func() { _ = cmd.Wait() }()
}

// Leader returns the id of the current leader, waiting up to 30 s for one.
func (e *Ensemble) Leader() int {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cmd := exec.Command(scriptPath(e.t), "ensemble", "leader")
		cmd.Env = e.env
		out, err := cmd.Output()
		if err == nil {
			if id, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil {
				return id
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("zktest: the ensemble has no leader: %s", e.script("status"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Connect returns a client of the whole ensemble on chroot (created when
// missing), closed when the test ends.
func (e *Ensemble) Connect(chroot string, sessionTimeout time.Duration) *zkclient.Client {
	e.t.Helper()
	cfg := zkclient.Config{Hosts: e.Hosts, SessionTimeout: sessionTimeout,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if chroot != "" {
		root, err := zkclient.Connect(ctx, cfg)
		if err != nil {
			e.t.Fatalf("zktest: connecting to the ensemble: %v", err)
		}
		err = root.EnsurePath(ctx, chroot)
		root.Close()
		if err != nil {
			e.t.Fatalf("zktest: creating chroot %s: %v", chroot, err)
		}
	}
	cfg.Chroot = chroot
	c, err := zkclient.Connect(ctx, cfg)
	if err != nil {
		e.t.Fatalf("zktest: connecting to the ensemble: %v", err)
	}
	e.t.Cleanup(c.Close)
	return c
}

// scriptPath returns scripts/zookeeper.sh of this module.
func scriptPath(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("zktest: cannot locate the module")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "zookeeper.sh")
}

// freePortRange returns the first of n consecutive free loopback ports.
func freePortRange(t testing.TB, n int) int {
	t.Helper()
	for range 200 {
		base := 30000 + rand.IntN(25000)
		var lns []net.Listener
		ok := true
		for p := base; p < base+n; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("zktest: no free port range")
	return 0
}
