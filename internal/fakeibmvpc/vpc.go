package fakeibmvpc

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

type instance struct {
	id, name, profile, group, zone, image, userData string
	keys                                            []string
	ip, nic                                         string
	created, deleted                                time.Time
	failed                                          bool
}

type floatingIP struct {
	id, name, group, zone, address string
	target                         string // network interface id
	created, deleted               time.Time
}

type image struct {
	id, name, group, os, href string
	public                    bool
	status                    string // fixed status, or "" while importing
	created, deleted          time.Time
}

func (c *Cloud) newImage(name, group, os string) *image {
	im := &image{id: c.nextID("r006"), name: name, group: group, os: os, created: time.Now()}
	c.images[im.id] = im
	return im
}

// phase returns how many StepDelays have passed since t.
func (c *Cloud) phase(t time.Time) int {
	if c.stepDelay <= 0 {
		return 1 << 20
	}
	return int(time.Since(t) / c.stepDelay)
}

func (c *Cloud) gone(deleted time.Time) bool {
	return !deleted.IsZero() && c.phase(deleted) >= 1
}

func (c *Cloud) listed(created time.Time) bool { return time.Since(created) >= c.listDelay }

func (c *Cloud) ref(id string) map[string]any { return map[string]any{"id": id, "name": c.groups[id]} }

func (c *Cloud) instanceJSON(v *instance) map[string]any {
	status := "running"
	switch p := c.phase(v.created); {
	case !v.deleted.IsZero():
		status = "deleting"
	case v.failed && p >= 1:
		status = "failed"
	case p < 1:
		status = "pending"
	case p < 2:
		status = "starting"
	}
	nic := map[string]any{
		"id": v.nic, "name": "eth0", "href": c.URL + "/v1/instances/" + v.id + "/network_interfaces/" + v.nic,
		"resource_type": "network_interface", "primary_ip": map[string]any{"address": v.ip},
		"subnet": map[string]any{"id": "subnet-1", "name": SubnetName},
	}
	vc, mem := c.profiles[v.profile][0], c.profiles[v.profile][1]
	return map[string]any{
		"id": v.id, "name": v.name, "crn": "crn:v1:bluemix:public:is:" + v.zone + ":a/fakeaccount::instance:" + v.id,
		"href": c.URL + "/v1/instances/" + v.id, "status": status, "lifecycle_state": "stable",
		"zone": map[string]any{"name": v.zone}, "profile": map[string]any{"name": v.profile},
		"resource_group": c.ref(v.group), "vpc": map[string]any{"id": "vpc-1", "name": VPCName},
		"memory": mem, "vcpu": map[string]any{"architecture": "amd64", "count": vc},
		"image":                     map[string]any{"id": v.image},
		"primary_network_interface": nic, "network_interfaces": []any{nic},
		"created_at": v.created.UTC().Format(time.RFC3339), "resource_type": "instance",
	}
}

func (c *Cloud) fipJSON(f *floatingIP) map[string]any {
	status := "available"
	if !f.deleted.IsZero() {
		status = "deleting"
	} else if c.phase(f.created) < 1 {
		status = "pending"
	}
	out := map[string]any{
		"id": f.id, "name": f.name, "address": f.address, "status": status,
		"crn": "crn:v1:bluemix:public:is:" + f.zone + ":a/fakeaccount::floating-ip:" + f.id, "href": c.URL + "/v1/floating_ips/" + f.id,
		"zone": map[string]any{"name": f.zone}, "resource_group": c.ref(f.group), "created_at": f.created.UTC().Format(time.RFC3339),
	}
	if f.target != "" {
		out["target"] = map[string]any{"id": f.target, "name": "eth0", "resource_type": "network_interface"}
	}
	return out
}

