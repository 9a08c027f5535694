package fakeopenstack

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// filter keeps the objects matching Neutron's query filters.
func filter(q url.Values, objs []map[string]any) []any {
	out := []any{}
	skip := map[string]bool{"fields": true, "limit": true, "marker": true, "sort_key": true, "sort_dir": true, "page_reverse": true}
	sort.Slice(objs, func(i, j int) bool { return fmt.Sprint(objs[i]["id"]) < fmt.Sprint(objs[j]["id"]) })
next:
	for _, o := range objs {
		for k, vs := range q {
			if skip[k] || len(vs) == 0 {
				continue
			}
			tags, _ := o["tags"].([]string)
			switch k {
			case "tags":
				for _, t := range strings.Split(vs[0], ",") {
					if !slices.Contains(tags, t) {
						continue next
					}
				}
				continue
			case "tags-any":
				if !slices.ContainsFunc(strings.Split(vs[0], ","), func(t string) bool { return slices.Contains(tags, t) }) {
					continue next
				}
				continue
			}
			v, ok := o[k]
			if !ok {
				continue
			}
			s := fmt.Sprint(v)
			if v == nil {
				s = ""
			}
			if !slices.Contains(vs, s) {
				continue next
			}
		}
		out = append(out, o)
	}
	return out
}

func (c *Cloud) networkJSON(n *Network) map[string]any {
	return map[string]any{"id": n.ID, "name": n.Name, "status": "ACTIVE", "subnets": []string{n.SubnetID},
		"router:external": n.External, "shared": false, "admin_state_up": true, "mtu": 1450,
		"tenant_id": c.opts.ProjectID, "project_id": c.opts.ProjectID, "tags": []string{}, "description": "",
		"availability_zones": []string{"nova"}, "port_security_enabled": true}
}

func (c *Cloud) listNetworks(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var objs []map[string]any
	for _, n := range c.networks {
		objs = append(objs, c.networkJSON(n))
	}
	writeJSON(w, 200, map[string]any{"networks": filter(r.URL.Query(), objs)})
}

func (c *Cloud) getNetwork(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.networks {
		if n.ID == r.PathValue("id") {
			writeJSON(w, 200, map[string]any{"network": c.networkJSON(n)})
			return
		}
	}
	neutronError(w, 404, "NetworkNotFound", "Network %s could not be found.", r.PathValue("id"))
}

func (c *Cloud) portJSON(p *Port) map[string]any {
	sub := ""
	if n := c.network(p.NetworkID); n != nil {
		sub = n.SubnetID
	}
	return map[string]any{"id": p.ID, "name": p.Name, "network_id": p.NetworkID, "device_id": p.DeviceID,
		"device_owner": p.DeviceOwner, "status": p.Status, "mac_address": p.MAC, "admin_state_up": true,
		"fixed_ips": []any{map[string]any{"subnet_id": sub, "ip_address": p.IP}},
		"tenant_id": c.opts.ProjectID, "project_id": c.opts.ProjectID, "tags": nonNil(p.Tags),
		"description": "", "security_groups": []string{}, "binding:vnic_type": "normal"}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (c *Cloud) listPorts(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	var objs []map[string]any
	for _, p := range c.ports {
		objs = append(objs, c.portJSON(p))
	}
	writeJSON(w, 200, map[string]any{"ports": filter(r.URL.Query(), objs)})
}

func (c *Cloud) getPort(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	p, ok := c.ports[r.PathValue("id")]
	if !ok {
		neutronError(w, 404, "PortNotFound", "Port %s could not be found.", r.PathValue("id"))
		return
	}
	writeJSON(w, 200, map[string]any{"port": c.portJSON(p)})
}

func (c *Cloud) deletePort(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := r.PathValue("id")
	if _, ok := c.ports[id]; !ok {
		neutronError(w, 404, "PortNotFound", "Port %s could not be found.", id)
		return
	}
	for _, f := range c.fips {
		if f.PortID == id {
			f.PortID, f.FixedIP, f.Status = "", "", "DOWN"
		}
	}
	delete(c.ports, id)
	c.counters.PortDeletes++
	w.WriteHeader(http.StatusNoContent)
}

func (c *Cloud) fipJSON(f *FloatingIP) map[string]any {
	var port, fixed, router any
	if f.PortID != "" {
		port, fixed, router = f.PortID, f.FixedIP, "r-"+f.NetworkID[:8]
	}
	return map[string]any{"id": f.ID, "floating_network_id": f.NetworkID, "floating_ip_address": f.Address,
		"port_id": port, "fixed_ip_address": fixed, "router_id": router, "status": f.Status,
		"tenant_id": c.opts.ProjectID, "project_id": c.opts.ProjectID, "description": f.Description,
		"tags": nonNil(f.Tags), "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
		"revision_number": 0, "port_details": nil}
}

func (c *Cloud) listFIPs(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	var objs []map[string]any
	for _, f := range c.fips {
		objs = append(objs, c.fipJSON(f))
	}
	writeJSON(w, 200, map[string]any{"floatingips": filter(r.URL.Query(), objs)})
}

func (c *Cloud) getFIP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	f, ok := c.fips[r.PathValue("id")]
	if !ok {
		neutronError(w, 404, "FloatingIPNotFound", "Floating IP %s could not be found", r.PathValue("id"))
		return
	}
	writeJSON(w, 200, map[string]any{"floatingip": c.fipJSON(f)})
}

