package static

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/sshdtest"
)

func TestSlotsOnePerHostAndParallelJob(t *testing.T) {
	a := open(t, `
name: st
driver: static
pools:
  - name: one
    node-attributes: {rack: r1}
    nodes:
      - name: 192.0.2.10
        labels: [big, small]
        username: ci
        connection-port: 2022
        shell-type: bash
        python-path: /usr/bin/python3
        max-parallel-jobs: 3
      - {name: 192.0.2.10, labels: [small], username: other}
  - name: two
    nodes:
      - {name: "2001:db8::7", labels: [win], connection-type: winrm, connection-port: 5986}
      - {name: 192.0.2.99, labels: [small], max-parallel-jobs: 0}
`)
	slots, err := a.Slots(context.Background())
	require.NoError(t, err)
	attrs := map[string]any{"rack": "r1"}
	big := driver.Slot{Pool: "one", Host: "192.0.2.10", Labels: []string{"big", "small"}, Username: "ci",
		ConnectionType: "ssh", ConnectionPort: 2022, ShellType: "bash", PythonPath: "/usr/bin/python3",
		PublicIPv4: "192.0.2.10", Attributes: attrs}
	want := []driver.Slot{big, big, big,
		{Pool: "one", Host: "192.0.2.10", Labels: []string{"small"}, Username: "other", ConnectionType: "ssh",
			ConnectionPort: 22, PythonPath: "auto", PublicIPv4: "192.0.2.10", Attributes: attrs},
		{Pool: "two", Host: "2001:db8::7", Labels: []string{"win"}, Username: "zuul", ConnectionType: "winrm",
			ConnectionPort: 5986, PythonPath: "auto", PublicIPv6: "2001:db8::7"},
	}
	want[1].Index, want[2].Index = 1, 2
	require.Equal(t, want, slots, "the host with max-parallel-jobs 0 offers no slot")

	// The two entries of 192.0.2.10 are different hosts to the launcher.
	require.NotEqual(t, slots[0].HostKey(), slots[3].HostKey())
	require.Equal(t, slots[0].HostKey(), slots[2].HostKey())

	// A slot's labels are its own copy.
	slots[0].Labels[0] = "changed"
	again, err := a.Slots(context.Background())
	require.NoError(t, err)
	require.Equal(t, "big", again[0].Labels[0])
	require.Equal(t, []string{"big", "small"}, nodes(t, a.cfg, "one")[0].Labels)
}

