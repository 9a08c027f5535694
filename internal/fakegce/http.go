package fakegce

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"time"

	compute "google.golang.org/api/compute/v1"
)

func (c *Cloud) mux() http.Handler {
	c.muxOnce.Do(func() {
		m := http.NewServeMux()
		p := "/compute/v1/projects/{project}"
		z := p + "/zones/{zone}"
		m.HandleFunc("GET "+z+"/instances", c.listInstances)
		m.HandleFunc("POST "+z+"/instances", c.insertInstance)
		m.HandleFunc("GET "+z+"/instances/{name}", c.getInstance)
		m.HandleFunc("DELETE "+z+"/instances/{name}", c.deleteInstance)
		m.HandleFunc("GET "+z+"/operations", c.listOperations)
		m.HandleFunc("GET "+z+"/operations/{name}", c.getOperation)
		m.HandleFunc("GET "+z+"/machineTypes/{name}", c.getMachineType)
		m.HandleFunc("GET "+p+"/regions/{region}", c.getRegion)
		m.HandleFunc("GET "+p+"/global/images/family/{family}", c.getFromFamily)
		m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			apiError(w, http.StatusNotFound, "notFound", "The requested URL "+r.URL.Path+" was not found.")
		})
		c.handler = m
	})
	return c.handler
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError writes Google's JSON error body.
func apiError(w http.ResponseWriter, status int, reason, msg string) {
	domain := map[string]string{"rateLimitExceeded": "usageLimits", "quotaExceeded": "usageLimits"}[reason]
	if domain == "" {
		domain = "global"
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": status, "message": msg,
		"errors": []map[string]string{{"message": msg, "domain": domain, "reason": reason}},
	}})
}

// writeFault answers a request with an injected HTTP fault; false for
// faults that are not HTTP answers.
func writeFault(w http.ResponseWriter, f Fault) bool {
	switch f {
	case FaultQuota:
		apiError(w, http.StatusForbidden, "quotaExceeded", "Quota 'CPUS' exceeded.  Limit: 24.0 in region us-central1.")
	case FaultRateLimit:
		apiError(w, http.StatusForbidden, "rateLimitExceeded", "Rate Limit Exceeded")
	case FaultTooManyRequests:
		apiError(w, http.StatusTooManyRequests, "rateLimitExceeded", "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'compute.googleapis.com'.")
	case FaultServer:
		apiError(w, http.StatusServiceUnavailable, "backendError", "Backend Error")
	default:
		return false
	}
	return true
}

// checkScope answers 404 for another project or zone.
func (c *Cloud) checkScope(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("project") != c.opts.Project || (r.PathValue("zone") != "" && r.PathValue("zone") != c.opts.Zone) {
		apiError(w, http.StatusNotFound, "notFound", fmt.Sprintf("The resource 'projects/%s/zones/%s' was not found", r.PathValue("project"), r.PathValue("zone")))
		return false
	}
	return true
}

// page returns one page of n items: the range [from, to) and the next
// page token ("" on the last page).
func (c *Cloud) page(w http.ResponseWriter, r *http.Request, n int) (from, to int, next string, ok bool) {
	size := c.opts.PageSize
	if s := r.URL.Query().Get("maxResults"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > 500 {
			apiError(w, http.StatusBadRequest, "invalid", "Invalid value for field 'maxResults': '"+s+"'. Must be less than or equal to 500")
			return 0, 0, "", false
		}
		if v > 0 && v < size {
			size = v
		}
	}
	if t := r.URL.Query().Get("pageToken"); t != "" {
		v, err := strconv.Atoi(t)
		if err != nil || v < 0 {
			apiError(w, http.StatusBadRequest, "invalid", "Invalid value for field 'pageToken': '"+t+"'.")
			return 0, 0, "", false
		}
		from = v
	}
	from = min(from, n)
	to = min(from+size, n)
	if to < n {
		next = strconv.Itoa(to)
	}
	return from, to, next, true
}

var filterRE = regexp.MustCompile(`^\s*(\w+)\s*(=|!=|eq|ne)\s*"?([^"\s]*)"?\s*$`)

// filter parses the one-comparison filters the fake understands.
func filter(w http.ResponseWriter, r *http.Request) (func(field func(string) string) bool, bool) {
	f := r.URL.Query().Get("filter")
	if f == "" {
		return func(func(string) string) bool { return true }, true
	}
	m := filterRE.FindStringSubmatch(f)
	if m == nil {
		apiError(w, http.StatusBadRequest, "invalid", "Invalid value for field 'filter': '"+f+"'. Invalid list filter expression.")
		return nil, false
	}
	neg := m[2] == "!=" || m[2] == "ne"
	return func(field func(string) string) bool { return (field(m[1]) == m[3]) != neg }, true
}

