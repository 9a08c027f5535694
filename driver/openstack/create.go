package openstack

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/availabilityzones"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/attributestags"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/internal/cloudutil"
	"github.com/nodepool-go/nodepool/quota"
)

// Create machine states.
const (
	csStart     = "start"
	csSubmit    = "submit creating server"
	csCreating  = "creating server"
	csFIPSubmit = "creating floating ip"
	csFIPAttach = "attaching floating ip"
	csComplete  = "complete"
	csFailed    = "failed"
)

// CreateMachine returns a machine creating one server.
func (a *Adapter) CreateMachine(spec driver.CreateSpec) driver.CreateMachine {
	return &createMachine{a: a, spec: spec, state: csStart}
}

type createMachine struct {
	a    *Adapter
	spec driver.CreateSpec

	mu        sync.Mutex
	state     string
	id        string
	createdAt time.Time
	create    *future[string]
	fip       *future[*floatingips.FloatingIP]
	fipAt     time.Time
	fipAddr   string
	inst      *driver.Instance
	err       error
}

// ExternalID returns the server id once Nova returned it.
func (m *createMachine) ExternalID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

// State returns the machine's state name (for logs and tests).
func (m *createMachine) State() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

func (m *createMachine) fail(err error) (*driver.Instance, error) {
	m.state, m.err = csFailed, err
	return nil, err
}

// Advance does one small step; API calls run on the adapter's workers.
func (m *createMachine) Advance(ctx context.Context) (*driver.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.a
	for {
		switch m.state {
		case csStart:
			m.create = submit(ctx, a, m.createServer)
			m.state = csSubmit
		case csSubmit:
			if !m.create.ready() {
				return nil, nil
			}
			if err := m.create.err; err != nil {
				if driver.IsTransient(err) {
					// Nova refused before creating anything: call again.
					m.state = csStart
					return nil, err
				}
				return m.fail(err)
			}
			m.id, m.createdAt = m.create.val, time.Now()
			m.state = csCreating
		case csCreating:
			s, found, err := a.findServer(ctx, m.id, m.createdAt)
			if err != nil {
				return nil, err
			}
			if s == nil {
				if found {
					return m.fail(fmt.Errorf("openstack: server %s disappeared while building", m.id))
				}
				return nil, nil
			}
			switch s.Status {
			case "ACTIVE":
				need, err := a.needsFloatingIP(ctx, m.spec.Pool, s)
				if err != nil {
					return nil, err
				}
				if !need {
					m.inst = a.instance(ctx, s)
					m.state = csComplete
					return m.inst, nil
				}
				srv := *s
				m.fip = submit(ctx, a, func(ctx context.Context, cl *clients) (*floatingips.FloatingIP, error) {
					return a.createFloatingIP(ctx, cl, &srv, m.spec.Metadata)
				})
				m.state = csFIPSubmit
			case "ERROR":
				fault := s.Fault.Message
				a.log.Error("server creation failed; compute service reports a fault", "server", m.id, "fault", fault)
				return m.fail(driver.WithMetric(fmt.Errorf("openstack: server %s is in status ERROR: %s", m.id, fault), "error.status"))
			default:
				return nil, nil
			}
		case csFIPSubmit:
			if !m.fip.ready() {
				return nil, nil
			}
			if err := m.fip.err; err != nil {
				if driver.IsTransient(err) {
					m.state = csCreating // looks at the server again, then retries
					return nil, err
				}
				return m.fail(err)
			}
			m.fipAddr, m.fipAt = m.fip.val.FloatingIP, time.Now()
			m.state = csFIPAttach
		case csFIPAttach:
			s, found, err := a.findServer(ctx, m.id, m.fipAt)
			if err != nil {
				return nil, err
			}
			if s == nil {
				if found {
					return m.fail(fmt.Errorf("openstack: server %s disappeared while attaching its floating ip", m.id))
				}
				return nil, nil
			}
			if !hasAddress(s, m.fipAddr) {
				return nil, nil
			}
			m.inst = a.instance(ctx, s)
			m.state = csComplete
			return m.inst, nil
		case csComplete:
			return m.inst, nil
		default:
			return nil, m.err
		}
	}
}

