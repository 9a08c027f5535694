package fakeopenstack

import (
	"encoding/base64"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

type createServerRequest struct {
	Server struct {
		Name             string            `json:"name"`
		ImageRef         string            `json:"imageRef"`
		FlavorRef        string            `json:"flavorRef"`
		KeyName          string            `json:"key_name"`
		AvailabilityZone string            `json:"availability_zone"`
		UserData         *string           `json:"user_data"`
		ConfigDrive      *bool             `json:"config_drive"`
		Metadata         map[string]string `json:"metadata"`
		SecurityGroups   []struct {
			Name string `json:"name"`
		} `json:"security_groups"`
		Networks any `json:"networks"`
		BDM      []struct {
			SourceType          string `json:"source_type"`
			DestinationType     string `json:"destination_type"`
			UUID                string `json:"uuid"`
			BootIndex           int    `json:"boot_index"`
			VolumeSize          int    `json:"volume_size"`
			DeleteOnTermination bool   `json:"delete_on_termination"`
		} `json:"block_device_mapping_v2"`
	} `json:"server"`
}

func (c *Cloud) createServer(w http.ResponseWriter, r *http.Request) {
	var req createServerRequest
	if err := decode(r, &req); err != nil {
		novaError(w, 400, "Invalid input for field/attribute server: %v", err)
		return
	}
	rs := req.Server
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	if rs.Name == "" {
		novaError(w, 400, "Invalid input for field/attribute name. Value: . '' is too short")
		return
	}
	f := c.flavor(rs.FlavorRef)
	if f == nil {
		novaError(w, 400, "Flavor %s could not be found.", rs.FlavorRef)
		return
	}
	imageID := rs.ImageRef
	var volSize int
	var volDOT bool
	for _, b := range rs.BDM {
		if b.BootIndex == 0 && b.SourceType == "image" {
			imageID = b.UUID
			if b.DestinationType == "volume" {
				volSize = b.VolumeSize
				volDOT = b.DeleteOnTermination
				if volSize == 0 {
					volSize = f.Disk
				}
			}
		}
	}
	if im, ok := c.images[imageID]; !ok || im.Status != "active" {
		if imageID == "" {
			novaError(w, 400, "Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.")
		} else {
			novaError(w, 400, "Image %s could not be found.", imageID)
		}
		return
	}
	az := rs.AvailabilityZone
	if az != "" && !slices.Contains(c.azs, az) {
		novaError(w, 400, "The requested availability zone is not available")
		return
	}
	if az == "" {
		az = c.azs[len(c.order)%len(c.azs)]
	}
	var sgs []string
	for _, sg := range rs.SecurityGroups {
		if !slices.Contains(c.secGroups, sg.Name) {
			novaError(w, 400, "Security group %s not found for project %s.", sg.Name, c.opts.ProjectID)
			return
		}
		sgs = append(sgs, sg.Name)
	}
	if len(sgs) == 0 {
		sgs = []string{"default"}
	}
	var nets []string
	switch v := rs.Networks.(type) {
	case []any:
		for _, e := range v {
			m, _ := e.(map[string]any)
			id, _ := m["uuid"].(string)
			if id == "" {
				id, _ = m["port"].(string)
			}
			n := c.network(id)
			if n == nil || n.Name == id {
				novaError(w, 400, "Network %s could not be found.", id)
				return
			}
			nets = append(nets, n.ID)
		}
	case string:
		if v == "auto" {
			nets = c.autoNetwork()
		}
	case nil:
		var cands []string
		for _, n := range c.networks {
			if !n.External {
				cands = append(cands, n.ID)
			}
		}
		if len(cands) > 1 {
			novaError(w, 409, "Multiple possible networks found, use a Network ID to be more specific.")
			return
		}
		nets = cands
	}
	var kind FailKind
	if len(c.createFail) > 0 {
		kind, c.createFail = c.createFail[0], c.createFail[1:]
	}
	if kind == FailUnavailable {
		novaError(w, 503, "Service Unavailable")
		return
	}
	if kind == FailServerError {
		novaError(w, 500, "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.")
		return
	}
	inst, cores, ram := c.usage()
	over := ""
	switch {
	case kind == FailQuota:
		over = "Quota exceeded for instances: Requested 1, but already used " + strconv.Itoa(inst) + " of " + strconv.Itoa(inst) + " instances"
	case c.limits.Instances >= 0 && inst+1 > c.limits.Instances:
		over = "Quota exceeded for instances: Requested 1, but already used " + strconv.Itoa(inst) + " of " + strconv.Itoa(c.limits.Instances) + " instances"
	case c.limits.Cores >= 0 && cores+f.VCPUs > c.limits.Cores:
		over = "Quota exceeded for cores: Requested " + strconv.Itoa(f.VCPUs) + ", but already used " + strconv.Itoa(cores) + " of " + strconv.Itoa(c.limits.Cores) + " cores"
	case c.limits.RAM >= 0 && ram+f.RAM > c.limits.RAM:
		over = "Quota exceeded for ram: Requested " + strconv.Itoa(f.RAM) + ", but already used " + strconv.Itoa(ram) + " of " + strconv.Itoa(c.limits.RAM) + " ram"
	}
	if over != "" {
		c.counters.QuotaRejections++
		novaError(w, 403, "%s", over)
		return
	}
	now := c.now()
	s := &Server{
		ID: newID(), Name: rs.Name, Status: "BUILD", FlavorID: f.ID, ImageID: imageID, KeyName: rs.KeyName,
		AZ: az, HostID: c.hostID("compute-" + strconv.Itoa(len(c.order)%3)), Metadata: maps.Clone(rs.Metadata),
		SecurityGroups: sgs, Networks: nets, Created: now.UTC(),
		readyAt: now.Add(c.buildTime), stuck: kind == FailStuck, fail: kind == FailError,
	}
	if s.Metadata == nil {
		s.Metadata = map[string]string{}
	}
	if rs.ConfigDrive != nil {
		s.ConfigDrive = *rs.ConfigDrive
	}
	if rs.UserData != nil {
		b, err := base64.StdEncoding.DecodeString(*rs.UserData)
		if err != nil {
			novaError(w, 400, "User data needs to be valid base 64.")
			return
		}
		s.UserData = string(b)
	}
	if volSize > 0 {
		s.ImageID = ""
		v := &Volume{ID: newID(), Size: volSize, Status: "in-use", AttachedTo: s.ID, DeleteOnTermination: volDOT}
		c.volumes[v.ID] = v
		s.Volumes = []string{v.ID}
	}
	for _, nid := range nets {
		c.newPort(c.network(nid), s.ID, "compute:"+az)
	}
	c.servers[s.ID] = s
	c.order = append(c.order, s.ID)
	c.counters.ServerCreates++
	var sgl []any
	for _, sg := range sgs {
		sgl = append(sgl, map[string]any{"name": sg})
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"server": map[string]any{
		"id": s.ID, "links": c.serverLinks(s.ID), "OS-DCF:diskConfig": "MANUAL",
		"security_groups": sgl, "adminPass": "fakeAdminPass1",
	}})
}

