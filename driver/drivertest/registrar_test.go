package drivertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
)

// fakeHost is one host of the fake registrar.
type fakeHost struct {
	name string
	port int
	jobs int
	live bool
	keys []string
}

var (
	errDead    = errors.New("host does not answer")
	errUnknown = errors.New("host is not configured")
)

// fakeRegistrar is an in-memory driver.Registrar; fault names one way in
// which it breaks the contract.
type fakeRegistrar struct {
	cfg      *driver.ProviderConfig
	hosts    []fakeHost
	fault    string
	calls    atomic.Int64 // Slots calls
	contacts atomic.Int64 // Check, Alive (and faulty) host contacts
}

var (
	_ driver.Adapter   = (*fakeRegistrar)(nil)
	_ driver.Registrar = (*fakeRegistrar)(nil)
)

func newFake(fault string) *fakeRegistrar {
	pool := &driver.PoolConfig{Name: "main", Labels: []*driver.LabelConfig{{Name: "a"}}}
	return &fakeRegistrar{
		cfg:   &driver.ProviderConfig{Name: "fake", Driver: "fake", Pools: []*driver.PoolConfig{pool}},
		fault: fault,
		hosts: []fakeHost{
			{name: "up.example.org", port: 22, jobs: 2, live: true, keys: []string{"ssh-ed25519 AAAAup", "ssh-rsa AAAAup"}},
			{name: "down.example.org", port: 2022, jobs: 1},
		},
	}
}

func (f *fakeRegistrar) Slots(context.Context) ([]driver.Slot, error) {
	var out []driver.Slot
	for _, h := range f.hosts {
		jobs := h.jobs
		if f.fault == "missing-slot" && h.live {
			jobs--
		}
		for i := 0; i < jobs; i++ {
			s := driver.Slot{Pool: "main", Host: h.name, Index: i, Labels: []string{"a"}, Username: "zuul",
				ConnectionType: "ssh", ConnectionPort: h.port}
			switch f.fault {
			case "index-from-one":
				s.Index = i + 1
			case "unknown-label":
				s.Labels = []string{"b"}
			case "slots-disagree":
				s.ShellType = fmt.Sprint(i)
			}
			out = append(out, s)
		}
	}
	if f.calls.Add(1) > 1 && f.fault == "unstable" {
		slices.Reverse(out)
	}
	return out, nil
}

func (f *fakeRegistrar) host(s driver.Slot) (fakeHost, error) {
	for _, h := range f.hosts {
		if h.name == s.Host && h.port == s.ConnectionPort && s.Username == "zuul" {
			return h, nil
		}
	}
	if f.fault == "unknown-ok" {
		return fakeHost{name: s.Host, live: true}, nil
	}
	return fakeHost{}, fmt.Errorf("%s: %w", s.Host, errUnknown)
}

func (f *fakeRegistrar) Check(_ context.Context, s driver.Slot) ([]string, error) {
	h, err := f.host(s)
	if err != nil {
		return nil, err
	}
	f.contacts.Add(1)
	switch {
	case !h.live && f.fault == "anonymous-error":
		return nil, errDead
	case !h.live && f.fault == "untyped-error":
		return nil, fmt.Errorf("%s: no answer", h.name)
	case !h.live:
		return nil, fmt.Errorf("%s: %w", h.name, errDead)
	case f.fault == "wrong-keys":
		return []string{"ssh-ed25519 AAAAother"}, nil
	}
	return h.keys, nil
}

func (f *fakeRegistrar) Alive(_ context.Context, s driver.Slot) error {
	h, err := f.host(s)
	if err != nil {
		return err
	}
	f.contacts.Add(1)
	if !h.live && f.fault != "dead-alive" {
		return fmt.Errorf("%s: %w", h.name, errDead)
	}
	return nil
}

func (f *fakeRegistrar) CreateMachine(driver.CreateSpec) driver.CreateMachine {
	return fakeCreate{fault: f.fault}
}

func (f *fakeRegistrar) DeleteMachine(string) driver.DeleteMachine {
	if f.fault == "delete-touches" {
		f.contacts.Add(1)
	}
	return fakeDelete{fail: f.fault == "delete-fails"}
}

