package zktest

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nodepool-go/nodepool/zkclient"
)

// Proxy is a TCP proxy between a client and the ZooKeeper server that a
// test can cut (Pause) and restore (Resume) to provoke disconnection and
// session expiry.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	paused bool
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// NewProxy listens on 127.0.0.1:0 and forwards every connection to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the proxy's "host:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Pause closes every proxied connection and refuses new ones (they are
// accepted and closed at once) until Resume.
func (p *Proxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Resume forwards new connections again.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused || p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			_ = in.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(in)
	}
}

func (p *Proxy) serve(in net.Conn) {
	defer p.wg.Done()
	defer p.untrack(in)
	out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(out) {
		_ = out.Close()
		return
	}
	defer p.untrack(out)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}

// ConnectViaProxy connects a client to the chroot (created when missing)
// through a new Proxy, with the given session timeout. Both are closed at
// the end of the test; the chroot is not removed (pair it with Connect).
func ConnectViaProxy(t testing.TB, chroot string, sessionTimeout time.Duration) (*zkclient.Client, *Proxy) {
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
	p, err := NewProxy(Hosts()[0])
	if err != nil {
		t.Fatalf("zktest: starting proxy: %v", err)
	}
	t.Cleanup(p.Close)
	cfg := Config(chroot)
	cfg.Hosts = []string{p.Addr()}
	cfg.SessionTimeout = sessionTimeout
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := zkclient.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("zktest: ZooKeeper at %s is not reachable through the proxy (%v); start it with scripts/zookeeper.sh start", Hosts()[0], err)
	}
	t.Cleanup(c.Close)
	return c, p
}