func (c *Cloud) imageJSON(im *image) map[string]any {
	status, vis := im.status, "private"
	if im.public {
		vis = "public"
	}
	if status == "" {
		switch {
		case !im.deleted.IsZero():
			status = "deleting"
		case c.phase(im.created) < 2:
			status = "pending"
		case im.os == FailingOS:
			status = "failed"
		default:
			status = "available"
		}
	}
	family, version := "Debian GNU/Linux", "9.x Stretch/Stable - Minimal Install"
	return map[string]any{
		"id": im.id, "name": im.name, "status": status, "visibility": vis, "href": c.URL + "/v1/images/" + im.id,
		"crn": "crn:v1:bluemix:public:is:us-south:a/fakeaccount::image:" + im.id, "resource_group": map[string]any{"id": im.group},
		"operating_system": map[string]any{"name": im.os, "family": family, "version": version, "architecture": "amd64", "dedicated_host_only": false, "display_name": im.os, "vendor": "Debian"},
		"file":             map[string]any{}, "created_at": im.created.UTC().Format(time.RFC3339), "encryption": "none",
	}
}

// page answers a paginated listing (limit and start query parameters).
func (c *Cloud) page(w http.ResponseWriter, r *http.Request, key string, items []map[string]any) {
	sort.Slice(items, func(i, j int) bool { return fmt.Sprint(items[i]["id"]) < fmt.Sprint(items[j]["id"]) })
	c.pageOf(w, r, key, len(items), func(i int) map[string]any { return items[i] })
}

// pageOf answers a paginated listing of n items in order, rendering only
// the items of the requested page.
func (c *Cloud) pageOf(w http.ResponseWriter, r *http.Request, key string, n int, item func(i int) map[string]any) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 100 {
		limit = 50
	}
	start, _ := strconv.Atoi(r.URL.Query().Get("start"))
	start = min(max(start, 0), n)
	end := min(start+limit, n)
	out := make([]map[string]any, 0, end-start)
	for i := start; i < end; i++ {
		out = append(out, item(i))
	}
	base := c.URL + r.URL.Path + "?limit=" + strconv.Itoa(limit)
	res := map[string]any{key: out, "limit": limit, "first": map[string]any{"href": base}, "total_count": n}
	if end < n {
		res["next"] = map[string]any{"href": base + "&start=" + strconv.Itoa(end)}
	}
	writeJSON(w, 200, res)
}

func (c *Cloud) serveVPC(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/v1"), "/"), "/")
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reap()
	switch {
	case r.Method == "GET" && r.URL.Path == "/v1/vpcs":
		c.page(w, r, "vpcs", []map[string]any{{"id": "vpc-1", "name": VPCName, "crn": "crn:vpc-1", "href": c.URL + "/v1/vpcs/vpc-1"}})
	case r.Method == "GET" && r.URL.Path == "/v1/subnets":
		c.page(w, r, "subnets", []map[string]any{{"id": "subnet-1", "name": SubnetName, "zone": map[string]any{"name": Zone}, "ipv4_cidr_block": "10.240.0.0/24"}})
	case r.Method == "GET" && r.URL.Path == "/v1/keys":
		c.page(w, r, "keys", []map[string]any{{"id": "key-1", "name": KeyName, "type": "rsa"}})
	case r.Method == "GET" && r.URL.Path == "/v1/instance/profiles":
		var ps []map[string]any
		for n, p := range c.profiles {
			ps = append(ps, map[string]any{"name": n, "family": "balanced", "vcpu_count": map[string]any{"type": "fixed", "value": p[0]}, "memory": map[string]any{"type": "fixed", "value": p[1]}})
		}
		writeJSON(w, 200, map[string]any{"profiles": ps})
	case parts[0] == "instances":
		c.serveInstances(w, r, parts)
	case parts[0] == "floating_ips":
		c.serveFloatingIPs(w, r, parts)
	case parts[0] == "images":
		c.serveImages(w, r, parts)
	default:
		apiError(w, 404, "not_found", "no such path "+r.URL.Path)
	}
}

