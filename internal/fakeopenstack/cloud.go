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

// Unlimited is the value of an unlimited quota.
const Unlimited = -1

// Limits is the project's quota as Nova and Cinder report it (-1 =
// unlimited).
type Limits struct {
	Instances int
	Cores     int
	RAM       int // MB
	Volumes   int
	VolumeGB  int
}

// DefaultLimits are DevStack's default quotas.
var DefaultLimits = Limits{Instances: 10, Cores: 20, RAM: 51200, Volumes: 10, VolumeGB: 1000}

// Flavor is a Nova flavor.
type Flavor struct {
	ID    string
	Name  string
	VCPUs int
	RAM   int // MB
	Disk  int // GB
}

// DefaultFlavors are DevStack's m1 flavors.
var DefaultFlavors = []Flavor{
	{ID: "1", Name: "m1.tiny", VCPUs: 1, RAM: 512, Disk: 1},
	{ID: "2", Name: "m1.small", VCPUs: 1, RAM: 2048, Disk: 20},
	{ID: "3", Name: "m1.medium", VCPUs: 2, RAM: 4096, Disk: 40},
	{ID: "4", Name: "m1.large", VCPUs: 4, RAM: 8192, Disk: 80},
}

// Options configure a new fake cloud; zero values take defaults.
type Options struct {
	Region      string // default "RegionOne"
	ProjectID   string // default a fixed id
	ProjectName string // default "demo"
	Username    string // default "demo"
	Password    string // default "secret"
	// BuildTime is how long a server stays in BUILD (default 0: ACTIVE
	// on the first read after creation).
	BuildTime time.Duration
	// DeleteTime is how long a deleted server stays listed (task_state
	// deleting) before it is gone.
	DeleteTime time.Duration
	// Latency delays every API answer.
	Latency time.Duration
	Limits  *Limits  // default DefaultLimits
	Flavors []Flavor // default DefaultFlavors
	// AZs are the compute availability zones (default ["nova"]).
	AZs []string
	// PageSize is the most servers one /servers/detail page holds
	// (default 1000, Nova's max_limit).
	PageSize int
	// NoVolumeService leaves Cinder out of the catalog.
	NoVolumeService bool
	// ImageFormat, when set, is written as image_format into the clouds.yaml
	// entries of CloudsYAML (the builder's upload format for the cloud).
	ImageFormat string
}

// FailKind is a kind of injected server-create failure.
type FailKind int

// Injected create failures.
const (
	// FailQuota answers the create with Nova's 403 "Quota exceeded".
	FailQuota FailKind = iota + 1
	// FailError lets the create succeed; the server then goes to ERROR
	// with a "No valid host" fault.
	FailError
	// FailStuck lets the create succeed; the server stays in BUILD.
	FailStuck
	// FailServerError answers the create with a 500.
	FailServerError
	// FailUnavailable answers the create with a 503 (a busy API).
	FailUnavailable
)

// Server is a Nova server.
type Server struct {
	ID             string
	Name           string
	Status         string // BUILD, ACTIVE, ERROR
	TaskState      string // "deleting" while being deleted
	FlavorID       string
	ImageID        string // "" when booted from volume
	KeyName        string
	AZ             string
	HostID         string
	UserData       string // decoded
	ConfigDrive    bool
	Metadata       map[string]string
	SecurityGroups []string
	Networks       []string // network ids, in NIC order
	Volumes        []string // attached volume ids
	Fault          string
	Created        time.Time

	readyAt time.Time
	stuck   bool
	fail    bool
	goneAt  time.Time // deletion completes (zero: not deleting)
}

// Network is a Neutron network with one IPv4 subnet.
type Network struct {
	ID       string
	Name     string
	External bool // router:external
	SubnetID string
	Prefix   string // first two octets plus dot, e.g. "10.0."
	next     int
}

// Port is a Neutron port.
type Port struct {
	ID          string
	Name        string
	NetworkID   string
	DeviceID    string
	DeviceOwner string
	Status      string // ACTIVE, DOWN, BUILD
	MAC         string
	IP          string
	Tags        []string
}

