package driver

import (
	"context"
	"strconv"
)

// Registrar is implemented by adapters whose nodes are hosts that already
// exist (the static driver). Instead of launching, the launcher keeps one
// ready node record per slot, re-registers a slot after its node was used
// and deleted, and never deletes the host itself.
type Registrar interface {
	// Slots returns every slot the provider offers: one per host and
	// parallel job.
	Slots(ctx context.Context) ([]Slot, error)
	// Check verifies a host before its slots are registered or updated and
	// returns the host keys to record (upstream's checkHost).
	Check(ctx context.Context, s Slot) (hostKeys []string, err error)
	// Alive is the cheap liveness check made before a ready node is handed
	// to a request.
	Alive(ctx context.Context, s Slot) error
}

// Slot is one registrable node of a pre-existing host.
type Slot struct {
	Pool           string         // the pool the host is listed in
	Host           string         // name: also external_id, hostname, interface_ip
	Index          int            // slot index, 0..max-parallel-jobs-1
	Labels         []string       // the labels the node offers
	Username       string         // login user of the host
	ConnectionType string         // "ssh", "winrm", ...
	ConnectionPort int            // port Zuul connects to
	ShellType      string         // shell-type recorded on the node
	PythonPath     string         // python-path recorded on the node
	PublicIPv4     string         // the host's resolved IPv4 address
	PublicIPv6     string         // the host's resolved IPv6 address
	Attributes     map[string]any // node-attributes recorded on the node
}

// HostKey identifies the host of a slot: (name, username, port).
func (s Slot) HostKey() string {
	return s.Host + "|" + s.Username + "|" + strconv.Itoa(s.ConnectionPort)
}
