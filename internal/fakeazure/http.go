package fakeazure

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const pageSize = 50

func (c *Cloud) count(kind string) {
	v, _ := c.byMethod.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-ms-request-id", "fake")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// armError answers with Azure's error body.
func armError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("x-ms-error-code", code)
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func deepCopy(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func (c *Cloud) serve(w http.ResponseWriter, r *http.Request) {
	c.calls.Add(1)
	path := strings.ToLower(r.URL.Path)
	segs := strings.Split(strings.Trim(path, "/"), "/")
	kind := segs[len(segs)-1]
	if len(segs) >= 2 && segs[len(segs)-2] == "operations" || len(segs) >= 2 && segs[len(segs)-2] == "results" {
		kind = segs[len(segs)-2]
	} else if len(segs) >= 8 && segs[2] == "resourcegroups" && segs[4] == "providers" {
		kind = segs[6]
	}
	c.count(r.Method + " " + kind)

	c.mu.Lock()
	lat := c.latency
	c.mu.Unlock()
	if lat > 0 {
		time.Sleep(lat)
	}
	if c.fault(w, r.Method, path) {
		return
	}
	switch {
	case strings.HasSuffix(path, "/.well-known/openid-configuration"):
		c.discovery(w, r)
		return
	case strings.HasSuffix(path, "/oauth2/v2.0/token"):
		c.token(w, r)
		return
	case strings.HasPrefix(path, "/blob/"):
		c.blob(w, r, segs)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer fake-token-") {
		armError(w, http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing or invalid.")
		return
	}
	if len(segs) < 3 || segs[0] != "subscriptions" || segs[1] != strings.ToLower(Subscription) {
		armError(w, http.StatusNotFound, "SubscriptionNotFound", "The subscription could not be found.")
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tickLocked()
	switch {
	case segs[2] == "resourcegroups" && len(segs) == 4:
		c.group(w, r, segs[3])
	case segs[2] == "providers" && len(segs) == 5 && segs[4] == "skus":
		c.listSKUs(w)
	case segs[2] == "providers" && len(segs) == 7 && segs[6] == "usages":
		c.usages(w)
	case segs[2] == "providers" && len(segs) == 6 && segs[4] == "operations":
		c.opStatus(w, segs[5])
	case segs[2] == "providers" && len(segs) == 6 && segs[4] == "results":
		c.opResult(w, segs[5])
	case segs[2] == "resourcegroups" && len(segs) == 7 && segs[4] == "providers":
		c.list(w, r, segs[3], segs[5]+"/"+segs[6])
	case segs[2] == "resourcegroups" && len(segs) == 10 && segs[6] == "virtualnetworks" && segs[8] == "subnets":
		c.subnet(w, r)
	case segs[2] == "resourcegroups" && len(segs) == 8 && segs[4] == "providers":
		c.crud(w, r, segs[3], segs[5]+"/"+segs[6], segs[7])
	case segs[2] == "resourcegroups" && len(segs) == 9 && segs[4] == "providers" && r.Method == http.MethodPost:
		c.action(w, r, segs[3], segs[5]+"/"+segs[6], segs[7], segs[8])
	default:
		armError(w, http.StatusNotFound, "InvalidResourceType", "The resource type could not be found: "+r.URL.Path)
	}
}

// fault answers with an injected fault if one matches.
func (c *Cloud) fault(w http.ResponseWriter, method, path string) bool {
	c.mu.Lock()
	var f *Fault
	for i, x := range c.faults {
		if (x.Method == "" || x.Method == method) && strings.Contains(path, strings.ToLower(x.Path)) {
			f = x
			x.Times--
			if x.Times <= 0 {
				c.faults = append(c.faults[:i:i], c.faults[i+1:]...)
			}
			break
		}
	}
	c.mu.Unlock()
	if f == nil {
		return false
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	armError(w, f.Status, f.Code, f.Msg)
	return true
}

func (c *Cloud) discovery(w http.ResponseWriter, r *http.Request) {
	base := c.srv.URL + "/" + Tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":         base + "/oauth2/v2.0/token",
		"authorization_endpoint": base + "/oauth2/v2.0/authorize",
		"issuer":                 base + "/v2.0",
		"tenant_region_scope":    "NA",
	})
}

func (c *Cloud) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	if r.PostForm.Get("client_id") != ClientID || r.PostForm.Get("client_secret") != ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client",
			"error_description": "AADSTS7000215: Invalid client secret provided."})
		return
	}
	c.mu.Lock()
	c.seq++
	n := c.seq
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600,
		"access_token": fmt.Sprintf("fake-token-%d", n)})
}

