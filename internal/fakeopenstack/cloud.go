// Package fakeopenstack is an in-process fake of the OpenStack APIs the
// Nodepool OpenStack driver uses: Keystone v3 tokens with a service
// catalog, Nova servers (BUILD → ACTIVE/ERROR), flavors, availability
// zones and limits, Glance v2 images, Neutron networks, ports and floating
// IPs, and Cinder limits and volumes. It speaks the real JSON with the real
// status codes and error bodies, so gophercloud (or any OpenStack client)
// runs its ordinary code path against it. Tests steer it through knobs:
// latency, build time, quota, injected create failures, servers stuck in
// BUILD, and resources added directly (leaks, foreign servers).
//
//	c := fakeopenstack.New(fakeopenstack.Options{})
//	srv := httptest.NewServer(c)
//	defer srv.Close()
//	c.SetURL(srv.URL)
//	_ = c.WriteCloudsYAML("clouds.yaml", "fake")
//
// Setup does all of that for a test.
package fakeopenstack

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Cloud is the fake cloud's state. It is an http.Handler.
type Cloud struct {
	opts Options
	mux  *http.ServeMux

	mu         sync.Mutex
	url        string
	now        func() time.Time
	limits     Limits
	latency    time.Duration
	buildTime  time.Duration
	deleteTime time.Duration
	tokens     map[string]bool
	servers    map[string]*Server
	order      []string // server ids in creation order
	flavors    []Flavor
	azs        []string
	networks   []*Network
	ports      map[string]*Port
	fips       map[string]*FloatingIP
	images     map[string]*Image
	volumes    map[string]*Volume
	secGroups  []string
	createFail []FailKind
	failRules  []*failRule
	counters   Counters
	seq        int
}

// New returns a fake cloud with a private network "private"
// (10.0.0.0/16), an external network "public" (172.24.0.0/16), a public
// active image "cirros", the security group "default" and the options'
// flavors, zones and limits. Call SetURL (or use Setup) before serving.
func New(o Options) *Cloud {
	if o.Region == "" {
		o.Region = "RegionOne"
	}
	if o.ProjectID == "" {
		o.ProjectID = "8f5e3a1c2b4d4e6f8a9b0c1d2e3f4a5b"
	}
	if o.ProjectName == "" {
		o.ProjectName = "demo"
	}
	if o.Username == "" {
		o.Username = "demo"
	}
	if o.Password == "" {
		o.Password = "secret"
	}
	if o.PageSize <= 0 {
		o.PageSize = 1000
	}
	c := &Cloud{
		opts:       o,
		now:        time.Now,
		limits:     DefaultLimits,
		latency:    o.Latency,
		buildTime:  o.BuildTime,
		deleteTime: o.DeleteTime,
		tokens:     map[string]bool{},
		servers:    map[string]*Server{},
		flavors:    slices.Clone(o.Flavors),
		azs:        slices.Clone(o.AZs),
		ports:      map[string]*Port{},
		fips:       map[string]*FloatingIP{},
		images:     map[string]*Image{},
		volumes:    map[string]*Volume{},
		secGroups:  []string{"default"},
	}
	if o.Limits != nil {
		c.limits = *o.Limits
	}
	if len(c.flavors) == 0 {
		c.flavors = slices.Clone(DefaultFlavors)
	}
	if len(c.azs) == 0 {
		c.azs = []string{"nova"}
	}
	c.networks = []*Network{
		{ID: newID(), Name: "private", SubnetID: newID(), Prefix: "10.0."},
		{ID: newID(), Name: "public", External: true, SubnetID: newID(), Prefix: "172.24."},
	}
	id := newID()
	c.images[id] = &Image{ID: id, Name: "cirros", Status: "active", Visibility: "public", DiskFormat: "qcow2",
		ContainerFormat: "bare", Properties: map[string]string{}, Size: 21430272, Created: time.Now().UTC()}
	c.routes()
	return c
}

func newID() string { return uuid.NewString() }

// SetURL tells the cloud the base URL it is served at (for the catalog).
func (c *Cloud) SetURL(u string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.url = strings.TrimSuffix(u, "/")
}

// URL returns the base URL set by SetURL.
func (c *Cloud) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.url
}

// AuthURL returns the Keystone v3 endpoint for clouds.yaml.
func (c *Cloud) AuthURL() string { return c.URL() + "/identity/v3" }

// Region returns the cloud's region name.
func (c *Cloud) Region() string { return c.opts.Region }

// ProjectID returns the project the fake's credentials are scoped to.
func (c *Cloud) ProjectID() string { return c.opts.ProjectID }

// SetLimits sets the project's quota.
func (c *Cloud) SetLimits(l Limits) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limits = l
}