func TestSlotsResolveNames(t *testing.T) {
	a := open(t, `
name: st
driver: static
pools:
  - name: main
    nodes:
      - {name: dual.example.org, labels: [a]}
      - {name: v6only.example.org, labels: [a]}
      - {name: unknown.example.org, labels: [a]}
      - {name: fake-host.example.org, labels: [a]}
      - {name: 198.51.100.4, labels: [a]}
`)
	var mu sync.Mutex
	var asked []string
	a.lookup = func(_ context.Context, host string) ([]net.IP, error) {
		mu.Lock()
		asked = append(asked, host)
		mu.Unlock()
		switch host {
		case "dual.example.org":
			return []net.IP{net.ParseIP("2001:db8::1"), net.ParseIP("192.0.2.1"), net.ParseIP("192.0.2.2"),
				net.ParseIP("2001:db8::2")}, nil
		case "v6only.example.org":
			return []net.IP{net.ParseIP("2001:db8::3")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	slots, err := a.Slots(context.Background())
	require.NoError(t, err, "a name that does not resolve is no error")
	type addrs struct{ v4, v6 string }
	got := map[string]addrs{}
	for _, s := range slots {
		got[s.Host] = addrs{s.PublicIPv4, s.PublicIPv6}
	}
	require.Equal(t, map[string]addrs{
		"dual.example.org":      {"192.0.2.1", "2001:db8::1"}, // the first address of each family
		"v6only.example.org":    {"", "2001:db8::3"},
		"unknown.example.org":   {"", ""},
		"fake-host.example.org": {"", ""},
		"198.51.100.4":          {"198.51.100.4", ""},
	}, got)
	require.ElementsMatch(t, []string{"dual.example.org", "v6only.example.org", "unknown.example.org"}, asked,
		"addresses and simulated (fake) hosts are not looked up")
}

// sshHost is a static provider with one host reached through a counting
// proxy in front of a real sshd.
type sshHost struct {
	srv   *sshdtest.Server
	proxy *proxy
}

func startSSHHost(t *testing.T) *sshHost {
	t.Helper()
	srv := sshdtest.Start(t)
	return &sshHost{srv: srv, proxy: startProxy(t, srv.Addr)}
}

// provider returns a provider listing the live host (through the proxy)
// with the given extra node keys, and a dead host.
func (h *sshHost) provider(t *testing.T, extra string) (a *Adapter, live, dead driver.Slot) {
	t.Helper()
	deadP := deadPort(t, "127.0.0.1")
	a = open(t, `
name: st
driver: static
pools:
  - name: main
    nodes:
      - {name: 127.0.0.1, labels: [a], connection-port: `+itoa(h.proxy.Port)+`, timeout: 10`+extra+`}
      - {name: 127.0.0.1, labels: [a], connection-port: `+itoa(deadP)+`, timeout: 1`+extra+`}
`)
	return a, slotOf(t, a, "127.0.0.1", h.proxy.Port, 0), slotOf(t, a, "127.0.0.1", deadP, 0)
}

func TestCheckScansTheHostKeys(t *testing.T) {
	h := startSSHHost(t)
	a, live, dead := h.provider(t, "")
	ctx := context.Background()

	keys, err := a.Check(ctx, live)
	require.NoError(t, err)
	require.ElementsMatch(t, h.srv.HostKeys, keys, "the keys the real sshd presents")
	require.Positive(t, h.proxy.Contacts(), "the host was scanned")

	keys, err = a.Check(ctx, dead)
	require.Error(t, err, "a host whose scan fails is no host to register")
	require.ErrorIs(t, err, ErrUnreachable)
	require.Contains(t, err.Error(), "127.0.0.1")
	require.Nil(t, keys)
}

func TestCheckComparesConfiguredKeys(t *testing.T) {
	h := startSSHHost(t)
	ctx := context.Background()

	// A configured key (with a comment) that the host presents passes.
	a, live, _ := h.provider(t, `, host-key: "`+h.srv.HostKeys[0]+` root@host"`)
	keys, err := a.Check(ctx, live)
	require.NoError(t, err)
	require.ElementsMatch(t, h.srv.HostKeys, keys)

	// Keys of another sshd are refused.
	other := sshdtest.Start(t, sshdtest.WithKeyTypes("ed25519"))
	a, live, _ = h.provider(t, `, host-key: ["`+h.srv.HostKeys[0]+`", "`+other.HostKeys[0]+`"]`)
	keys, err = a.Check(ctx, live)
	require.ErrorIs(t, err, ErrHostKeyMismatch)
	require.Contains(t, err.Error(), "127.0.0.1")
	require.Nil(t, keys)
}

func TestCheckWithoutHostKeyChecking(t *testing.T) {
	h := startSSHHost(t)
	a, live, dead := h.provider(t, `, host-key-checking: false, host-key: [ssh-ed25519 AAAAconfigured]`)
	ctx := context.Background()
	for _, s := range []driver.Slot{live, dead} {
		keys, err := a.Check(ctx, s)
		require.NoError(t, err, "no scan, so even the dead host passes")
		require.Equal(t, []string{"ssh-ed25519 AAAAconfigured"}, keys, "the configured keys are taken as they are")
	}
	require.Zero(t, h.proxy.Contacts(), "the host is not contacted")

	// Without configured keys there are none to record.
	a, live, _ = h.provider(t, `, host-key-checking: false`)
	keys, err := a.Check(ctx, live)
	require.NoError(t, err)
	require.Empty(t, keys)
	require.Zero(t, h.proxy.Contacts())
}

func TestCheckOtherConnectionTypesOnlyTryThePort(t *testing.T) {
	h := startSSHHost(t)
	// host-key-checking off does not skip the check for them.
	a, live, dead := h.provider(t, `, connection-type: winrm, host-key-checking: false`)
	ctx := context.Background()
	keys, err := a.Check(ctx, live)
	require.NoError(t, err)
	require.Equal(t, []string{}, keys, "no keys are gathered over winrm")

	_, err = a.Check(ctx, dead)
	require.ErrorIs(t, err, ErrUnreachable)
}

func TestAlive(t *testing.T) {
	h := startSSHHost(t)
	a, live, dead := h.provider(t, "")
	ctx := context.Background()
	require.NoError(t, a.Alive(ctx, live))
	err := a.Alive(ctx, dead)
	require.ErrorIs(t, err, ErrUnreachable)
	require.Contains(t, err.Error(), "127.0.0.1")

	// With host-key-checking off a host is taken as live unchecked.
	a, _, dead = h.provider(t, `, host-key-checking: false`)
	require.NoError(t, a.Alive(ctx, dead))
}

func TestSimulatedHostsAreNotContacted(t *testing.T) {
	a := open(t, staticPool("      - {name: fake-host-1, labels: [a], timeout: 1}\n"))
	s := slotOf(t, a, "fake-host-1", 22, 0)
	ctx := context.Background()
	require.NoError(t, a.Alive(ctx, s))
	keys, err := a.Check(ctx, s)
	require.NoError(t, err)
	require.Equal(t, []string{"ssh-rsa FAKEKEY"}, keys)
}

func TestSlotsNotConfigured(t *testing.T) {
	a := open(t, staticPool("      - {name: fake-host-1, labels: [a]}\n"))
	s := slotOf(t, a, "fake-host-1", 22, 0)
	ctx := context.Background()
	for name, gone := range map[string]driver.Slot{
		"host":     withHost(s, "fake-host-2"),
		"username": withUser(s, "other"),
		"port":     withPort(s, 2022),
		"pool":     withPool(s, "elsewhere"),
	} {
		_, err := a.Check(ctx, gone)
		require.ErrorIs(t, err, ErrNotConfigured, "Check, other %s", name)
		require.Contains(t, err.Error(), gone.Host)
		require.ErrorIs(t, a.Alive(ctx, gone), ErrNotConfigured, "Alive, other %s", name)
	}
}

func withHost(s driver.Slot, v string) driver.Slot { s.Host = v; return s }
func withUser(s driver.Slot, v string) driver.Slot { s.Username = v; return s }
func withPort(s driver.Slot, v int) driver.Slot    { s.ConnectionPort = v; return s }
func withPool(s driver.Slot, v string) driver.Slot { s.Pool = v; return s }

func TestMachines(t *testing.T) {
	a := open(t, staticPool("      - {name: fake-host-1, labels: [a]}\n"))
	pool := a.cfg.Pools[0]
	m := a.CreateMachine(driver.CreateSpec{Hostname: "np0000000001", Label: pool.Labels[0], Pool: pool})
	for i := 0; i < 2; i++ {
		inst, err := m.Advance(context.Background())
		require.ErrorIs(t, err, ErrCannotLaunch)
		require.Nil(t, inst)
	}
	require.Empty(t, m.ExternalID())
	require.Equal(t, driver.KindUnknown, driver.KindOf(ErrCannotLaunch), "a failed attempt, neither quota nor transient")
	require.True(t, strings.Contains(ErrCannotLaunch.Error(), "static"))

	done, err := a.DeleteMachine("fake-host-1").Advance(context.Background())
	require.NoError(t, err)
	require.True(t, done, "removing a node completes at once")

	list, err := a.ListInstances(context.Background())
	require.NoError(t, err)
	require.Empty(t, list)
}