// findServer looks a server up in a listing that started after t. found
// reports whether such a listing exists (then a nil server is gone).
func (a *Adapter) findServer(ctx context.Context, id string, t time.Time) (*servers.Server, bool, error) {
	list, _, ok, err := a.servers.Fresh(ctx, t)
	if err != nil || !ok {
		return nil, false, err
	}
	for i := range list {
		if list[i].ID == id {
			return &list[i], true, nil
		}
	}
	return nil, true, nil
}

// imageFor returns the image id and name a spec boots and its config
// drive setting.
func (a *Adapter) imageFor(ctx context.Context, spec driver.CreateSpec) (id, name string, configDrive *bool, err error) {
	l := spec.Label
	if l.Diskimage != "" || spec.ImageExternalID != "" {
		if d := a.cfg.Diskimage(l.Diskimage); d != nil {
			if ds, ok := d.Settings.(*DiskimageSettings); ok && ds != nil {
				configDrive = ds.ConfigDrive
			}
		}
		if spec.ImageExternalID == "" {
			return "", "", nil, fmt.Errorf("openstack: label %s: no uploaded image for diskimage %s", l.Name, l.Diskimage)
		}
		return spec.ImageExternalID, l.Diskimage, configDrive, nil
	}
	ci := a.st.CloudImage(l.CloudImage)
	if ci == nil {
		return "", "", nil, fmt.Errorf("openstack: label %s: unknown cloud image %q", l.Name, l.CloudImage)
	}
	id, err = a.cloudImageID(ctx, ci)
	if err != nil {
		return "", "", nil, err
	}
	if id == "" {
		return "", "", nil, fmt.Errorf("openstack: unable to find image %q for label %s", ci.LookupName(), l.Name)
	}
	return id, ci.Name, ci.ConfigDrive, nil
}

// serverMetadata builds the server metadata: groups, instance-properties,
// dynamic-instance-properties, then the nodepool ownership metadata.
func (a *Adapter) serverMetadata(spec driver.CreateSpec, imageName string) map[string]string {
	ls := labelSettings(spec.Label)
	md := map[string]string{"groups": strings.Join([]string{a.cfg.Name, imageName, spec.Label.Name}, ",")}
	maps.Copy(md, ls.InstanceProperties)
	keys := make([]string, 0, len(ls.DynamicInstanceProperties))
	for k := range ls.DynamicInstanceProperties {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := cloudutil.FormatRequest(ls.DynamicInstanceProperties[k], spec.Request)
		if err != nil {
			a.log.Warn("skipping dynamic instance property", "key", k, "error", err, "request", spec.Request.ID)
			continue
		}
		md[k] = v
	}
	maps.Copy(md, spec.Metadata)
	return md
}

// createOpts maps a create spec onto Nova's create request.
func (a *Adapter) createOpts(ctx context.Context, spec driver.CreateSpec) (servers.CreateOptsBuilder, error) {
	ls := labelSettings(spec.Label)
	ps := poolSettings(spec.Pool)
	flavor, err := a.labelFlavor(ctx, spec.Label)
	if err != nil {
		return nil, err
	}
	imageID, imageName, configDrive, err := a.imageFor(ctx, spec)
	if err != nil {
		return nil, err
	}
	netNames := ps.Networks
	if ls.Networks != nil {
		netNames = ls.Networks
	}
	netIDs, err := a.networkIDs(ctx, netNames)
	if err != nil {
		return nil, err
	}
	opts := servers.CreateOpts{
		Name:             spec.Hostname,
		ImageRef:         imageID,
		FlavorRef:        flavor.ID,
		AvailabilityZone: spec.AZ,
		SecurityGroups:   ps.SecurityGroups,
		Metadata:         a.serverMetadata(spec, imageName),
		ConfigDrive:      configDrive,
	}
	if ls.Userdata != "" {
		// Encode ourselves: gophercloud passes text that happens to be
		// valid base64 through undecoded.
		opts.UserData = []byte(base64.StdEncoding.EncodeToString([]byte(ls.Userdata)))
	}
	if len(netIDs) > 0 {
		nets := make([]servers.Network, len(netIDs))
		for i, id := range netIDs {
			nets[i] = servers.Network{UUID: id}
		}
		opts.Networks = nets
	}
	if ls.BootFromVolume {
		opts.ImageRef = ""
		opts.BlockDevice = []servers.BlockDevice{{
			SourceType: servers.SourceImage, UUID: imageID, DestinationType: servers.DestinationVolume,
			VolumeSize: ls.VolumeSize, BootIndex: 0, DeleteOnTermination: true,
		}}
	}
	var b servers.CreateOptsBuilder = opts
	if ls.KeyName != "" {
		b = keypairs.CreateOptsExt{CreateOptsBuilder: opts, KeyName: ls.KeyName}
	}
	return b, nil
}

