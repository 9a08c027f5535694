// Package fakeaws is an in-process fake of the three AWS APIs the aws
// driver uses — EC2 (query protocol, XML answers), S3 (REST) and Service
// Quotas (JSON 1.1) — served over real HTTP so that tests drive the real
// aws-sdk-go-v2 clients through an endpoint override (AWS_ENDPOINT_URL).
//
// It models what the driver depends on: instances that go pending →
// running → shutting-down → terminated and stay listed as terminated for
// a while, an instance not visible in DescribeInstances right after
// RunInstances, vCPU quotas per service-quota code, import tasks that
// progress (and can fail), tags on every resource, AWS's error codes and
// bodies, and injectable faults (capacity, quota, throttling, 5xx,
// latency).
package fakeaws

import (
	"fmt"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"
)

// Options tune the fake's timing; zero values mean "immediate".
type Options struct {
	PendingTime  time.Duration // pending → running
	ShutdownTime time.Duration // shutting-down → terminated
	// TerminatedLinger is how long a terminated instance stays listed.
	TerminatedLinger time.Duration
	// Invisible is how long a new instance is missing from
	// DescribeInstances (eventual consistency).
	Invisible  time.Duration
	ImportTime time.Duration // how long an import task runs
	Latency    time.Duration // added to every request
	Region     string        // default us-west-2
}

// InstanceType is an EC2 instance type the fake knows.
type InstanceType struct {
	Name         string
	VCPUs        int
	Cores        int
	MemoryMiB    int
	OnDemandCode string // the service-quota code counting its vCPUs on demand
	SpotCode     string // the code counting its vCPUs as spot
}

// Instance is an EC2 instance as the fake keeps it.
type Instance struct {
	ID             string
	ImageID        string
	InstanceType   string
	KeyName        string
	SubnetID       string
	SecurityGroups []string
	PublicIPv4     bool // AssociatePublicIpAddress
	IPv6Count      int
	UserData       string
	IAMProfileName string
	IAMProfileARN  string
	EBSOptimized   bool
	Spot           bool
	Tags           map[string]string
	VolumeTags     map[string]string
	BlockDevices   []BlockDevice // as requested
	PrivateIP      string
	PublicIP       string
	IPv6           string
	AZ             string

	created    time.Time
	terminated time.Time // zero while alive
}

// BlockDevice is a block-device mapping.
type BlockDevice struct {
	DeviceName          string
	SnapshotID          string
	VolumeSize          int
	VolumeType          string
	IOPS                int
	Throughput          int
	DeleteOnTermination bool
	Encrypted           bool
}

// Image is an AMI.
type Image struct {
	ID           string
	Name         string
	CreationDate string // RFC 3339
	Owner        string // "self" for ours
	Architecture string
	ENASupport   bool
	BlockDevices []BlockDevice
	Tags         map[string]string
}

// Snapshot is an EBS snapshot.
type Snapshot struct {
	ID          string
	VolumeSize  int
	Description string
	Tags        map[string]string
}

// Volume is an EBS volume.
type Volume struct {
	ID   string
	Tags map[string]string
}

// Object is an S3 object.
type Object struct {
	Bucket, Key string
	Data        []byte
	Tags        map[string]string
}

type importTask struct {
	id       string
	image    bool // ImportImage rather than ImportSnapshot
	bucket   string
	key      string
	arch     string
	tags     map[string]string
	started  time.Time
	fail     bool
	snapshot string // set when done
	imageID  string // set when done (image imports)
}

// Cloud is one fake AWS account and region.
type Cloud struct {
	URL  string // the endpoint to give the SDK
	opts Options

	mu        sync.Mutex
	seq       int
	instances map[string]*Instance
	images    map[string]*Image
	snapshots map[string]*Snapshot
	volumes   map[string]*Volume
	tasks     map[string]*importTask
	buckets   map[string]map[string]*Object
	types     map[string]InstanceType
	quotas    map[string]float64
	faults    []fault
	failImp   int
	calls     map[string]int
}

type fault struct {
	action string // "" = any EC2 action
	status int
	code   string
	msg    string
}