func (c *Cloud) renderInstanceLocked(in *instance) *compute.Instance {
	items := make([]*compute.MetadataItems, 0, len(in.metadata))
	keys := make([]string, 0, len(in.metadata))
	for k := range in.metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := in.metadata[k]
		items = append(items, &compute.MetadataItems{Key: k, Value: &v})
	}
	nic := &compute.NetworkInterface{Name: "nic0", Network: api + "projects/" + c.opts.Project + "/global/networks/default", NetworkIP: in.ip}
	if in.natIP != "" {
		nic.AccessConfigs = []*compute.AccessConfig{{Kind: "compute#accessConfig", Type: "ONE_TO_ONE_NAT", Name: "External NAT", NatIP: in.natIP}}
	}
	return &compute.Instance{
		Kind: "compute#instance", Id: in.id, Name: in.name, Status: c.statusLocked(in),
		Zone:              c.zoneURL(),
		MachineType:       c.zoneURL() + "/machineTypes/" + in.machineType,
		SelfLink:          c.zoneURL() + "/instances/" + in.name,
		CreationTimestamp: in.created.Format(time.RFC3339Nano),
		NetworkInterfaces: []*compute.NetworkInterface{nic},
		Disks: []*compute.AttachedDisk{{Boot: true, AutoDelete: true, Type: "PERSISTENT", DiskSizeGb: in.diskGB,
			Source: c.zoneURL() + "/disks/" + in.name}},
		Metadata: &compute.Metadata{Kind: "compute#metadata", Fingerprint: "fake", Items: items},
	}
}

func (c *Cloud) listInstances(w http.ResponseWriter, r *http.Request) {
	c.count("compute.instances.list")
	if !c.checkScope(w, r) {
		return
	}
	c.mu.Lock()
	c.sweepLocked()
	now := c.now()
	var names []string
	for name, in := range c.instances {
		if now.Sub(in.created) >= c.opts.ListDelay {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	from, to, next, ok := c.page(w, r, len(names))
	if !ok {
		c.mu.Unlock()
		return
	}
	list := &compute.InstanceList{Kind: "compute#instanceList", Id: c.zoneURL() + "/instances", NextPageToken: next}
	for _, name := range names[from:to] {
		list.Items = append(list.Items, c.renderInstanceLocked(c.instances[name]))
	}
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, list)
}

func (c *Cloud) getInstance(w http.ResponseWriter, r *http.Request) {
	c.count("compute.instances.get")
	if !c.checkScope(w, r) {
		return
	}
	c.mu.Lock()
	c.sweepLocked()
	in, ok := c.instances[r.PathValue("name")]
	var out *compute.Instance
	if ok {
		out = c.renderInstanceLocked(in)
	}
	c.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, "notFound", c.notFound("instances", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Cloud) notFound(kind, name string) string {
	return fmt.Sprintf("The resource 'projects/%s/zones/%s/%s/%s' was not found", c.opts.Project, c.opts.Zone, kind, name)
}

func (c *Cloud) getMachineType(w http.ResponseWriter, r *http.Request) {
	c.count("compute.machineTypes.get")
	if !c.checkScope(w, r) {
		return
	}
	c.mu.Lock()
	mt, ok := c.types[r.PathValue("name")]
	c.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, "notFound", c.notFound("machineTypes", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, mt)
}

func (c *Cloud) getRegion(w http.ResponseWriter, r *http.Request) {
	c.count("compute.regions.get")
	if !c.checkScope(w, r) {
		return
	}
	if r.PathValue("region") != c.opts.Region {
		apiError(w, http.StatusNotFound, "notFound", fmt.Sprintf("The resource 'projects/%s/regions/%s' was not found", c.opts.Project, r.PathValue("region")))
		return
	}
	c.mu.Lock()
	c.sweepLocked()
	cpus, count := c.usageLocked()
	reg := &compute.Region{Kind: "compute#region", Name: c.opts.Region, Status: "UP",
		SelfLink: api + "projects/" + c.opts.Project + "/regions/" + c.opts.Region,
		Zones:    []string{c.zoneURL()}}
	metrics := make([]string, 0, len(c.quotas))
	for m := range c.quotas {
		metrics = append(metrics, m)
	}
	sort.Strings(metrics)
	for _, m := range metrics {
		q := &compute.Quota{Metric: m, Limit: c.quotas[m]}
		switch m {
		case "CPUS":
			q.Usage = cpus
		case "INSTANCES":
			q.Usage = count
		}
		reg.Quotas = append(reg.Quotas, q)
	}
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, reg)
}

func (c *Cloud) getFromFamily(w http.ResponseWriter, r *http.Request) {
	c.count("compute.images.getFromFamily")
	project, family := r.PathValue("project"), r.PathValue("family")
	c.mu.Lock()
	name, ok := c.families[project+"/"+family]
	c.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, "notFound", fmt.Sprintf("The resource 'projects/%s/global/images/family/%s' was not found", project, family))
		return
	}
	writeJSON(w, http.StatusOK, &compute.Image{Kind: "compute#image", Name: name, Family: family, Status: "READY",
		SelfLink: api + "projects/" + project + "/global/images/" + name})
}