// FloatingIP is a Neutron floating IP.
type FloatingIP struct {
	ID          string
	NetworkID   string
	Address     string
	PortID      string // "" when unattached
	FixedIP     string
	Status      string // ACTIVE, DOWN
	Description string
	Tags        []string
}

// Image is a Glance image.
type Image struct {
	ID              string
	Name            string
	Status          string // queued, active
	Visibility      string // public, private, shared, community
	DiskFormat      string
	ContainerFormat string
	Properties      map[string]string
	Size            int64
	Checksum        string // md5 of the data
	SHA512          string
	Created         time.Time
}

// Volume is a Cinder volume.
type Volume struct {
	ID                  string
	Name                string
	Size                int // GB
	Status              string
	AttachedTo          string // server id
	DeleteOnTermination bool
}

// Counters count API calls by kind.
type Counters struct {
	Auths            int
	ServerCreates    int // POST /servers answered 202
	ServerDeletes    int
	ServerLists      int // GET /servers/detail pages
	ServerGets       int
	QuotaRejections  int // creates answered 403 for quota
	FloatingIPs      int // floating IPs created
	FloatingIPDelete int
	PortDeletes      int
	ImageUploads     int
	ImageDeletes     int
	Requests         int
}

type failRule struct {
	method, contains string
	n, status        int
}

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

// AddSecurityGroup makes a security group name known.
func (c *Cloud) AddSecurityGroup(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.secGroups = append(c.secGroups, name)
}

// AddNetwork adds a network; its Prefix (e.g. "192.168.") defaults to
// "10.<n>.". It returns the network id.
func (c *Cloud) AddNetwork(n Network) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.ID == "" {
		n.ID = newID()
	}
	if n.SubnetID == "" {
		n.SubnetID = newID()
	}
	if n.Prefix == "" {
		n.Prefix = fmt.Sprintf("10.%d.", len(c.networks)+10)
	}
	nn := n
	c.networks = append(c.networks, &nn)
	return n.ID
}

// AddFlavor adds a flavor.
func (c *Cloud) AddFlavor(f Flavor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.ID == "" {
		f.ID = newID()
	}
	c.flavors = append(c.flavors, f)
}

// AddServer adds an ACTIVE server directly (a leak or a foreign server);
// it gets a port on each of its networks (default the private network).
func (c *Cloud) AddServer(s Server) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.ID == "" {
		s.ID = newID()
	}
	if s.Status == "" {
		s.Status = "ACTIVE"
	}
	if s.FlavorID == "" {
		s.FlavorID = c.flavors[0].ID
	}
	if s.AZ == "" {
		s.AZ = c.azs[0]
	}
	if s.Created.IsZero() {
		s.Created = c.now().UTC()
	}
	if s.HostID == "" {
		s.HostID = c.hostID("compute-0")
	}
	s.Metadata = maps.Clone(s.Metadata)
	if s.Metadata == nil {
		s.Metadata = map[string]string{}
	}
	if len(s.Networks) == 0 {
		s.Networks = []string{c.networks[0].ID}
	}
	ss := s
	c.servers[s.ID] = &ss
	c.order = append(c.order, s.ID)
	for _, nid := range s.Networks {
		if n := c.network(nid); n != nil {
			p := c.newPort(n, s.ID, "compute:"+s.AZ)
			if s.Status == "ACTIVE" {
				p.Status = "ACTIVE"
			}
		}
	}
	return s.ID
}

// AddPort adds a port directly (e.g. a leaked DOWN port). NetworkID
// defaults to the private network, Status to DOWN; it returns the id.
func (c *Cloud) AddPort(p Port) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.NetworkID == "" {
		p.NetworkID = c.networks[0].ID
	}
	n := c.network(p.NetworkID)
	np := c.newPort(n, p.DeviceID, p.DeviceOwner)
	if p.ID != "" {
		delete(c.ports, np.ID)
		np.ID = p.ID
		c.ports[p.ID] = np
	}
	np.Name = p.Name
	np.Tags = slices.Clone(p.Tags)
	np.Status = p.Status
	if np.Status == "" {
		np.Status = "DOWN"
	}
	return np.ID
}