// Setup starts a fake on an httptest server closed when the test ends. It
// knows the instance types t3.medium, t3.large, m6i.32xlarge and
// u-6tb1.112xlarge with their quota codes (limits: 640 vCPUs standard on
// demand and spot, 448 high memory), has an empty bucket "nodepool" and a
// public image "ami-1e749f67".
func Setup(t testing.TB, opts Options) *Cloud {
	t.Helper()
	if opts.Region == "" {
		opts.Region = "us-west-2"
	}
	c := &Cloud{
		opts:      opts,
		instances: map[string]*Instance{},
		images:    map[string]*Image{},
		snapshots: map[string]*Snapshot{},
		volumes:   map[string]*Volume{},
		tasks:     map[string]*importTask{},
		buckets:   map[string]map[string]*Object{"nodepool": {}},
		types:     map[string]InstanceType{},
		quotas:    map[string]float64{},
		calls:     map[string]int{},
	}
	// Default quotas as AWS gives a new account (vCPUs).
	c.quotas["L-1216C47A"], c.quotas["L-34B43A08"], c.quotas["L-43DA4232"] = 640, 640, 448
	for _, it := range []InstanceType{
		{Name: "t3.medium", VCPUs: 2, Cores: 1, MemoryMiB: 4096, OnDemandCode: "L-1216C47A", SpotCode: "L-34B43A08"},
		{Name: "t3.large", VCPUs: 2, Cores: 1, MemoryMiB: 8192, OnDemandCode: "L-1216C47A", SpotCode: "L-34B43A08"},
		{Name: "m6i.32xlarge", VCPUs: 128, Cores: 64, MemoryMiB: 524288, OnDemandCode: "L-1216C47A", SpotCode: "L-34B43A08"},
		{Name: "u-6tb1.112xlarge", VCPUs: 448, Cores: 224, MemoryMiB: 6291456, OnDemandCode: "L-43DA4232"},
	} {
		c.types[it.Name] = it
	}
	c.images["ami-1e749f67"] = &Image{ID: "ami-1e749f67", Name: "ubuntu-trusty-14.04", CreationDate: "2020-01-01T00:00:00.000Z", Owner: "099720109477",
		Architecture: "x86_64", BlockDevices: []BlockDevice{{DeviceName: "/dev/sda1", SnapshotID: "snap-public", VolumeSize: 8, VolumeType: "gp2", Encrypted: false}}}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

func (c *Cloud) newID(prefix string) string {
	c.seq++
	return fmt.Sprintf("%s-%017x", prefix, c.seq)
}

// AddInstanceType makes an instance type known.
func (c *Cloud) AddInstanceType(it InstanceType) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.types[it.Name] = it
}

// SetQuota sets the vCPU limit of a service-quota code.
func (c *Cloud) SetQuota(code string, vcpus float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.quotas[code] = vcpus
}

// AddImage adds an AMI and returns its id.
func (c *Cloud) AddImage(img Image) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if img.ID == "" {
		img.ID = c.newID("ami")
	}
	if img.CreationDate == "" {
		img.CreationDate = time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	}
	if img.Owner == "" {
		img.Owner = "self"
	}
	c.images[img.ID] = &img
	return img.ID
}

// AddInstance adds a running instance (e.g. a leak or someone else's)
// and returns its id.
func (c *Cloud) AddInstance(in Instance) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if in.ID == "" {
		in.ID = c.newID("i")
	}
	if in.InstanceType == "" {
		in.InstanceType = "t3.medium"
	}
	in.created = time.Now().Add(-time.Hour)
	in.PrivateIP = fmt.Sprintf("10.0.%d.%d", c.seq/250, c.seq%250+1)
	in.AZ = c.opts.Region + "a"
	c.instances[in.ID] = &in
	return in.ID
}

// AddVolume adds a volume and returns its id.
func (c *Cloud) AddVolume(tags map[string]string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.newID("vol")
	c.volumes[id] = &Volume{ID: id, Tags: tags}
	return id
}

// AddSnapshot adds a snapshot and returns its id.
func (c *Cloud) AddSnapshot(s Snapshot) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.ID = c.newID("snap")
	c.snapshots[s.ID] = &s
	return s.ID
}

// PutObject stores an S3 object.
func (c *Cloud) PutObject(o Object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buckets[o.Bucket] == nil {
		c.buckets[o.Bucket] = map[string]*Object{}
	}
	c.buckets[o.Bucket][o.Key] = &o
}

