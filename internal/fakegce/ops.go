package fakegce

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	compute "google.golang.org/api/compute/v1"
)

var nameRE = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)

var diskTypes = map[string]bool{"pd-standard": true, "pd-balanced": true, "pd-ssd": true, "pd-extreme": true}

// newOpLocked records an operation on target finishing after d (never
// when d < 0) with an optional error.
func (c *Cloud) newOpLocked(typ, target string, d time.Duration, code, msg string) *operation {
	c.opSeq++
	now := c.now()
	op := &operation{name: fmt.Sprintf("operation-%d-%06d", now.UnixMilli(), c.opSeq), typ: typ, target: target,
		created: now, errCode: code, errMsg: msg}
	if d >= 0 {
		op.done = now.Add(d)
	}
	c.ops[op.name] = op
	return op
}

func (c *Cloud) opStatusLocked(op *operation) string {
	if op.done.IsZero() || c.now().Before(op.done) {
		return "RUNNING"
	}
	return "DONE"
}

func (c *Cloud) renderOpLocked(op *operation) *compute.Operation {
	out := &compute.Operation{
		Kind: "compute#operation", Id: uint64(op.created.UnixNano()), Name: op.name, Zone: c.zoneURL(),
		OperationType: op.typ, TargetLink: c.zoneURL() + "/instances/" + op.target,
		Status: c.opStatusLocked(op), InsertTime: op.created.Format(time.RFC3339Nano),
		StartTime: op.created.Format(time.RFC3339Nano), SelfLink: c.zoneURL() + "/operations/" + op.name,
		User: "nodepool@" + c.opts.Project + ".iam.gserviceaccount.com",
	}
	if out.Status == "DONE" {
		out.Progress = 100
		out.EndTime = op.done.Format(time.RFC3339Nano)
		if op.errCode != "" {
			out.Error = &compute.OperationError{Errors: []*compute.OperationErrorErrors{{Code: op.errCode, Message: op.errMsg}}}
			out.HttpErrorStatusCode = 403
			out.HttpErrorMessage = "FORBIDDEN"
		}
	}
	return out
}

func (c *Cloud) insertInstance(w http.ResponseWriter, r *http.Request) {
	c.count("compute.instances.insert")
	if !c.checkScope(w, r) {
		return
	}
	var body compute.Instance
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		apiError(w, http.StatusBadRequest, "parseError", "Parse Error")
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked()
	var fault Fault
	if len(c.insertF) > 0 {
		fault, c.insertF = c.insertF[0], c.insertF[1:]
	}
	if writeFault(w, fault) {
		return
	}
	if !nameRE.MatchString(body.Name) {
		apiError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("Invalid value for field 'resource.name': '%s'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'", body.Name))
		return
	}
	if _, dup := c.instances[body.Name]; dup {
		apiError(w, http.StatusConflict, "alreadyExists", fmt.Sprintf("The resource 'projects/%s/zones/%s/instances/%s' already exists", c.opts.Project, c.opts.Zone, body.Name))
		return
	}
	mt := path.Base(body.MachineType)
	if c.types[mt] == nil {
		apiError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("Invalid value for field 'resource.machineType': '%s'. Machine type with name '%s' does not exist in zone '%s'.", body.MachineType, mt, c.opts.Zone))
		return
	}
	if len(body.Disks) == 0 || body.Disks[0].InitializeParams == nil {
		apiError(w, http.StatusBadRequest, "required", "Required field 'resource.disks[0].initializeParams' not specified")
		return
	}
	ip := body.Disks[0].InitializeParams
	img := strings.TrimPrefix(ip.SourceImage, api)
	parts := strings.Split(img, "/")
	if len(parts) != 5 || parts[0] != "projects" || parts[2] != "global" || parts[3] != "images" || !c.images[parts[1]+"/"+parts[4]] {
		apiError(w, http.StatusNotFound, "notFound", fmt.Sprintf("The resource '%s' was not found", img))
		return
	}
	dt := path.Base(ip.DiskType)
	if ip.DiskType != "" && !diskTypes[dt] {
		apiError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("Invalid value for field 'resource.disks[0].initializeParams.diskType': '%s'. Disk type '%s' does not exist in zone '%s'.", ip.DiskType, dt, c.opts.Zone))
		return
	}
	half := c.opts.BuildTime / 2
	switch fault {
	case FaultQuotaOperation:
		c.opFailLocked(w, body.Name, "QUOTA_EXCEEDED", fmt.Sprintf("Quota 'CPUS' exceeded.  Limit: %.1f in region %s.", c.quotas["CPUS"], c.opts.Region))
		return
	case FaultCapacity:
		c.opFailLocked(w, body.Name, "ZONE_RESOURCE_POOL_EXHAUSTED", fmt.Sprintf("The zone 'projects/%s/zones/%s' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.", c.opts.Project, c.opts.Zone))
		return
	case FaultOperationError:
		c.opFailLocked(w, body.Name, "UNSUPPORTED_OPERATION", "Injected operation failure")
		return
	}
	cpus, count := c.usageLocked()
	need := float64(c.types[mt].GuestCpus)
	if lim, ok := c.quotas["CPUS"]; ok && cpus+need > lim {
		c.opFailLocked(w, body.Name, "QUOTA_EXCEEDED", fmt.Sprintf("Quota 'CPUS' exceeded.  Limit: %.1f in region %s.", lim, c.opts.Region))
		return
	}
	if lim, ok := c.quotas["INSTANCES"]; ok && count+1 > lim {
		c.opFailLocked(w, body.Name, "QUOTA_EXCEEDED", fmt.Sprintf("Quota 'INSTANCES' exceeded.  Limit: %.1f in region %s.", lim, c.opts.Region))
		return
	}
	md := map[string]string{}
	if body.Metadata != nil {
		for _, it := range body.Metadata.Items {
			if it.Value != nil {
				md[it.Key] = *it.Value
			}
		}
	}
	nat := len(body.NetworkInterfaces) > 0 && len(body.NetworkInterfaces[0].AccessConfigs) > 0
	in := c.newInstanceLocked(body.Name, mt, md, nat)
	in.sourceImage, in.diskType = img, dt
	if ip.DiskSizeGb > 0 {
		in.diskGB = ip.DiskSizeGb
	}
	d := half
	if fault == FaultStuck {
		in.stuck, d = true, -1
	}
	writeJSON(w, http.StatusOK, c.renderOpLocked(c.newOpLocked("insert", body.Name, d, "", "")))
}

