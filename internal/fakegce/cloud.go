// Package fakegce is an in-process fake of the Compute Engine REST API
// (compute/v1) for tests of the GCE driver, reached by the real client
// library over HTTP through its endpoint override. It models what the
// driver depends on: instances that go PROVISIONING → STAGING → RUNNING
// and STOPPING → gone, zone operations that finish later (with errors
// such as QUOTA_EXCEEDED or ZONE_RESOURCE_POOL_EXHAUSTED), listings that
// lag behind creation (eventual consistency) and come in pages, the
// region's CPUS and INSTANCES quotas, machine types, image families,
// Google's error bodies (quotaExceeded, rateLimitExceeded, notFound,
// alreadyExists, resourceNotReady), OAuth2 service-account tokens, and
// injectable faults (5xx, throttling, capacity, stuck instances, slow
// calls).
package fakegce

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	compute "google.golang.org/api/compute/v1"
)

// Options configure a fake cloud; zero values take the defaults.
type Options struct {
	Project string // default "gcloud-project"
	Region  string // default "us-central1"
	Zone    string // default "us-central1-a"
	// BuildTime is how long an instance takes to reach RUNNING; its
	// insert operation is done halfway (default 20 ms).
	BuildTime time.Duration
	// DeleteTime is how long a deleted instance stays STOPPING (default
	// 10 ms).
	DeleteTime time.Duration
	// ListDelay hides a new instance from listings for this long.
	ListDelay time.Duration
	// Latency delays every answer.
	Latency time.Duration
	// PageSize caps the items of one list page (default 500).
	PageSize int
	// NoAuth accepts requests without an access token.
	NoAuth bool
}

// Fault is an injectable failure.
type Fault int

// Faults of inserts (FailNextInserts) and of any call (FailNext).
const (
	// FaultQuota answers 403 quotaExceeded at once.
	FaultQuota Fault = iota + 1
	// FaultQuotaOperation ends the insert operation with QUOTA_EXCEEDED.
	FaultQuotaOperation
	// FaultCapacity ends the insert operation with
	// ZONE_RESOURCE_POOL_EXHAUSTED.
	FaultCapacity
	// FaultOperationError ends the operation with an unclassified error.
	FaultOperationError
	// FaultStuck leaves the instance PROVISIONING and its operation
	// running forever.
	FaultStuck
	// FaultRateLimit answers 403 rateLimitExceeded.
	FaultRateLimit
	// FaultTooManyRequests answers 429 rateLimitExceeded.
	FaultTooManyRequests
	// FaultServer answers 503 backendError.
	FaultServer
)

// Cloud is one fake project, region and zone.
type Cloud struct {
	opts Options
	auth *authority
	url  string // the server's base URL

	muxOnce sync.Once
	handler http.Handler

	mu        sync.Mutex
	now       func() time.Time
	instances map[string]*instance
	ops       map[string]*operation
	opSeq     int
	ipSeq     int
	idSeq     uint64
	quotas    map[string]float64
	types     map[string]*compute.MachineType
	families  map[string]string // "project/family" → image name
	images    map[string]bool   // "project/name"
	insertF   []Fault
	callF     []callFault
	calls     map[string]int
}

type callFault struct {
	method, contains string
	fault            Fault
	n                int
}

type instance struct {
	name, machineType string
	id                uint64
	created, deleted  time.Time // deleted zero while not being deleted
	stuck             bool
	metadata          map[string]string
	natIP, ip         string
	diskType          string
	diskGB            int64
	sourceImage       string
	cpus              int64
}

type operation struct {
	name, typ, target string
	created, done     time.Time // done zero: never
	errCode, errMsg   string
}