// reap forgets deleted objects whose deletion finished.
func (c *Cloud) reap() {
	for id, v := range c.instances {
		if c.gone(v.deleted) {
			delete(c.instances, id)
		}
	}
	for id, f := range c.fips {
		if c.gone(f.deleted) {
			delete(c.fips, id)
		}
	}
	for id, im := range c.images {
		if c.gone(im.deleted) {
			delete(c.images, id)
		}
	}
}

func decode(r *http.Request, v any) error { return json.NewDecoder(r.Body).Decode(v) }

type idRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Href string `json:"href"`
}

func (c *Cloud) serveInstances(w http.ResponseWriter, r *http.Request, parts []string) {
	switch {
	case len(parts) == 1 && r.Method == "GET":
		var list []*instance
		for _, v := range c.instances {
			if c.listed(v.created) {
				list = append(list, v)
			}
		}
		sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })
		c.pageOf(w, r, "instances", len(list), func(i int) map[string]any { return c.instanceJSON(list[i]) })
	case len(parts) == 1 && r.Method == "POST":
		var body struct {
			Name          string  `json:"name"`
			UserData      string  `json:"user_data"`
			Profile       idRef   `json:"profile"`
			ResourceGroup idRef   `json:"resource_group"`
			Zone          idRef   `json:"zone"`
			Image         idRef   `json:"image"`
			Keys          []idRef `json:"keys"`
		}
		if err := decode(r, &body); err != nil {
			apiError(w, 400, "bad_request", err.Error())
			return
		}
		if _, ok := c.profiles[body.Profile.Name]; !ok {
			apiError(w, 400, "instance_profile_not_found", "instance profile "+body.Profile.Name+" not found")
			return
		}
		if body.Image.ID == "" && body.Image.Href == "" {
			apiError(w, 400, "missing_field", "image is required")
			return
		}
		imgID := body.Image.ID
		if imgID == "" {
			imgID = body.Image.Href[strings.LastIndex(body.Image.Href, "/")+1:]
		}
		im, ok := c.images[imgID]
		if !ok || (im.status == "" && c.phase(im.created) < 2) || im.os == FailingOS {
			apiError(w, 400, "image_not_found", "image "+imgID+" not found or not available")
			return
		}
		if _, ok := c.groups[body.ResourceGroup.ID]; !ok {
			apiError(w, 400, "resource_group_not_found", "resource group not found")
			return
		}
		if c.instanceQuota > 0 && len(c.instances) >= c.instanceQuota {
			apiError(w, 400, "over_quota", fmt.Sprintf("Exceeded quota for instances: limit %d", c.instanceQuota))
			return
		}
		v := &instance{id: c.nextID("0717"), name: body.Name, profile: body.Profile.Name, group: body.ResourceGroup.ID,
			zone: body.Zone.Name, image: imgID, userData: body.UserData, nic: c.nextID("0727"), created: time.Now()}
		v.ip = fmt.Sprintf("10.240.%d.%d", c.seq/250%250, c.seq%250+2)
		if c.failNext > 0 {
			c.failNext--
			v.failed = true
		}
		for _, k := range body.Keys {
			v.keys = append(v.keys, k.ID)
		}
		c.instances[v.id] = v
		alive := 0
		for _, x := range c.instances {
			if x.deleted.IsZero() {
				alive++
			}
		}
		c.peak = max(c.peak, alive)
		writeJSON(w, 201, c.instanceJSON(v))
	case len(parts) == 2:
		v, ok := c.instances[parts[1]]
		if !ok {
			apiError(w, 404, "not_found", "Instance not found")
			return
		}
		if r.Method == "DELETE" {
			if v.deleted.IsZero() {
				v.deleted = time.Now()
			}
			w.WriteHeader(204)
			return
		}
		writeJSON(w, 200, c.instanceJSON(v))
	case len(parts) == 6 && parts[2] == "network_interfaces" && parts[4] == "floating_ips" && r.Method == "PUT":
		v, ok := c.instances[parts[1]]
		f, ok2 := c.fips[parts[5]]
		if !ok || !ok2 || v.nic != parts[3] {
			apiError(w, 404, "not_found", "instance, interface or floating IP not found")
			return
		}
		f.target = v.nic
		writeJSON(w, 201, c.fipJSON(f))
	default:
		apiError(w, 404, "not_found", "no such path "+r.URL.Path)
	}
}

