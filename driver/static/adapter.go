package static

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/keyscan"
)

// Adapter offers the configured hosts; it implements driver.Registrar.
type Adapter struct {
	cfg *driver.ProviderConfig
	// lookup resolves host names (replaceable in tests).
	lookup func(ctx context.Context, host string) ([]net.IP, error)
}

var (
	_ driver.Adapter   = (*Adapter)(nil)
	_ driver.Registrar = (*Adapter)(nil)
)

// ErrCannotLaunch is returned by create machines: static hosts are not made.
var ErrCannotLaunch = errors.New("static driver: hosts are registered, not launched")

// ErrUnreachable is wrapped by the errors of Check and Alive for a host
// that does not answer within its timeout.
var ErrUnreachable = errors.New("host is not reachable")

// ErrNotConfigured is wrapped by the errors of Check and Alive for a slot
// whose host is not (or no longer) in the provider's configuration.
var ErrNotConfigured = errors.New("host is not configured")

// ErrHostKeyMismatch is wrapped by the error of Check when a configured
// host key is not among the keys the host presents.
var ErrHostKeyMismatch = errors.New("host key mismatch")

// Open returns the adapter of a static provider.
func (Driver) Open(_ context.Context, cfg *driver.ProviderConfig, _ driver.Env) (driver.Adapter, error) {
	return &Adapter{cfg: cfg, lookup: func(ctx context.Context, host string) ([]net.IP, error) {
		return net.DefaultResolver.LookupIP(ctx, "ip", host)
	}}, nil
}

// node finds a configured host by slot.
func (a *Adapter) node(s driver.Slot) *Node {
	pool := a.cfg.Pool(s.Pool)
	if pool == nil {
		return nil
	}
	ps, _ := pool.Settings.(*PoolSettings)
	if ps == nil {
		return nil
	}
	for _, n := range ps.Nodes {
		if n.Name == s.Host && n.Username == s.Username && n.ConnectionPort == s.ConnectionPort {
			return n
		}
	}
	return nil
}

// Slots returns one slot per configured host and parallel job; a host
// with max-parallel-jobs below 1 offers none.
func (a *Adapter) Slots(ctx context.Context) ([]driver.Slot, error) {
	var out []driver.Slot
	for _, pool := range a.cfg.Pools {
		ps, _ := pool.Settings.(*PoolSettings)
		if ps == nil {
			continue
		}
		for _, n := range ps.Nodes {
			if n.MaxParallelJobs < 1 {
				continue // as upstream: no slots, so the host's nodes go
			}
			v4, v6 := a.resolve(ctx, n.Name)
			for i := 0; i < n.MaxParallelJobs; i++ {
				out = append(out, driver.Slot{
					Pool: pool.Name, Host: n.Name, Index: i, Labels: append([]string(nil), n.Labels...),
					Username: n.Username, ConnectionType: n.ConnectionType, ConnectionPort: n.ConnectionPort,
					ShellType: n.ShellType, PythonPath: n.PythonPath, PublicIPv4: v4, PublicIPv6: v6,
					Attributes: pool.NodeAttributes,
				})
			}
		}
	}
	return out, nil
}

// resolve returns the host's first IPv4 and IPv6 address (none for names
// containing "fake", as upstream).
func (a *Adapter) resolve(ctx context.Context, name string) (v4, v6 string) {
	if strings.Contains(name, "fake") {
		return "", ""
	}
	if ip := net.ParseIP(name); ip != nil {
		if ip.To4() != nil {
			return ip.String(), ""
		}
		return "", ip.String()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := a.lookup(ctx, name)
	if err != nil {
		return "", ""
	}
	for _, ip := range ips {
		if ip.To4() != nil && v4 == "" {
			v4 = ip.String()
		} else if ip.To4() == nil && v6 == "" {
			v6 = ip.String()
		}
	}
	return v4, v6
}

func gathersKeys(connType string) bool { return connType == "ssh" || connType == "network_cli" }

// Check verifies the host and returns its keys. For ssh and network_cli
// hosts with host-key-checking off the configured keys are returned as
// they are, without contacting the host; otherwise the host is scanned
// within its timeout (other connection types: only the port is tried and
// no keys are returned) and every configured key must be among the
// scanned ones.
func (a *Adapter) Check(ctx context.Context, s driver.Slot) ([]string, error) {
	n := a.node(s)
	if n == nil {
		return nil, fmt.Errorf("static host %s: %w", s.Host, ErrNotConfigured)
	}
	gather := gathersKeys(n.ConnectionType)
	if gather && !n.HostKeyChecking {
		return append([]string(nil), n.HostKeys...), nil
	}
	keys, err := keyscan.Scan(ctx, n.Name, n.ConnectionPort, n.ConnectionType, n.Timeout)
	if err != nil {
		return nil, fmt.Errorf("static host %s: %w: %w", n.Name, ErrUnreachable, err)
	}
	if !gather {
		return []string{}, nil
	}
	have := map[string]bool{}
	for _, k := range keys {
		have[normalizeKey(k)] = true
	}
	for _, want := range n.HostKeys {
		if !have[normalizeKey(want)] {
			return nil, fmt.Errorf("static host %s: %w (expected %.40s...)", n.Name, ErrHostKeyMismatch, want)
		}
	}
	return keys, nil
}

// normalizeKey keeps "<type> <base64>", dropping a comment.
func normalizeKey(k string) string {
	f := strings.Fields(k)
	if len(f) >= 2 {
		return f[0] + " " + f[1]
	}
	return strings.TrimSpace(k)
}

// Alive checks the host accepts connections before a node is reused (a
// host without host-key-checking is taken as live).
func (a *Adapter) Alive(ctx context.Context, s driver.Slot) error {
	n := a.node(s)
	if n == nil {
		return fmt.Errorf("static host %s: %w", s.Host, ErrNotConfigured)
	}
	if !n.HostKeyChecking || strings.Contains(n.Name, "fake") {
		return nil // hosts named "fake..." are simulated and never contacted
	}
	d := net.Dialer{Timeout: n.Timeout}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(n.Name, strconv.Itoa(n.ConnectionPort)))
	if err != nil {
		return fmt.Errorf("static host %s: %w: %w", n.Name, ErrUnreachable, err)
	}
	return c.Close()
}

// CreateMachine returns a machine that fails: static hosts are registered.
func (a *Adapter) CreateMachine(driver.CreateSpec) driver.CreateMachine { return failMachine{} }

// DeleteMachine completes at once: removing a node never touches the host.
func (a *Adapter) DeleteMachine(string) driver.DeleteMachine { return doneMachine{} }

// ListInstances returns nothing: static hosts are not cloud instances.
func (a *Adapter) ListInstances(context.Context) ([]driver.Instance, error) { return nil, nil }

// Close does nothing.
func (a *Adapter) Close() error { return nil }

type failMachine struct{}

func (failMachine) Advance(context.Context) (*driver.Instance, error) { return nil, ErrCannotLaunch }
func (failMachine) ExternalID() string                                { return "" }

type doneMachine struct{}

func (doneMachine) Advance(context.Context) (bool, error) { return true, nil }