func (c *Cloud) group(w http.ResponseWriter, r *http.Request, name string) {
	id := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s", Subscription, name)
	loc, ok := c.groups[name]
	switch r.Method {
	case http.MethodHead:
		if ok {
			w.WriteHeader(http.StatusNoContent)
		} else {
			w.WriteHeader(http.StatusNotFound)
		}
	case http.MethodGet:
		if !ok {
			armError(w, http.StatusNotFound, "ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", name))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "name": name, "location": loc, "properties": map[string]any{"provisioningState": "Succeeded"}})
	case http.MethodPut:
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		loc = str(body["location"])
		status := http.StatusCreated
		if ok {
			status = http.StatusOK
		}
		c.groups[name] = loc
		writeJSON(w, status, map[string]any{"id": id, "name": name, "location": loc, "properties": map[string]any{"provisioningState": "Succeeded"}})
	default:
		armError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
	}
}

// AddGroup makes a resource group exist.
func (c *Cloud) AddGroup(name, location string) {
	c.mu.Lock()
	c.groups[strings.ToLower(name)] = location
	c.mu.Unlock()
}

func (c *Cloud) listSKUs(w http.ResponseWriter) {
	var out []any
	for _, s := range c.skus {
		out = append(out, map[string]any{
			"resourceType": "virtualMachines", "name": s.Name, "family": s.Family, "locations": []string{"centralus"},
			"capabilities": []any{
				map[string]any{"name": "vCPUs", "value": strconv.Itoa(s.VCPUs)},
				map[string]any{"name": "MemoryGB", "value": strconv.FormatFloat(s.MemoryGB, 'f', -1, 64)},
			},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (c *Cloud) skuOf(name string) *SKU {
	for i := range c.skus {
		if strings.EqualFold(c.skus[i].Name, name) {
			return &c.skus[i]
		}
	}
	return nil
}

// usedLocked returns the cores, VMs and cores per family in use.
func (c *Cloud) usedLocked() (cores, vms float64, fam map[string]float64) {
	fam = map[string]float64{}
	for _, r := range c.res {
		if r.typ != typeVM || state(r.body) == "Failed" {
			continue
		}
		vms++
		if s := c.skuOf(vmSize(r.body)); s != nil {
			cores += float64(s.VCPUs)
			fam[s.Family] += float64(s.VCPUs)
		}
	}
	return cores, vms, fam
}

func limitJSON(v float64) int64 {
	if v > 1e12 {
		return 4294967295
	}
	return int64(v)
}

func (c *Cloud) usages(w http.ResponseWriter) {
	cores, vms, fam := c.usedLocked()
	u := func(name, local string, cur, lim float64) any {
		return map[string]any{"name": map[string]any{"value": name, "localizedValue": local},
			"currentValue": int64(cur), "limit": limitJSON(lim), "unit": "Count"}
	}
	out := []any{u("cores", "Total Regional vCPUs", cores, c.coreLimit), u("virtualMachines", "Virtual Machines", vms, c.vmLimit)}
	names := make([]string, 0, len(c.famLimit))
	for f := range c.famLimit {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		out = append(out, u(f, f+" vCPUs", fam[f], c.famLimit[f]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (c *Cloud) opStatus(w http.ResponseWriter, id string) {
	op := c.ops[id]
	if op == nil {
		armError(w, http.StatusNotFound, "NotFound", "operation not found")
		return
	}
	body := map[string]any{"name": id, "status": "InProgress", "startTime": time.Now().UTC().Format(time.RFC3339)}
	if op.done {
		body["status"] = "Succeeded"
		if op.code != "" {
			body["status"] = "Failed"
			body["error"] = map[string]any{"code": op.code, "message": op.msg}
		}
		if op.result != nil {
			body["properties"] = map[string]any{"output": op.result}
		}
	}
	writeJSON(w, http.StatusOK, body)
}

func (c *Cloud) opResult(w http.ResponseWriter, id string) {
	op := c.ops[id]
	switch {
	case op == nil:
		armError(w, http.StatusNotFound, "NotFound", "operation not found")
	case !op.done:
		w.Header().Set("Location", c.srv.URL+opPath("results", id))
		w.WriteHeader(http.StatusAccepted)
	case op.code != "":
		armError(w, http.StatusBadRequest, op.code, op.msg)
	case op.result == nil:
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusOK, op.result)
	}
}

func opPath(kind, id string) string {
	return fmt.Sprintf("/subscriptions/%s/providers/Microsoft.Fake/%s/%s?api-version=2024-01-01", Subscription, kind, id)
}

// accepted answers a write with the operation's polling headers.
func (c *Cloud) accepted(w http.ResponseWriter, status int, op *operation, body map[string]any) {
	w.Header().Set("Azure-AsyncOperation", c.srv.URL+opPath("operations", op.id))
	w.Header().Set("Location", c.srv.URL+opPath("results", op.id))
	if body == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, body)
}

func (c *Cloud) list(w http.ResponseWriter, r *http.Request, group, typ string) {
	if r.Method != http.MethodGet {
		armError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
		return
	}
	cutoff := time.Now().Add(-c.listDelay)
	var items []*resource
	for _, x := range c.res {
		if x.typ == typ && strings.EqualFold(groupOf(x.id), group) && !x.created.After(cutoff) {
			items = append(items, x)
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].id < items[j].id })
	skip, _ := strconv.Atoi(r.URL.Query().Get("$skiptoken"))
	end := min(skip+pageSize, len(items))
	out := []any{}
	for _, x := range items[min(skip, len(items)):end] {
		out = append(out, x.body)
	}
	resp := map[string]any{"value": out}
	if end < len(items) {
		q := r.URL.Query()
		q.Set("$skiptoken", strconv.Itoa(end))
		resp["nextLink"] = c.srv.URL + r.URL.Path + "?" + q.Encode()
	}
	writeJSON(w, http.StatusOK, resp)
}

func groupOf(id string) string {
	parts := strings.Split(id, "/")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(parts[i], "resourceGroups") {
			return parts[i+1]
		}
	}
	return ""
}

func (c *Cloud) subnet(w http.ResponseWriter, r *http.Request) {
	if !c.subnets[strings.ToLower(r.URL.Path)] {
		armError(w, http.StatusNotFound, "NotFound", "Resource "+r.URL.Path+" not found.")
		return
	}
	parts := strings.Split(r.URL.Path, "/")
	writeJSON(w, http.StatusOK, map[string]any{"id": r.URL.Path, "name": parts[len(parts)-1],
		"type":       "Microsoft.Network/virtualNetworks/subnets",
		"properties": map[string]any{"addressPrefix": "10.0.0.0/16", "provisioningState": "Succeeded"}})
}

func (c *Cloud) blob(w http.ResponseWriter, r *http.Request, segs []string) {
	if len(segs) != 2 || r.URL.Query().Get("sig") == "" {
		w.Header().Set("x-ms-error-code", "AuthenticationFailed")
		w.WriteHeader(http.StatusForbidden)
		return
	}
	name := segs[1]
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.res[strings.ToLower(resourceID(c.diskGroupLocked(name), "Microsoft.Compute/disks", name))]
	if d == nil || str(props(d.body)["diskState"]) != "ActiveUpload" {
		w.Header().Set("x-ms-error-code", "BlobNotFound")
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPut || r.URL.Query().Get("comp") != "page" {
		w.Header().Set("x-ms-error-code", "UnsupportedHttpVerb")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var start, end int
	rng := r.Header.Get("x-ms-range")
	if rng == "" {
		rng = r.Header.Get("Range")
	}
	if _, err := fmt.Sscanf(rng, "bytes=%d-%d", &start, &end); err != nil || start%512 != 0 || (end+1)%512 != 0 {
		w.Header().Set("x-ms-error-code", "InvalidPageRange")
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	data, _ := io.ReadAll(r.Body)
	size := int(num(props(d.body)["diskSizeBytes"]))
	if len(data) != end-start+1 || end >= size {
		w.Header().Set("x-ms-error-code", "InvalidPageRange")
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	buf := c.blobs[name]
	if len(buf) < size {
		buf = append(buf, make([]byte, size-len(buf))...)
	}
	copy(buf[start:], data)
	c.blobs[name] = buf
	w.Header().Set("ETag", fmt.Sprintf("\"0x%X\"", time.Now().UnixNano()))
	w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	w.Header().Set("x-ms-blob-sequence-number", "0")
	w.Header().Set("x-ms-request-server-encrypted", "true")
	w.Header().Set("x-ms-version", "2023-11-03")
	w.WriteHeader(http.StatusCreated)
}

func (c *Cloud) diskGroupLocked(name string) string {
	for _, r := range c.res {
		if r.typ == typeDisk && strings.EqualFold(str(r.body["name"]), name) {
			return groupOf(r.id)
		}
	}
	return ""
}

func num(v any) float64 {
	switch t := v.(type) {
	case float64:
		return t
	case int:
		return float64(t)
	case int64:
		return float64(t)
	}
	return 0
}