// opFailLocked answers an insert whose operation ends with an error.
func (c *Cloud) opFailLocked(w http.ResponseWriter, target, code, msg string) {
	writeJSON(w, http.StatusOK, c.renderOpLocked(c.newOpLocked("insert", target, c.opts.BuildTime/2, code, msg)))
}

func (c *Cloud) deleteInstance(w http.ResponseWriter, r *http.Request) {
	c.count("compute.instances.delete")
	if !c.checkScope(w, r) {
		return
	}
	name := r.PathValue("name")
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked()
	in, ok := c.instances[name]
	switch {
	case !ok:
		apiError(w, http.StatusNotFound, "notFound", c.notFound("instances", name))
		return
	case !in.deleted.IsZero():
		apiError(w, http.StatusBadRequest, "resourceNotReady", fmt.Sprintf("The resource 'projects/%s/zones/%s/instances/%s' is not ready", c.opts.Project, c.opts.Zone, name))
		return
	}
	in.deleted = c.now()
	writeJSON(w, http.StatusOK, c.renderOpLocked(c.newOpLocked("delete", name, c.opts.DeleteTime, "", "")))
}

func (c *Cloud) listOperations(w http.ResponseWriter, r *http.Request) {
	c.count("compute.zoneOperations.list")
	if !c.checkScope(w, r) {
		return
	}
	match, ok := filter(w, r)
	if !ok {
		return
	}
	c.mu.Lock()
	var sel []*operation
	for _, op := range c.ops {
		status := c.opStatusLocked(op)
		if match(func(f string) string {
			return map[string]string{"status": status, "name": op.name, "operationType": op.typ}[f]
		}) {
			sel = append(sel, op)
		}
	}
	sort.Slice(sel, func(i, j int) bool { return sel[i].name < sel[j].name })
	from, to, next, ok := c.page(w, r, len(sel))
	if !ok {
		c.mu.Unlock()
		return
	}
	list := &compute.OperationList{Kind: "compute#operationList", Id: c.zoneURL() + "/operations", NextPageToken: next}
	for _, op := range sel[from:to] {
		list.Items = append(list.Items, c.renderOpLocked(op))
	}
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, list)
}

func (c *Cloud) getOperation(w http.ResponseWriter, r *http.Request) {
	c.count("compute.zoneOperations.get")
	if !c.checkScope(w, r) {
		return
	}
	c.mu.Lock()
	op, ok := c.ops[r.PathValue("name")]
	var out *compute.Operation
	if ok {
		out = c.renderOpLocked(op)
	}
	c.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, "notFound", c.notFound("operations", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, out)
}