type fipBody struct {
	FloatingIP struct {
		FloatingNetworkID string  `json:"floating_network_id"`
		PortID            *string `json:"port_id"`
		Description       *string `json:"description"`
	} `json:"floatingip"`
}

// attach sets a floating IP's port; c.mu is held.
func (c *Cloud) attach(w http.ResponseWriter, f *FloatingIP, portID *string) bool {
	if portID == nil {
		return true
	}
	if *portID == "" {
		f.PortID, f.FixedIP, f.Status = "", "", "DOWN"
		return true
	}
	p, ok := c.ports[*portID]
	if !ok {
		neutronError(w, 404, "PortNotFound", "Port %s could not be found.", *portID)
		return false
	}
	if n := c.network(p.NetworkID); n == nil || n.External {
		neutronError(w, 400, "BadRequest", "Bad floatingip request: Port %s is on the external network.", p.ID)
		return false
	}
	f.PortID, f.FixedIP, f.Status = p.ID, p.IP, "ACTIVE"
	return true
}

func (c *Cloud) createFIP(w http.ResponseWriter, r *http.Request) {
	var body fipBody
	if err := decode(r, &body); err != nil {
		neutronError(w, 400, "BadRequest", "Bad floatingip request: %v", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.network(body.FloatingIP.FloatingNetworkID)
	if n == nil || n.Name == body.FloatingIP.FloatingNetworkID {
		neutronError(w, 404, "NetworkNotFound", "Network %s could not be found.", body.FloatingIP.FloatingNetworkID)
		return
	}
	if !n.External {
		neutronError(w, 400, "ExternalGatewayForFloatingIPNotFound", "External network %s is not reachable from subnet. Therefore, cannot associate Port with a Floating IP.", n.ID)
		return
	}
	if len(c.fips) >= 10 {
		neutronError(w, 409, "OverQuota", "Quota exceeded for resources: ['floatingip'].")
		return
	}
	f := &FloatingIP{ID: newID(), NetworkID: n.ID, Address: c.nextIP(n), Status: "DOWN"}
	if body.FloatingIP.Description != nil {
		f.Description = *body.FloatingIP.Description
	}
	if !c.attach(w, f, body.FloatingIP.PortID) {
		return
	}
	c.fips[f.ID] = f
	c.counters.FloatingIPs++
	writeJSON(w, http.StatusCreated, map[string]any{"floatingip": c.fipJSON(f)})
}

func (c *Cloud) updateFIP(w http.ResponseWriter, r *http.Request) {
	var body fipBody
	if err := decode(r, &body); err != nil {
		neutronError(w, 400, "BadRequest", "Bad floatingip request: %v", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.fips[r.PathValue("id")]
	if !ok {
		neutronError(w, 404, "FloatingIPNotFound", "Floating IP %s could not be found", r.PathValue("id"))
		return
	}
	if !c.attach(w, f, body.FloatingIP.PortID) {
		return
	}
	writeJSON(w, 200, map[string]any{"floatingip": c.fipJSON(f)})
}

func (c *Cloud) deleteFIP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := r.PathValue("id")
	if _, ok := c.fips[id]; !ok {
		neutronError(w, 404, "FloatingIPNotFound", "Floating IP %s could not be found", id)
		return
	}
	delete(c.fips, id)
	c.counters.FloatingIPDelete++
	w.WriteHeader(http.StatusNoContent)
}

func (c *Cloud) tagsOf(kind, id string) *[]string {
	switch kind {
	case "floatingips":
		if f, ok := c.fips[id]; ok {
			return &f.Tags
		}
	case "ports":
		if p, ok := c.ports[id]; ok {
			return &p.Tags
		}
	}
	return nil
}

func (c *Cloud) replaceTags(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Tags []string `json:"tags"`
	}
	if err := decode(r, &body); err != nil {
		neutronError(w, 400, "BadRequest", "Invalid input: %v", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tagsOf(r.PathValue("kind"), r.PathValue("id"))
	if t == nil {
		neutronError(w, 404, "NotFound", "Resource %s could not be found.", r.PathValue("id"))
		return
	}
	for _, tag := range body.Tags {
		if len(tag) > 255 || strings.Contains(tag, ",") {
			neutronError(w, 400, "InvalidInput", "Invalid input for operation: '%s' is not a valid tag.", tag)
			return
		}
	}
	*t = slices.Clone(body.Tags)
	writeJSON(w, 200, map[string]any{"tags": nonNil(*t)})
}

func (c *Cloud) getTags(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tagsOf(r.PathValue("kind"), r.PathValue("id"))
	if t == nil {
		neutronError(w, 404, "NotFound", "Resource %s could not be found.", r.PathValue("id"))
		return
	}
	writeJSON(w, 200, map[string]any{"tags": nonNil(*t)})
}