// createServer submits the server create and returns the server id.
func (m *createMachine) createServer(ctx context.Context, cl *clients) (string, error) {
	a := m.a
	opts, err := a.createOpts(ctx, m.spec)
	if err != nil {
		return "", err
	}
	s, err := servers.Create(ctx, cl.compute, opts, nil).Extract()
	if err != nil {
		if is400(err) {
			a.clearCaches()
		}
		return "", classify(err, "openstack: creating server %s", m.spec.Hostname)
	}
	a.log.Debug("server created", "server", s.ID, "hostname", m.spec.Hostname)
	return s.ID, nil
}

// address is one of a server's addresses.
type address struct {
	Addr    string `json:"addr"`
	Version int    `json:"version"`
	Type    string `json:"OS-EXT-IPS:type"`
}

// addresses returns a server's addresses by network name.
func addresses(s *servers.Server) map[string][]address {
	out := map[string][]address{}
	for netName, v := range s.Addresses {
		list, _ := v.([]any)
		for _, e := range list {
			m, _ := e.(map[string]any)
			var ad address
			ad.Addr, _ = m["addr"].(string)
			if f, ok := m["version"].(float64); ok {
				ad.Version = int(f)
			}
			ad.Type, _ = m["OS-EXT-IPS:type"].(string)
			if ad.Version == 0 {
				if ip := net.ParseIP(ad.Addr); ip != nil && ip.To4() == nil {
					ad.Version = 6
				} else {
					ad.Version = 4
				}
			}
			out[netName] = append(out[netName], ad)
		}
	}
	return out
}

func hasAddress(s *servers.Server, addr string) bool {
	for _, list := range addresses(s) {
		for _, ad := range list {
			if ad.Addr == addr {
				return true
			}
		}
	}
	return false
}

// ips classifies a server's addresses as openstacksdk does: floating
// addresses and fixed addresses on external networks or outside private
// ranges are public.
type ips struct{ pub4, pub6, priv4, priv6 string }

func (a *Adapter) serverIPs(ctx context.Context, s *servers.Server) ips {
	ext := map[string]bool{}
	if nets, err := a.networks(ctx); err == nil {
		for _, n := range nets {
			ext[n.Name] = n.External
		}
	}
	var out ips
	names := make([]string, 0, len(s.Addresses))
	for n := range s.Addresses {
		names = append(names, n)
	}
	sort.Strings(names)
	all := addresses(s)
	for _, n := range names {
		for _, ad := range all[n] {
			ip := net.ParseIP(ad.Addr)
			public := ad.Type == "floating" || ext[n] || (ip != nil && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast())
			switch {
			case public && ad.Version == 4 && (out.pub4 == "" || ad.Type == "floating"):
				out.pub4 = ad.Addr
			case public && ad.Version == 6 && out.pub6 == "":
				out.pub6 = ad.Addr
			case !public && ad.Version == 4 && out.priv4 == "":
				out.priv4 = ad.Addr
			case !public && ad.Version == 6 && out.priv6 == "":
				out.priv6 = ad.Addr
			}
		}
	}
	return out
}

// needsFloatingIP reports whether an ACTIVE server must get a floating
// IP: the pool wants one, the server has no public IPv4 and the cloud has
// an external network.
func (a *Adapter) needsFloatingIP(ctx context.Context, pool *driver.PoolConfig, s *servers.Server) (bool, error) {
	if !poolSettings(pool).AutoFloatingIP {
		return false, nil
	}
	if a.serverIPs(ctx, s).pub4 != "" {
		return false, nil
	}
	ext, err := a.externalNetwork(ctx)
	if err != nil {
		return false, err
	}
	return ext != nil, nil
}

// fipTags renders metadata as Neutron tags "key=value".
func fipTags(md map[string]string) []string {
	keys := make([]string, 0, len(md))
	for k := range md {
		if strings.HasPrefix(k, "nodepool_") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+md[k])
	}
	return out
}