// SetLatency delays every later API answer by d.
func (c *Cloud) SetLatency(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.latency = d
}

// SetBuildTime sets how long new servers stay in BUILD.
func (c *Cloud) SetBuildTime(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buildTime = d
}

// SetDeleteTime sets how long deleted servers stay listed.
func (c *Cloud) SetDeleteTime(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deleteTime = d
}

// FailNextCreates makes the next n server creates fail with kind.
func (c *Cloud) FailNextCreates(n int, kind FailKind) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < n; i++ {
		c.createFail = append(c.createFail, kind)
	}
}

// FailRequests answers the next n requests whose method matches (""
// matches any) and whose path contains the string with the HTTP status.
func (c *Cloud) FailRequests(method, pathContains string, n, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failRules = append(c.failRules, &failRule{method: method, contains: pathContains, n: n, status: status})
}

// ExpireTokens invalidates every issued token (clients must re-authenticate).
func (c *Cloud) ExpireTokens() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens = map[string]bool{}
}

// Counters returns the call counters.
func (c *Cloud) Counters() Counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counters
}

func (s *Server) clone() Server {
	ss := *s
	ss.Metadata = maps.Clone(s.Metadata)
	ss.SecurityGroups = slices.Clone(s.SecurityGroups)
	ss.Networks = slices.Clone(s.Networks)
	ss.Volumes = slices.Clone(s.Volumes)
	return ss
}

// advance moves servers through their life cycle; c.mu is held.
func (c *Cloud) advance() {
	now := c.now()
	for _, id := range slices.Clone(c.order) {
		s := c.servers[id]
		if !s.goneAt.IsZero() {
			if !now.Before(s.goneAt) {
				c.removeServer(s)
			}
			continue
		}
		if s.Status != "BUILD" || s.stuck || now.Before(s.readyAt) {
			continue
		}
		if s.fail {
			s.Status = "ERROR"
			s.Fault = "No valid host was found. There are not enough hosts available."
			continue
		}
		s.Status = "ACTIVE"
		for _, p := range c.ports {
			if p.DeviceID == s.ID {
				p.Status = "ACTIVE"
			}
		}
	}
}

// removeServer finishes a deletion: Nova-created ports go, floating IPs
// are disassociated, delete-on-termination volumes are deleted.
func (c *Cloud) removeServer(s *Server) {
	delete(c.servers, s.ID)
	c.order = slices.DeleteFunc(c.order, func(id string) bool { return id == s.ID })
	for id, p := range c.ports {
		if p.DeviceID != s.ID {
			continue
		}
		for _, f := range c.fips {
			if f.PortID == id {
				f.PortID, f.FixedIP, f.Status = "", "", "DOWN"
			}
		}
		delete(c.ports, id)
	}
	for id, v := range c.volumes {
		if v.AttachedTo == s.ID {
			if v.DeleteOnTermination {
				delete(c.volumes, id)
			} else {
				v.AttachedTo, v.Status = "", "available"
			}
		}
	}
}

func (c *Cloud) network(id string) *Network {
	for _, n := range c.networks {
		if n.ID == id || n.Name == id {
			return n
		}
	}
	return nil
}

func (c *Cloud) external() *Network {
	for _, n := range c.networks {
		if n.External {
			return n
		}
	}
	return c.networks[len(c.networks)-1]
}

func (c *Cloud) nextIP(n *Network) string {
	n.next++
	return fmt.Sprintf("%s%d.%d", n.Prefix, n.next/250, n.next%250+2)
}

func (c *Cloud) newPort(n *Network, device, owner string) *Port {
	c.seq++
	p := &Port{
		ID: newID(), NetworkID: n.ID, DeviceID: device, DeviceOwner: owner, Status: "DOWN",
		MAC: fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", (c.seq>>16)&0xff, (c.seq>>8)&0xff, c.seq&0xff),
		IP:  c.nextIP(n),
	}
	c.ports[p.ID] = p
	return p
}

func (c *Cloud) hostID(host string) string {
	h := sha256.Sum224([]byte(c.opts.ProjectID + host))
	return hex.EncodeToString(h[:])
}

func (c *Cloud) flavor(ref string) *Flavor {
	for i := range c.flavors {
		if c.flavors[i].ID == ref {
			return &c.flavors[i]
		}
	}
	return nil
}

// usage returns the instances, cores and ram the project's servers use.
func (c *Cloud) usage() (inst, cores, ram int) {
	for _, s := range c.servers {
		inst++
		if f := c.flavor(s.FlavorID); f != nil {
			cores += f.VCPUs
			ram += f.RAM
		}
	}
	return
}