func (c *Cloud) autoNetwork() []string {
	for _, n := range c.networks {
		if !n.External {
			return []string{n.ID}
		}
	}
	return nil
}

func (c *Cloud) serverLinks(id string) []any {
	return []any{
		map[string]any{"rel": "self", "href": c.url + "/compute/v2.1/servers/" + id},
		map[string]any{"rel": "bookmark", "href": c.url + "/compute/servers/" + id},
	}
}

// serverJSON renders a server as GET /servers/{id} does; c.mu is held.
func (c *Cloud) serverJSON(s *Server) map[string]any {
	addrs := map[string]any{}
	for _, p := range c.ports {
		if p.DeviceID != s.ID {
			continue
		}
		n := c.network(p.NetworkID)
		if n == nil {
			continue
		}
		list, _ := addrs[n.Name].([]any)
		list = append(list, map[string]any{"version": 4, "addr": p.IP, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": p.MAC})
		for _, f := range c.fips {
			if f.PortID == p.ID {
				list = append(list, map[string]any{"version": 4, "addr": f.Address, "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": p.MAC})
			}
		}
		addrs[n.Name] = list
	}
	var image any = ""
	if s.ImageID != "" {
		image = map[string]any{"id": s.ImageID, "links": []any{map[string]any{"rel": "bookmark", "href": c.url + "/compute/images/" + s.ImageID}}}
	}
	vols := []any{}
	for _, v := range s.Volumes {
		vols = append(vols, map[string]any{"id": v, "delete_on_termination": c.volumes[v] != nil && c.volumes[v].DeleteOnTermination})
	}
	var sgl []any
	for _, sg := range s.SecurityGroups {
		sgl = append(sgl, map[string]any{"name": sg})
	}
	vm, power := "building", 0
	switch s.Status {
	case "ACTIVE":
		vm, power = "active", 1
	case "ERROR":
		vm = "error"
	}
	var task any
	if s.TaskState != "" {
		task = s.TaskState
	} else if s.Status == "BUILD" {
		task = "spawning"
	}
	cd := ""
	if s.ConfigDrive {
		cd = "True"
	}
	out := map[string]any{
		"id": s.ID, "name": s.Name, "status": s.Status, "tenant_id": c.opts.ProjectID, "user_id": "u-" + c.opts.Username,
		"metadata": s.Metadata, "hostId": s.HostID, "image": image,
		"flavor":  map[string]any{"id": s.FlavorID, "links": []any{map[string]any{"rel": "bookmark", "href": c.url + "/compute/flavors/" + s.FlavorID}}},
		"created": ts(s.Created), "updated": ts(s.Created), "addresses": addrs, "accessIPv4": "", "accessIPv6": "",
		"links": c.serverLinks(s.ID), "key_name": nilIfEmpty(s.KeyName), "config_drive": cd, "progress": 0,
		"OS-EXT-AZ:availability_zone": s.AZ, "OS-EXT-STS:vm_state": vm, "OS-EXT-STS:task_state": task,
		"OS-EXT-STS:power_state": power, "OS-DCF:diskConfig": "MANUAL", "OS-SRV-USG:launched_at": nil,
		"OS-SRV-USG:terminated_at": nil, "os-extended-volumes:volumes_attached": vols, "security_groups": sgl,
	}
	if s.Status == "ERROR" {
		out["fault"] = map[string]any{"code": 500, "created": ts(s.Created), "message": s.Fault}
	}
	return out
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (c *Cloud) listServers(detail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.advance()
		if detail {
			c.counters.ServerLists++
		}
		q := r.URL.Query()
		limit := c.opts.PageSize
		if l, err := strconv.Atoi(q.Get("limit")); err == nil && l > 0 && l < limit {
			limit = l
		}
		ids := c.order
		if m := q.Get("marker"); m != "" {
			i := slices.Index(ids, m)
			if i < 0 {
				novaError(w, 400, "marker [%s] not found", m)
				return
			}
			ids = ids[i+1:]
		}
		var list []any
		var last string
		for _, id := range ids {
			s := c.servers[id]
			if name := q.Get("name"); name != "" && !strings.Contains(s.Name, name) {
				continue
			}
			if st := q.Get("status"); st != "" && s.Status != st {
				continue
			}
			if len(list) == limit {
				break
			}
			if detail {
				list = append(list, c.serverJSON(s))
			} else {
				list = append(list, map[string]any{"id": s.ID, "name": s.Name, "links": c.serverLinks(s.ID)})
			}
			last = id
		}
		if list == nil {
			list = []any{}
		}
		out := map[string]any{"servers": list}
		if len(list) == limit && last != c.order[len(c.order)-1] {
			path := "/compute/v2.1/servers"
			if detail {
				path += "/detail"
			}
			out["servers_links"] = []any{map[string]any{"rel": "next", "href": c.url + path + "?limit=" + strconv.Itoa(limit) + "&marker=" + last}}
		}
		writeJSON(w, 200, out)
	}
}

func (c *Cloud) lookupServer(w http.ResponseWriter, id string) *Server {
	c.advance()
	s, ok := c.servers[id]
	if !ok {
		novaError(w, 404, "Instance %s could not be found.", id)
		return nil
	}
	return s
}

func (c *Cloud) getServer(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counters.ServerGets++
	if s := c.lookupServer(w, r.PathValue("id")); s != nil {
		writeJSON(w, 200, map[string]any{"server": c.serverJSON(s)})
	}
}

func (c *Cloud) deleteServer(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.lookupServer(w, r.PathValue("id"))
	if s == nil {
		return
	}
	c.counters.ServerDeletes++
	if s.goneAt.IsZero() {
		s.TaskState = "deleting"
		s.goneAt = c.now().Add(c.deleteTime)
		if c.deleteTime == 0 {
			c.removeServer(s)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (c *Cloud) serverMetadata(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.lookupServer(w, r.PathValue("id"))
	if s == nil {
		return
	}
	if r.Method != http.MethodGet {
		var body struct {
			Metadata map[string]string `json:"metadata"`
		}
		if err := decode(r, &body); err != nil {
			novaError(w, 400, "Malformed request body")
			return
		}
		if r.Method == http.MethodPut {
			s.Metadata = map[string]string{}
		}
		maps.Copy(s.Metadata, body.Metadata)
	}
	writeJSON(w, 200, map[string]any{"metadata": s.Metadata})
}

func (c *Cloud) serverMetadatum(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.lookupServer(w, r.PathValue("id"))
	if s == nil {
		return
	}
	key := r.PathValue("key")
	switch r.Method {
	case http.MethodPut:
		var body struct {
			Meta map[string]string `json:"meta"`
		}
		if err := decode(r, &body); err != nil || len(body.Meta) != 1 {
			novaError(w, 400, "Request body and URI mismatch")
			return
		}
		maps.Copy(s.Metadata, body.Meta)
		writeJSON(w, 200, map[string]any{"meta": body.Meta})
	case http.MethodDelete:
		if _, ok := s.Metadata[key]; !ok {
			novaError(w, 404, "Metadata item was not found")
			return
		}
		delete(s.Metadata, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		v, ok := s.Metadata[key]
		if !ok {
			novaError(w, 404, "Metadata item was not found")
			return
		}
		writeJSON(w, 200, map[string]any{"meta": map[string]string{key: v}})
	}
}

func (c *Cloud) flavorJSON(f *Flavor, detail bool) map[string]any {
	m := map[string]any{"id": f.ID, "name": f.Name, "links": []any{map[string]any{"rel": "self", "href": c.url + "/compute/v2.1/flavors/" + f.ID}}}
	if detail {
		m["vcpus"] = f.VCPUs
		m["ram"] = f.RAM
		m["disk"] = f.Disk
		m["swap"] = ""
		m["OS-FLV-EXT-DATA:ephemeral"] = 0
		m["OS-FLV-DISABLED:disabled"] = false
		m["os-flavor-access:is_public"] = true
		m["rxtx_factor"] = 1.0
	}
	return m
}

func (c *Cloud) listFlavors(detail bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		list := []any{}
		for i := range c.flavors {
			list = append(list, c.flavorJSON(&c.flavors[i], detail))
		}
		writeJSON(w, 200, map[string]any{"flavors": list})
	}
}

func (c *Cloud) getFlavor(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.flavor(r.PathValue("id"))
	if f == nil {
		novaError(w, 404, "Flavor %s could not be found.", r.PathValue("id"))
		return
	}
	writeJSON(w, 200, map[string]any{"flavor": c.flavorJSON(f, true)})
}

func (c *Cloud) listAZs(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := []any{}
	for _, az := range c.azs {
		list = append(list, map[string]any{"zoneName": az, "zoneState": map[string]any{"available": true}, "hosts": nil})
	}
	writeJSON(w, 200, map[string]any{"availabilityZoneInfo": list})
}

func (c *Cloud) novaLimits(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	inst, cores, ram := c.usage()
	fipsUsed := len(c.fips)
	writeJSON(w, 200, map[string]any{"limits": map[string]any{"rate": []any{}, "absolute": map[string]any{
		"maxServerMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240, "maxImageMeta": 128,
		"maxTotalKeypairs": 100, "maxSecurityGroups": 10, "maxSecurityGroupRules": 20,
		"maxServerGroups": 10, "maxServerGroupMembers": 10, "maxTotalFloatingIps": 10,
		"maxTotalInstances": c.limits.Instances, "maxTotalCores": c.limits.Cores, "maxTotalRAMSize": c.limits.RAM,
		"totalInstancesUsed": inst, "totalCoresUsed": cores, "totalRAMUsed": ram,
		"totalSecurityGroupsUsed": 1, "totalFloatingIpsUsed": fipsUsed, "totalServerGroupsUsed": 0,
	}}})
}

// --- Cinder ---------------------------------------------------------------

func (c *Cloud) cinderLimits(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	gb := 0
	for _, v := range c.volumes {
		gb += v.Size
	}
	writeJSON(w, 200, map[string]any{"limits": map[string]any{"rate": []any{}, "absolute": map[string]any{
		"maxTotalVolumes": c.limits.Volumes, "maxTotalVolumeGigabytes": c.limits.VolumeGB,
		"maxTotalSnapshots": 10, "maxTotalBackups": 10, "maxTotalBackupGigabytes": 1000,
		"totalVolumesUsed": len(c.volumes), "totalGigabytesUsed": gb, "totalSnapshotsUsed": 0,
		"totalBackupsUsed": 0, "totalBackupGigabytesUsed": 0,
	}}})
}

func (c *Cloud) volumeJSON(v *Volume) map[string]any {
	att := []any{}
	if v.AttachedTo != "" {
		att = append(att, map[string]any{"server_id": v.AttachedTo, "attachment_id": v.ID + "-a", "volume_id": v.ID, "id": v.ID, "device": "/dev/vda"})
	}
	return map[string]any{"id": v.ID, "name": v.Name, "size": v.Size, "status": v.Status, "attachments": att,
		"availability_zone": "nova", "bootable": "true", "created_at": time.Now().UTC().Format("2006-01-02T15:04:05.000000"), "volume_type": "lvmdriver-1",
		"metadata": map[string]string{}, "os-vol-tenant-attr:tenant_id": c.opts.ProjectID}
}

func (c *Cloud) listVolumes(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	list := []any{}
	for _, v := range c.volumes {
		list = append(list, c.volumeJSON(v))
	}
	writeJSON(w, 200, map[string]any{"volumes": list})
}

func (c *Cloud) getVolume(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance()
	v, ok := c.volumes[r.PathValue("id")]
	if !ok {
		novaError(w, 404, "Volume %s could not be found.", r.PathValue("id"))
		return
	}
	writeJSON(w, 200, map[string]any{"volume": c.volumeJSON(v)})
}