// FailNext makes the next n calls of an EC2 action ("" = any) answer
// with the given AWS error code (HTTP 400; 503 for RequestLimitExceeded
// and InsufficientInstanceCapacity, 500 for InternalError).
func (c *Cloud) FailNext(n int, action, code string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	status := 400
	switch code {
	case "RequestLimitExceeded", "Unavailable":
		status = 503
	case "InternalError":
		status = 500
	case "InsufficientInstanceCapacity":
		status = 500
	}
	for i := 0; i < n; i++ {
		c.faults = append(c.faults, fault{action: action, status: status, code: code, msg: faultMessage(code)})
	}
}

func faultMessage(code string) string {
	switch code {
	case "InsufficientInstanceCapacity":
		return "We currently do not have sufficient capacity in the Availability Zone you requested."
	case "InstanceLimitExceeded":
		return "You have requested more instances than your current instance limit allows for the specified instance type."
	case "VcpuLimitExceeded":
		return "You have requested more vCPU capacity than your current vCPU limit allows."
	case "RequestLimitExceeded":
		return "Request limit exceeded."
	}
	return "An internal error has occurred."
}

// FailNextImport makes the next import task fail.
func (c *Cloud) FailNextImport() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failImp++
}

// Instance returns a copy of an instance and whether it exists (a
// terminated one that is no longer listed does not).
func (c *Cloud) Instance(id string) (Instance, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.instances[id]
	if !ok || c.stateLocked(in) == "gone" {
		return Instance{}, false
	}
	return *in, true
}

// InstanceState returns an instance's state name ("" when unknown).
func (c *Cloud) InstanceState(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.instances[id]
	if !ok {
		return ""
	}
	return c.stateLocked(in)
}

// Alive returns the ids of instances that are not shutting down or
// terminated, sorted.
func (c *Cloud) Alive() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for id, in := range c.instances {
		if s := c.stateLocked(in); s == "pending" || s == "running" {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// Images returns a copy of every AMI.
func (c *Cloud) Images() map[string]Image {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]Image{}
	for id, i := range c.images {
		out[id] = *i
	}
	return out
}

// Snapshots returns a copy of every snapshot.
func (c *Cloud) Snapshots() map[string]Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]Snapshot{}
	for id, s := range c.snapshots {
		out[id] = *s
	}
	return out
}

// VolumeIDs returns the ids of every volume.
func (c *Cloud) VolumeIDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for id := range c.volumes {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Objects returns the keys of a bucket's objects.
func (c *Cloud) Objects(bucket string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k := range c.buckets[bucket] {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Calls returns how many times each API action was called (EC2 action
// names, "s3:<method>", "servicequotas:<operation>").
func (c *Cloud) Calls() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.calls))
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

// stateLocked returns an instance's state now: pending, running,
// shutting-down, terminated, or gone (no longer listed).
func (c *Cloud) stateLocked(in *Instance) string {
	now := time.Now()
	if !in.terminated.IsZero() {
		switch {
		case now.Before(in.terminated.Add(c.opts.ShutdownTime)):
			return "shutting-down"
		case now.Before(in.terminated.Add(c.opts.ShutdownTime + c.opts.TerminatedLinger)):
			return "terminated"
		}
		return "gone"
	}
	if now.Before(in.created.Add(c.opts.PendingTime)) {
		return "pending"
	}
	return "running"
}

// vcpusInUseLocked sums the vCPUs that count against a quota code.
func (c *Cloud) vcpusInUseLocked(code string) float64 {
	var n float64
	for _, in := range c.instances {
		if s := c.stateLocked(in); s != "pending" && s != "running" {
			continue
		}
		it := c.types[in.InstanceType]
		if (in.Spot && it.SpotCode == code) || (!in.Spot && it.OnDemandCode == code) {
			n += float64(it.VCPUs)
		}
	}
	return n
}

// ClearTags removes every tag of an AMI or snapshot (as EC2 leaves them
// after an import).
func (c *Cloud) ClearTags(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.images[id] != nil:
		c.images[id].Tags = nil
	case c.snapshots[id] != nil:
		c.snapshots[id].Tags = nil
	default:
		return fmt.Errorf("fakeaws: no AMI or snapshot %s", id)
	}
	return nil
}