// AddFloatingIP allocates a floating IP from the external network
// directly (unattached unless PortID is set); it returns the id.
func (c *Cloud) AddFloatingIP(f FloatingIP) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ext := c.external()
	f.ID = newID()
	f.NetworkID = ext.ID
	f.Address = c.nextIP(ext)
	f.Tags = slices.Clone(f.Tags)
	f.Status = "DOWN"
	if p := c.ports[f.PortID]; p != nil {
		f.FixedIP = p.IP
		f.Status = "ACTIVE"
	}
	ff := f
	c.fips[f.ID] = &ff
	return f.ID
}

// AddImage adds an image directly (default active and private); it
// returns the id.
func (c *Cloud) AddImage(im Image) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if im.ID == "" {
		im.ID = newID()
	}
	if im.Status == "" {
		im.Status = "active"
	}
	if im.Visibility == "" {
		im.Visibility = "private"
	}
	if im.DiskFormat == "" {
		im.DiskFormat = "qcow2"
	}
	if im.ContainerFormat == "" {
		im.ContainerFormat = "bare"
	}
	im.Properties = maps.Clone(im.Properties)
	if im.Properties == nil {
		im.Properties = map[string]string{}
	}
	if im.Created.IsZero() {
		im.Created = c.now().UTC()
	}
	ii := im
	c.images[im.ID] = &ii
	return im.ID
}

// Servers returns every server, in creation order.
func (c *Cloud) Servers() []Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	out := make([]Server, 0, len(c.order))
	for _, id := range c.order {
		out = append(out, c.servers[id].clone())
	}
	return out
}

// Server returns one server.
func (c *Cloud) Server(id string) (Server, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	s, ok := c.servers[id]
	if !ok {
		return Server{}, false
	}
	return s.clone(), true
}

// Ports returns every port.
func (c *Cloud) Ports() []Port {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	out := make([]Port, 0, len(c.ports))
	for _, p := range c.ports {
		pp := *p
		pp.Tags = slices.Clone(p.Tags)
		out = append(out, pp)
	}
	return out
}

// FloatingIPs returns every floating IP.
func (c *Cloud) FloatingIPs() []FloatingIP {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	out := make([]FloatingIP, 0, len(c.fips))
	for _, f := range c.fips {
		ff := *f
		ff.Tags = slices.Clone(f.Tags)
		out = append(out, ff)
	}
	return out
}

// Images returns every image.
func (c *Cloud) Images() []Image {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Image, 0, len(c.images))
	for _, im := range c.images {
		ii := *im
		ii.Properties = maps.Clone(im.Properties)
		out = append(out, ii)
	}
	return out
}

// Image returns one image.
func (c *Cloud) Image(id string) (Image, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	im, ok := c.images[id]
	if !ok {
		return Image{}, false
	}
	ii := *im
	ii.Properties = maps.Clone(im.Properties)
	return ii, true
}

// Volumes returns every volume.
func (c *Cloud) Volumes() []Volume {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	out := make([]Volume, 0, len(c.volumes))
	for _, v := range c.volumes {
		out = append(out, *v)
	}
	return out
}

// Networks returns every network.
func (c *Cloud) Networks() []Network {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Network, 0, len(c.networks))
	for _, n := range c.networks {
		out = append(out, *n)
	}
	return out
}

// NetworkID returns the id of the named network ("" if unknown).
func (c *Cloud) NetworkID(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.networks {
		if n.Name == name {
			return n.ID
		}
	}
	return ""
}

// ImageID returns the id of the first image with the name ("" if none).
func (c *Cloud) ImageID(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, im := range c.images {
		if im.Name == name {
			return im.ID
		}
	}
	return ""
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