func (f *fakeRegistrar) ListInstances(context.Context) ([]driver.Instance, error) {
	if f.fault == "list-fails" {
		return nil, errors.New("listing failed")
	}
	return nil, nil
}

func (f *fakeRegistrar) Close() error { return nil }

var errRefused = errors.New("hosts are registered, not launched")

type fakeCreate struct{ fault string }

func (m fakeCreate) Advance(context.Context) (*driver.Instance, error) {
	switch m.fault {
	case "create-succeeds":
		return &driver.Instance{ExternalID: "i-1", InterfaceIP: "192.0.2.1"}, nil
	case "create-transient":
		return nil, driver.TransientError("try again")
	}
	return nil, errRefused
}

func (m fakeCreate) ExternalID() string {
	if m.fault == "create-succeeds" {
		return "i-1"
	}
	return ""
}

type fakeDelete struct{ fail bool }

func (m fakeDelete) Advance(context.Context) (bool, error) {
	if m.fail {
		return false, errors.New("cannot delete a host")
	}
	return true, nil
}

// fakeHarness is the harness of the fake registrar with the given fault.
func fakeHarness(fault string) RegistrarHarness {
	var current atomic.Pointer[fakeRegistrar]
	up := driver.Slot{Host: "up.example.org", Username: "zuul", ConnectionPort: 22}.HostKey()
	down := driver.Slot{Host: "down.example.org", Username: "zuul", ConnectionPort: 2022}.HostKey()
	return RegistrarHarness{
		Open: func(*testing.T) (driver.Adapter, *driver.ProviderConfig) {
			f := newFake(fault)
			current.Store(f)
			return f, f.cfg
		},
		Slots:       map[string]int{up: 2, down: 1},
		Live:        map[string][]string{up: {"ssh-rsa AAAAup", "ssh-ed25519 AAAAup"}},
		Dead:        []string{down},
		HostError:   func(err error) bool { return errors.Is(err, errDead) || errors.Is(err, errUnknown) },
		CreateError: func(err error) bool { return errors.Is(err, errRefused) },
		Contacts:    func() int { return int(current.Load().contacts.Load()) },
	}
}

func TestRunRegistrarPassesAConformingRegistrar(t *testing.T) {
	RunRegistrar(t, fakeHarness(""))
}

// faultEnv names the fault TestFaultyRegistrar runs the suite with.
const faultEnv = "DRIVERTEST_REGISTRAR_FAULT"

// TestFaultyRegistrar is run by TestRunRegistrarCatchesFaults in a child
// process, where the suite is expected to fail; without the variable it
// has nothing to do.
func TestFaultyRegistrar(t *testing.T) {
	fault := os.Getenv(faultEnv)
	if fault == "" {
		return
	}
	RunRegistrar(t, fakeHarness(fault))
}

func TestRunRegistrarCatchesFaults(t *testing.T) {
	for _, tc := range []struct{ fault, want string }{
		{"unstable", "Slots differs between two calls"},
		{"missing-slot", "slots per host (HostKey)"},
		{"index-from-one", "slot indexes must be 0..0"}, // the first host in order, down.example.org, has one slot
		{"unknown-label", `label "b" is not a label of pool main`},
		{"slots-disagree", "shell type differs between slots"},
		{"list-fails", "ListInstances"},
		{"create-succeeds", "made an instance"},
		{"create-transient", "the refusal is transient"},
		{"delete-fails", "deleting the node of host"},
		{"delete-touches", "DeleteMachine contacted a host"},
		{"wrong-keys", "host keys of up.example.org"},
		{"anonymous-error", "Check error does not name host down.example.org"},
		{"untyped-error", "HostError does not accept the Check error"},
		{"dead-alive", "Alive of host down.example.org"},
		{"unknown-ok", "Check of host drivertest-unconfigured-host.invalid"},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestFaultyRegistrar$", "-test.v")
			cmd.Env = append(os.Environ(), faultEnv+"="+tc.fault)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the suite passed a registrar with fault %s:\n%s", tc.fault, out)
			require.Contains(t, string(out), tc.want, "output of the suite")
		})
	}
}