// New returns a fake cloud with the default quotas (CPUS 24, INSTANCES
// 100), machine types (f1-micro, g1-small, e2-small, e2-medium,
// n1-standard-1, n1-standard-2, n2-standard-4) and images (the families
// debian-cloud/debian-12 and debian-cloud/debian-9).
func New(o Options) *Cloud {
	if o.Project == "" {
		o.Project = "gcloud-project"
	}
	if o.Region == "" {
		o.Region = "us-central1"
	}
	if o.Zone == "" {
		o.Zone = "us-central1-a"
	}
	if o.BuildTime == 0 {
		o.BuildTime = 20 * time.Millisecond
	}
	if o.DeleteTime == 0 {
		o.DeleteTime = 10 * time.Millisecond
	}
	if o.PageSize <= 0 || o.PageSize > 500 {
		o.PageSize = 500
	}
	c := &Cloud{
		opts: o, now: time.Now, auth: newAuthority(o.Project),
		instances: map[string]*instance{}, ops: map[string]*operation{},
		quotas:   map[string]float64{"CPUS": 24, "INSTANCES": 100, "DISKS_TOTAL_GB": 4096, "IN_USE_ADDRESSES": 100},
		types:    map[string]*compute.MachineType{},
		families: map[string]string{}, images: map[string]bool{},
		calls: map[string]int{},
	}
	for _, mt := range []struct {
		name string
		cpus int64
		mem  int64
	}{{"f1-micro", 1, 614}, {"g1-small", 1, 1740}, {"e2-small", 2, 2048}, {"e2-medium", 2, 4096},
		{"n1-standard-1", 1, 3840}, {"n1-standard-2", 2, 7680}, {"n2-standard-4", 4, 16384}} {
		c.AddMachineType(mt.name, mt.cpus, mt.mem)
	}
	c.AddImage("debian-cloud", "debian-12-bookworm-v20260101", "debian-12")
	c.AddImage("debian-cloud", "debian-9-stretch-v20200309", "debian-9")
	return c
}

// Project returns the fake's project.
func (c *Cloud) Project() string { return c.opts.Project }

// Zone returns the fake's zone.
func (c *Cloud) Zone() string { return c.opts.Zone }

// Region returns the fake's region.
func (c *Cloud) Region() string { return c.opts.Region }

const api = "https://www.googleapis.com/compute/v1/"

func (c *Cloud) zoneURL() string { return api + "projects/" + c.opts.Project + "/zones/" + c.opts.Zone }

// AddMachineType adds (or replaces) a machine type of the zone.
func (c *Cloud) AddMachineType(name string, cpus, memoryMB int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.types[name] = &compute.MachineType{
		Kind: "compute#machineType", Name: name, GuestCpus: cpus, MemoryMb: memoryMB,
		Zone: c.opts.Zone, SelfLink: c.zoneURL() + "/machineTypes/" + name,
		Description: fmt.Sprintf("%d vCPUs, %d MB RAM", cpus, memoryMB),
	}
}

// AddImage adds an image to a project, the newest of family when family
// is not "".
func (c *Cloud) AddImage(project, name, family string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.images[project+"/"+name] = true
	if family != "" {
		c.families[project+"/"+family] = name
	}
}

// SetQuota sets the region's limit of a quota metric (CPUS, INSTANCES).
func (c *Cloud) SetQuota(metric string, limit float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.quotas[metric] = limit
}

// FailNextInserts makes the next n instance inserts fail with f.
func (c *Cloud) FailNextInserts(n int, f Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < n; i++ {
		c.insertF = append(c.insertF, f)
	}
}

// FailNext makes the next n requests of method ("" = any) whose path
// contains the string answer with f (FaultRateLimit,
// FaultTooManyRequests, FaultServer or FaultQuota).
func (c *Cloud) FailNext(n int, method, contains string, f Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.callF = append(c.callF, callFault{method: method, contains: contains, fault: f, n: n})
}

// Calls returns how often each API method was called, by its Compute
// Engine name ("compute.instances.insert", ...; "oauth2.token" for
// token requests, "injected" for requests answered by FailNext).
func (c *Cloud) Calls() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.calls))
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

// Instance is what a test sees of an instance.
type Instance struct {
	Name        string
	Status      string
	MachineType string // the type's name
	Metadata    map[string]string
	SourceImage string
	DiskType    string // the disk type's name
	DiskSizeGB  int64
	IP, NatIP   string // private and external addresses
}

