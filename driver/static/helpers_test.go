package static

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
)

// parse parses one provider entry the way the configuration loader does
// (strict: as config-validate does).
func parse(t *testing.T, src string, strict bool) (*driver.ProviderConfig, *driver.Problems) {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	require.NotEmpty(t, doc.Content, "empty YAML document")
	probs := &driver.Problems{File: "nodepool.yaml", Strict: strict}
	p := Driver{}.ParseProvider(driver.NewSection(doc.Content[0], "providers[0]", probs))
	require.NotNil(t, p)
	return p, probs
}

// mustParse parses a provider that must have no errors, in both modes.
func mustParse(t *testing.T, src string) *driver.ProviderConfig {
	t.Helper()
	_, sp := parse(t, src, true)
	require.Empty(t, messages(sp.Errors), "config-validate errors")
	p, lp := parse(t, src, false)
	require.Empty(t, messages(lp.Errors), "load errors")
	return p
}

// messages returns "path: msg" of each problem.
func messages(list []*driver.ConfigError) []string {
	out := []string{}
	for _, e := range list {
		out = append(out, e.Path+": "+e.Msg)
	}
	return out
}

// nodes returns the parsed hosts of a pool.
func nodes(t *testing.T, p *driver.ProviderConfig, pool string) []*Node {
	t.Helper()
	pl := p.Pool(pool)
	require.NotNil(t, pl, "pool %s", pool)
	ps, ok := pl.Settings.(*PoolSettings)
	require.True(t, ok, "pool settings are %T", pl.Settings)
	return ps.Nodes
}

// open parses a provider and opens its adapter with a lookup that fails
// every name (tests that resolve names replace it).
func open(t *testing.T, src string) *Adapter {
	t.Helper()
	cfg := mustParse(t, src)
	ad, err := Driver{}.Open(context.Background(), cfg, driver.Env{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, ad.Close()) })
	a := ad.(*Adapter)
	a.lookup = func(_ context.Context, host string) ([]net.IP, error) {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return a
}

// slotOf returns the slot of a host with the given port and index.
func slotOf(t *testing.T, a *Adapter, host string, port, index int) driver.Slot {
	t.Helper()
	slots, err := a.Slots(context.Background())
	require.NoError(t, err)
	for _, s := range slots {
		if s.Host == host && s.ConnectionPort == port && s.Index == index {
			return s
		}
	}
	require.Failf(t, "no slot", "no slot %s:%d #%d in %v", host, port, index, slots)
	return driver.Slot{}
}

// deadPort returns a port on addr that nothing listens on.
func deadPort(t *testing.T, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// proxy forwards loopback TCP connections to a target and counts them, so
// a test can tell whether the adapter contacted a host.
type proxy struct {
	ln     net.Listener
	Port   int
	count  atomic.Int64
	mu     sync.Mutex
	conns  []net.Conn
	closed bool // the test ended: connections are closed at once
	wg     sync.WaitGroup
}

// startProxy forwards connections to target ("host:port") until the test
// ends.
func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, Port: ln.Addr().(*net.TCPAddr).Port}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.count.Add(1)
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.track(c, up)
			p.wg.Add(2)
			go p.pipe(c, up)
			go p.pipe(up, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		p.closed = true
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, cs...)
	if p.closed {
		for _, c := range cs {
			c.Close()
		}
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// Contacts returns the number of connections accepted so far.
func (p *proxy) Contacts() int { return int(p.count.Load()) }

// itoa formats a port for YAML.
func itoa(n int) string { return strconv.Itoa(n) }
