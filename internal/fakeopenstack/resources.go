package fakeopenstack

import (
	"fmt"
	"iter"
	"maps"
	"slices"
)

// Adding resources directly and inspecting the cloud's state.

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

// copies returns a copy of every value of vs, made by clone.
func copies[T any](vs iter.Seq[*T], clone func(*T) T) []T {
	out := []T{}
	for v := range vs {
		out = append(out, clone(v))
	}
	return out
}

func plain[T any](v *T) T { return *v }

func clonePort(p *Port) Port {
	pp := *p
	pp.Tags = slices.Clone(p.Tags)
	return pp
}

func cloneFloatingIP(f *FloatingIP) FloatingIP {
	ff := *f
	ff.Tags = slices.Clone(f.Tags)
	return ff
}

func cloneImage(im *Image) Image {
	ii := *im
	ii.Properties = maps.Clone(im.Properties)
	return ii
}

// Ports returns every port.
func (c *Cloud) Ports() []Port {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	return copies(maps.Values(c.ports), clonePort)
}

// FloatingIPs returns every floating IP.
func (c *Cloud) FloatingIPs() []FloatingIP {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	return copies(maps.Values(c.fips), cloneFloatingIP)
}

// Images returns every image.
func (c *Cloud) Images() []Image {
	c.mu.Lock()
	defer c.mu.Unlock()
	return copies(maps.Values(c.images), cloneImage)
}

// Image returns one image.
func (c *Cloud) Image(id string) (Image, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	im, ok := c.images[id]
	if !ok {
		return Image{}, false
	}
	return cloneImage(im), true
}

// Volumes returns every volume.
func (c *Cloud) Volumes() []Volume {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	return copies(maps.Values(c.volumes), plain[Volume])
}

// Networks returns every network.
func (c *Cloud) Networks() []Network {
	c.mu.Lock()
	defer c.mu.Unlock()
	return copies(slices.Values(c.networks), plain[Network])
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
