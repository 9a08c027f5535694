package static

import (
	"context"
	"errors"
	"testing"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/drivertest"
	"github.com/nodepool-go/nodepool/internal/sshdtest"
)

// TestConformance runs the registrar suite against a real sshd, reached
// through a proxy that counts connections, and a port nothing listens on.
func TestConformance(t *testing.T) {
	srv := sshdtest.Start(t)
	px := startProxy(t, srv.Addr)
	dead := deadPort(t, "127.0.0.2")
	src := `
name: st
driver: static
pools:
  - name: main
    nodes:
      - {name: 127.0.0.1, labels: [small, big], connection-port: ` + itoa(px.Port) + `, max-parallel-jobs: 3}
      - {name: 127.0.0.1, labels: [small], connection-port: ` + itoa(px.Port) + `, username: other,
         host-key-checking: false, host-key: [ssh-ed25519 AAAAconfigured]}
  - name: other
    nodes:
      - {name: 127.0.0.2, labels: [small], connection-port: ` + itoa(dead) + `, timeout: 1}
`
	hostKey := func(host, user string, port int) string {
		return driver.Slot{Host: host, Username: user, ConnectionPort: port}.HostKey()
	}
	scanned := hostKey("127.0.0.1", "zuul", px.Port)
	unchecked := hostKey("127.0.0.1", "other", px.Port)
	unreachable := hostKey("127.0.0.2", "zuul", dead)
	drivertest.RunRegistrar(t, drivertest.RegistrarHarness{
		Open: func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) {
			cfg := mustParse(t, src)
			ad, err := Driver{}.Open(context.Background(), cfg, driver.Env{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ad.Close() })
			return ad, cfg
		},
		Slots: map[string]int{scanned: 3, unchecked: 1, unreachable: 1},
		Live: map[string][]string{
			scanned:   srv.HostKeys,
			unchecked: {"ssh-ed25519 AAAAconfigured"},
		},
		Dead: []string{unreachable},
		HostError: func(err error) bool {
			return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrNotConfigured)
		},
		CreateError: func(err error) bool { return errors.Is(err, ErrCannotLaunch) },
		Contacts:    px.Contacts,
	})
}