// AddInstance adds a RUNNING instance (someone else's, or a leaked one)
// of machine type mt (default e2-small) and returns its name.
func (c *Cloud) AddInstance(name, mt string, metadata map[string]string) string {
	if mt == "" {
		mt = "e2-small"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	in := c.newInstanceLocked(name, mt, metadata, true)
	in.created = c.now().Add(-c.opts.BuildTime - c.opts.ListDelay)
	return name
}

func (c *Cloud) newInstanceLocked(name, mt string, metadata map[string]string, nat bool) *instance {
	c.ipSeq++
	c.idSeq++
	in := &instance{
		name: name, machineType: mt, id: 1000000 + c.idSeq, created: c.now(), metadata: metadata,
		ip: fmt.Sprintf("10.128.%d.%d", c.ipSeq/250, c.ipSeq%250+2), diskType: "pd-standard", diskGB: 10,
	}
	if nat {
		in.natIP = fmt.Sprintf("34.%d.%d.%d", 100+c.ipSeq/62500, c.ipSeq/250%250, c.ipSeq%250+2)
	}
	if t := c.types[mt]; t != nil {
		in.cpus = t.GuestCpus
	}
	c.instances[name] = in
	return in
}

// Instances returns the instances that exist now (listed or not yet),
// sorted by name.
func (c *Cloud) Instances() []Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked()
	out := make([]Instance, 0, len(c.instances))
	for _, in := range c.instances {
		out = append(out, c.viewLocked(in))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Instance returns one instance.
func (c *Cloud) Instance(name string) (Instance, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked()
	in, ok := c.instances[name]
	if !ok {
		return Instance{}, false
	}
	return c.viewLocked(in), true
}

func (c *Cloud) viewLocked(in *instance) Instance {
	md := map[string]string{}
	for k, v := range in.metadata {
		md[k] = v
	}
	return Instance{Name: in.name, Status: c.statusLocked(in), MachineType: in.machineType, Metadata: md,
		SourceImage: in.sourceImage, DiskType: in.diskType, DiskSizeGB: in.diskGB, IP: in.ip, NatIP: in.natIP}
}

// statusLocked derives an instance's status from the clock.
func (c *Cloud) statusLocked(in *instance) string {
	now := c.now()
	switch {
	case !in.deleted.IsZero():
		return "STOPPING"
	case in.stuck || now.Sub(in.created) < c.opts.BuildTime/2:
		return "PROVISIONING"
	case now.Sub(in.created) < c.opts.BuildTime:
		return "STAGING"
	}
	return "RUNNING"
}

// sweepLocked removes the instances whose deletion has finished.
func (c *Cloud) sweepLocked() {
	now := c.now()
	for name, in := range c.instances {
		if !in.deleted.IsZero() && now.Sub(in.deleted) >= c.opts.DeleteTime {
			delete(c.instances, name)
		}
	}
}

// usageLocked returns the CPUs and instances in use.
func (c *Cloud) usageLocked() (cpus, count float64) {
	for _, in := range c.instances {
		cpus += float64(in.cpus)
		count++
	}
	return cpus, count
}

// ServeHTTP answers one API call after the configured latency.
func (c *Cloud) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.opts.Latency > 0 {
		select {
		case <-time.After(c.opts.Latency):
		case <-r.Context().Done():
			return
		}
	}
	if r.URL.Path == "/token" {
		c.count("oauth2.token")
		c.auth.token(w, r)
		return
	}
	if !c.opts.NoAuth && !c.auth.valid(r.Header.Get("Authorization")) {
		apiError(w, http.StatusUnauthorized, "authError", "Request had invalid authentication credentials.")
		return
	}
	c.mu.Lock()
	var fault Fault
	for i := range c.callF {
		f := &c.callF[i]
		if f.n > 0 && (f.method == "" || f.method == r.Method) && strings.Contains(r.URL.Path, f.contains) {
			f.n--
			fault = f.fault
			break
		}
	}
	c.mu.Unlock()
	if fault != 0 && writeFault(w, fault) {
		c.count("injected")
		return
	}
	c.mux().ServeHTTP(w, r)
}

func (c *Cloud) count(method string) {
	c.mu.Lock()
	c.calls[method]++
	c.mu.Unlock()
}