func (c *Cloud) serveFloatingIPs(w http.ResponseWriter, r *http.Request, parts []string) {
	switch {
	case len(parts) == 1 && r.Method == "GET":
		var out []map[string]any
		for _, f := range c.fips {
			if c.listed(f.created) {
				out = append(out, c.fipJSON(f))
			}
		}
		c.page(w, r, "floating_ips", out)
	case len(parts) == 1 && r.Method == "POST":
		var body struct {
			Name          string `json:"name"`
			ResourceGroup idRef  `json:"resource_group"`
			Zone          idRef  `json:"zone"`
		}
		if err := decode(r, &body); err != nil || body.Zone.Name == "" {
			apiError(w, 400, "missing_field", "zone is required")
			return
		}
		f := &floatingIP{id: c.nextID("r006-fip"), name: body.Name, group: body.ResourceGroup.ID, zone: body.Zone.Name, created: time.Now()}
		f.address = fmt.Sprintf("169.48.%d.%d", c.seq/250%250, c.seq%250+1)
		c.fips[f.id] = f
		writeJSON(w, 201, c.fipJSON(f))
	case len(parts) == 2:
		f, ok := c.fips[parts[1]]
		if !ok {
			apiError(w, 404, "not_found", "Floating IP not found")
			return
		}
		if r.Method == "DELETE" {
			if f.deleted.IsZero() {
				f.deleted = time.Now()
			}
			w.WriteHeader(204)
			return
		}
		writeJSON(w, 200, c.fipJSON(f))
	default:
		apiError(w, 404, "not_found", "no such path "+r.URL.Path)
	}
}

func (c *Cloud) serveImages(w http.ResponseWriter, r *http.Request, parts []string) {
	switch {
	case len(parts) == 1 && r.Method == "GET":
		var out []map[string]any
		for _, im := range c.images {
			if c.listed(im.created) {
				out = append(out, c.imageJSON(im))
			}
		}
		c.page(w, r, "images", out)
	case len(parts) == 1 && r.Method == "POST":
		var body struct {
			Name          string `json:"name"`
			ResourceGroup idRef  `json:"resource_group"`
			File          idRef  `json:"file"`
			OS            idRef  `json:"operating_system"`
		}
		if err := decode(r, &body); err != nil {
			apiError(w, 400, "bad_request", err.Error())
			return
		}
		// The file must be a cos://<region>/<bucket>/<key> URL of a staged object.
		key := strings.TrimPrefix(body.File.Href, "cos://us-south/"+Bucket+"/")
		if _, ok := c.objects[key]; !ok || key == body.File.Href {
			apiError(w, 400, "image_file_not_found", "image file "+body.File.Href+" not found")
			return
		}
		im := c.newImage(body.Name, body.ResourceGroup.ID, body.OS.Name)
		im.href = body.File.Href
		writeJSON(w, 201, c.imageJSON(im))
	case len(parts) == 2:
		im, ok := c.images[parts[1]]
		if !ok {
			apiError(w, 404, "not_found", "Image not found")
			return
		}
		if r.Method == "DELETE" {
			if im.deleted.IsZero() {
				im.deleted = time.Now()
			}
			w.WriteHeader(202)
			return
		}
		writeJSON(w, 200, c.imageJSON(im))
	default:
		apiError(w, 404, "not_found", "no such path "+r.URL.Path)
	}
}
