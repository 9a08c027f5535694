package zkclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

func BenchmarkNodeEncode(b *testing.B) {
	n, err := zkclient.DecodeNode("0000004321", readFixture(b, "node.json"))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf = n.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkNodeDecode(b *testing.B) {
	data := readFixture(b, "node.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := zkclient.DecodeNode("0000004321", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRequestEncode(b *testing.B) {
	r, err := zkclient.DecodeRequest("200-0000001234", readFixture(b, "node-request-fulfilled.json"))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkRequestDecode(b *testing.B) {
	data := readFixture(b, "node-request-fulfilled.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := zkclient.DecodeRequest("200-0000001234", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockAcquireRelease measures one uncontended acquire and release
// against the real ZooKeeper (create, children, delete round trips).
func BenchmarkLockAcquireRelease(b *testing.B) {
	c, _ := zktest.Connect(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := c.EnsurePath(ctx, lockDir); err != nil {
		b.Fatal(err)
	}
	l := c.NewLock(lockDir)
	for b.Loop() {
		if err := l.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNodeCreateDelete measures creating a node and deleting it the
// protocol's way (write "deleted", recursive delete) on the real ZooKeeper.
func BenchmarkNodeCreateDelete(b *testing.B) {
	c, _ := zktest.Connect(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	n0, err := zkclient.DecodeNode("", readFixture(b, "node.json"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		n := n0.Clone()
		if _, err := c.CreateNode(ctx, n); err != nil {
			b.Fatal(err)
		}
		if err := c.DeleteNode(ctx, n, nil); err != nil {
			b.Fatal(err)
		}
	}
}
