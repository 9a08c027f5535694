// Package static is the static-node driver: hosts listed in the
// configuration are offered as nodes, one node record per parallel job,
// and are never created or deleted by nodepool.
package static

import (
	"strings"
	"time"

	"github.com/nodepool-go/nodepool/driver"
)

// Name is the driver's registered name.
const Name = "static"

// Driver parses static providers.
type Driver struct{}

func init() { driver.Register(Name, Driver{}) }

// PoolSettings are the static pool keys (PoolConfig.Settings).
type PoolSettings struct {
	Nodes []*Node // the pool's hosts
}

// Node is one entry of a pool's nodes list.
type Node struct {
	Name            string        // hostname or IP
	Labels          []string      // labels the host offers
	Username        string        // login user (default zuul)
	Timeout         time.Duration // timeout of the SSH key scan
	HostKeyChecking bool          // host-key-checking: scan and check host keys
	HostKeys        []string      // expected host keys (none: whatever the scan finds)
	ConnectionType  string        // "ssh" or "winrm"
	ConnectionPort  int           // port Zuul connects to
	ShellType       string        // shell-type recorded on nodes
	PythonPath      string        // python-path recorded on nodes
	MaxParallelJobs int           // slots: nodes registered for the host at once
}

// Identity is what makes a static host unique: (name, username, port).
type Identity struct {
	Name     string // host name or address
	Username string // login user
	Port     int    // connection port
}

// Identity returns the node's identity.
func (n *Node) Identity() Identity {
	return Identity{Name: n.Name, Username: n.Username, Port: n.ConnectionPort}
}

// ParseProvider parses a static provider.
func (Driver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	strict := s.Problems().Strict
	p := driver.ParseProviderCommon(s)
	p.Driver = Name
	p.PausesAtQuota = false
	p.ManageImages = false
	seen := map[Identity]bool{}
	for _, ps := range s.List("pools") {
		pool := driver.ParsePoolCommon(ps)
		poolLabels := map[string]bool{} // the pool's labels so far
		pst := &PoolSettings{}
		pool.Settings = pst
		for _, ns := range ps.List("nodes") {
			if !ns.Exists() {
				continue
			}
			n := &Node{
				Name:            ns.RequiredString("name"),
				Username:        ns.String("username", "zuul"),
				Timeout:         time.Duration(ns.Int("timeout", 5)) * time.Second,
				HostKeyChecking: ns.Bool("host-key-checking", true),
				ConnectionType:  ns.String("connection-type", "ssh"),
				ShellType:       ns.String("shell-type", ""),
				PythonPath:      ns.String("python-path", "auto"),
				MaxParallelJobs: ns.Int("max-parallel-jobs", 1),
			}
			if !ns.Has("labels") {
				ns.Errorf("labels", "required key not provided")
			}
			labels, wasString := ns.StringOrList("labels")
			if wasString {
				labels = strings.Fields(labels[0])
			}
			n.Labels = labels
			// An empty host-key string means no keys, as an absent one.
			if keys, wasString := ns.StringOrList("host-key"); !wasString || keys[0] != "" {
				n.HostKeys = keys
			}
			switch {
			case ns.Has("connection-port"):
				n.ConnectionPort = ns.Int("connection-port", 22)
				ns.Ignore("ssh-port")
			default:
				n.ConnectionPort = ns.Int("ssh-port", 22) // legacy alias
			}
			ns.Finish()
			if id := n.Identity(); seen[id] && !strict {
				ns.Errorf("name", "static node %s (username %s, port %d) is defined more than once", id.Name, id.Username, id.Port)
			} else {
				seen[id] = true
			}
			pst.Nodes = append(pst.Nodes, n)
			for _, name := range n.Labels {
				if !poolLabels[name] {
					poolLabels[name] = true
					pool.Labels = append(pool.Labels, &driver.LabelConfig{
						Name:            name,
						Username:        n.Username,
						PythonPath:      n.PythonPath,
						ShellType:       n.ShellType,
						ConnectionType:  n.ConnectionType,
						ConnectionPort:  n.ConnectionPort,
						HostKeyChecking: n.HostKeyChecking,
					})
				}
			}
		}
		ps.Finish()
		p.Pools = append(p.Pools, pool)
	}
	s.Finish()
	return p
}
