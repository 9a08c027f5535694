// Package zktest gives tests a real ZooKeeper: it connects to the server
// started by scripts/zookeeper.sh (or NODEPOOL_ZK_HOSTS) and gives each
// test its own chroot, removed when the test ends.
package zktest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nodepool-go/nodepool/zkclient"
)

// DefaultHosts is where scripts/zookeeper.sh starts the test server.
const DefaultHosts = "127.0.0.1:22181"

// Hosts returns the ZooKeeper hosts tests use.
func Hosts() []string {
	if h := os.Getenv("NODEPOOL_ZK_HOSTS"); h != "" {
		return strings.Split(h, ",")
	}
	return []string{DefaultHosts}
}

// Chroot returns a new unique chroot for a test.
func Chroot(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return "/test-" + name + "-" + uuid.NewString()[:8]
}

// Config returns a client config for the chroot.
func Config(chroot string) zkclient.Config {
	return zkclient.Config{
		Hosts:          Hosts(),
		Chroot:         chroot,
		SessionTimeout: 10 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	}
}

// Connect returns a client on a fresh chroot, and the chroot. The test
// fails (it never skips) when ZooKeeper cannot be reached.
func Connect(t testing.TB) (*zkclient.Client, string) {
	t.Helper()
	chroot := Chroot(t)
	c := ConnectChroot(t, chroot)
	t.Cleanup(func() {
		root := MustConnect(t, "")
		defer root.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = root.DeleteRecursive(ctx, chroot)
	})
	return c, chroot
}

// ConnectChroot returns another client on an existing chroot, closed at the
// end of the test.
func ConnectChroot(t testing.TB, chroot string) *zkclient.Client {
	t.Helper()
	if chroot != "" {
		root := MustConnect(t, "")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := root.EnsurePath(ctx, chroot)
		cancel()
		root.Close()
		if err != nil {
			t.Fatalf("zktest: creating chroot %s: %v", chroot, err)
		}
	}
	c := MustConnect(t, chroot)
	t.Cleanup(c.Close)
	return c
}

// MustConnect connects or fails the test with instructions.
func MustConnect(t testing.TB, chroot string) *zkclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := zkclient.Connect(ctx, Config(chroot))
	if err != nil {
		t.Fatalf("zktest: ZooKeeper at %s is not reachable (%v); start it with scripts/zookeeper.sh start, or set NODEPOOL_ZK_HOSTS", strings.Join(Hosts(), ","), err)
	}
	return c
}

// HostsString returns the hosts joined with commas plus the chroot, as
// kazoo takes them.
func HostsString(chroot string) string {
	return fmt.Sprintf("%s%s", strings.Join(Hosts(), ","), chroot)
}