// tagMetadata parses "key=value" tags back into metadata.
func tagMetadata(tags []string) map[string]string {
	md := map[string]string{}
	for _, t := range tags {
		if k, v, ok := strings.Cut(t, "="); ok && strings.HasPrefix(k, "nodepool_") {
			md[k] = v
		}
	}
	return md
}

// createFloatingIP allocates a floating IP on the external network for the
// server's first port on an internal network and tags it with the node's
// ownership metadata, so a leaked one is recognised.
func (a *Adapter) createFloatingIP(ctx context.Context, cl *clients, s *servers.Server, md map[string]string) (*floatingips.FloatingIP, error) {
	ext, err := a.externalNetwork(ctx)
	if err != nil {
		return nil, err
	}
	if ext == nil {
		return nil, fmt.Errorf("openstack: no external network for a floating ip")
	}
	page, err := ports.List(cl.network, ports.ListOpts{DeviceID: s.ID}).AllPages(ctx)
	if err != nil {
		return nil, classify(err, "openstack: listing ports of server %s", s.ID)
	}
	plist, err := ports.ExtractPorts(page)
	if err != nil {
		return nil, err
	}
	portID := ""
	for _, p := range plist {
		if p.NetworkID != ext.ID {
			portID = p.ID
			break
		}
	}
	if portID == "" {
		return nil, fmt.Errorf("openstack: server %s has no port for a floating ip", s.ID)
	}
	fip, err := floatingips.Create(ctx, cl.network, floatingips.CreateOpts{FloatingNetworkID: ext.ID, PortID: portID}).Extract()
	if err != nil {
		return nil, classify(err, "openstack: creating floating ip for server %s", s.ID)
	}
	if tags := fipTags(md); len(tags) > 0 {
		if _, err := attributestags.ReplaceAll(ctx, cl.network, "floatingips", fip.ID, attributestags.ReplaceAllOpts{Tags: tags}).Extract(); err != nil {
			a.log.Warn("tagging floating ip failed", "fip", fip.ID, "server", s.ID, "error", err)
		}
	}
	return fip, nil
}

// instance converts a server into the driver's view.
func (a *Adapter) instance(ctx context.Context, s *servers.Server) *driver.Instance {
	ip := a.serverIPs(ctx, s)
	priv4 := ip.priv4
	if priv4 == "" {
		priv4 = ip.pub4 // upstream compatibility quirk
	}
	iface := ip.pub4
	for _, v := range []string{ip.pub6, ip.priv4, ip.priv6} {
		if iface == "" {
			iface = v
		}
	}
	md := maps.Clone(s.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	r := quota.New(0, 1, 0, 0, nil)
	if f := a.serverFlavor(ctx, s); f != nil {
		r.Set(quota.Cores, float64(f.cores))
		r.Set(quota.RAM, float64(f.ram))
	}
	return &driver.Instance{
		ExternalID:  s.ID,
		InterfaceIP: iface,
		PublicIPv4:  ip.pub4,
		PublicIPv6:  ip.pub6,
		PrivateIPv4: priv4,
		PrivateIPv6: ip.priv6,
		Cloud:       a.st.Cloud,
		Region:      a.epOpts.Region,
		AZ:          s.AvailabilityZone,
		HostID:      s.HostID,
		Metadata:    md,
		Resources:   &r,
	}
}

type flavorSize struct{ cores, ram int }

// serverFlavor returns the vCPUs and RAM of a server's flavor, embedded
// (microversion ≥ 2.47) or looked up by id.
func (a *Adapter) serverFlavor(ctx context.Context, s *servers.Server) *flavorSize {
	if v, ok := s.Flavor["vcpus"].(float64); ok {
		ram, _ := s.Flavor["ram"].(float64)
		return &flavorSize{cores: int(v), ram: int(ram)}
	}
	id, _ := s.Flavor["id"].(string)
	if f := a.flavorByID(ctx, id); f != nil {
		return &flavorSize{cores: f.VCPUs, ram: f.RAM}
	}
	return nil
}

func listAZs(ctx context.Context, cl *clients) ([]string, error) {
	page, err := availabilityzones.List(cl.compute).AllPages(ctx)
	if err != nil {
		return nil, classify(err, "openstack: listing availability zones")
	}
	list, err := availabilityzones.ExtractAvailabilityZones(page)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, z := range list {
		if z.ZoneState.Available {
			out = append(out, z.ZoneName)
		}
	}
	sort.Strings(out)
	return out, nil
}
