// Package fakeazure is an in-process fake of the parts of Azure Resource
// Manager the Azure driver uses, served over HTTPS so that the real Azure
// SDK for Go talks to it: an Azure AD token endpoint, resource groups,
// virtual machines, managed disks (with upload access and a page-blob
// endpoint), images, network interfaces, public IP addresses, subnets,
// compute SKUs and usages. Writes are asynchronous operations announced
// with Azure-AsyncOperation and Location headers and completed after a
// delay; new resources are listed only after a further delay (eventual
// consistency); quotas refuse with OperationNotAllowed; faults (5xx,
// throttling with Retry-After, SkuNotAvailable, AllocationFailed, slow
// calls) can be injected. It is a test helper, as small as the driver
// needs.
package fakeazure

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Default identities of the fake.
const (
	Subscription = "00000000-0000-0000-0000-00000000c0de"
	Tenant       = "11111111-1111-1111-1111-11111111c0de"
	ClientID     = "fake-client"
	ClientSecret = "fake-secret-do-not-log"
)

// SKU is a VM size the fake offers.
type SKU struct {
	Name     string  // e.g. Standard_B1ls
	Family   string  // quota family, e.g. standardBSFamily
	VCPUs    int     // vCPUs capability
	MemoryGB float64 // MemoryGB capability
}

// Fault is an injected failure of matching requests.
type Fault struct {
	Method string // HTTP method ("" = any)
	Path   string // substring of the lower-case path ("" = any)
	Status int    // HTTP status of the answer
	Code   string // Azure error code (error.code)
	Msg    string // error.message
	// RetryAfter, when positive, is sent as the Retry-After header (s).
	RetryAfter int
	Times      int // how many requests fail (0 = one)
}

// Cloud is the fake. Its exported fields may be changed between calls
// while holding no lock only before the first request; use the setters
// afterwards.
type Cloud struct {
	srv *httptest.Server

	mu         sync.Mutex
	res        map[string]*resource // by lower-case id
	ops        map[string]*operation
	blobs      map[string][]byte // disk name -> uploaded bytes
	groups     map[string]string // resource group -> location
	subnets    map[string]bool   // lower-case subnet ids
	skus       []SKU
	coreLimit  float64
	vmLimit    float64
	famLimit   map[string]float64
	faults     []*Fault
	allocFails int
	latency    time.Duration
	opDelay    time.Duration
	listDelay  time.Duration
	nextIP     int
	seq        int

	calls    atomic.Int64
	byMethod sync.Map // "GET list" etc. -> *atomic.Int64
}

type resource struct {
	id      string
	typ     string // lower-case type, e.g. microsoft.compute/virtualmachines
	body    map[string]any
	created time.Time
	deleted bool // a delete is under way
}

type operation struct {
	id     string
	due    time.Time
	apply  func() // under the lock, when due
	code   string // failure code ("" = success)
	msg    string
	result map[string]any // body of the Location URL once done
	done   bool
}

// New starts a fake with one resource group "nodepool" in centralus, a
// virtual network "NodePool" with subnet "default", a few B-series SKUs,
// unlimited quotas and short delays; it is closed with Close.
func New() *Cloud {
	c := &Cloud{
		res:       map[string]*resource{},
		ops:       map[string]*operation{},
		blobs:     map[string][]byte{},
		groups:    map[string]string{},
		subnets:   map[string]bool{},
		coreLimit: math.Inf(1),
		vmLimit:   math.Inf(1),
		famLimit:  map[string]float64{},
		opDelay:   30 * time.Millisecond,
		listDelay: 30 * time.Millisecond,
		skus: []SKU{
			{Name: "Standard_B1ls", Family: "standardBSFamily", VCPUs: 1, MemoryGB: 0.5},
			{Name: "Standard_B2s", Family: "standardBSFamily", VCPUs: 2, MemoryGB: 4},
			{Name: "Standard_D4s_v3", Family: "standardDSv3Family", VCPUs: 4, MemoryGB: 16},
		},
	}
	c.AddSubnet("nodepool", "NodePool", "default")
	c.srv = httptest.NewTLSServer(http.HandlerFunc(c.serve))
	return c
}

// URL is the base URL of the fake (Resource Manager, Azure AD and blobs).
func (c *Cloud) URL() string { return c.srv.URL }

// Client returns an HTTP client that trusts the fake's certificate.
func (c *Cloud) Client() *http.Client { return c.srv.Client() }

// Close stops the server.
func (c *Cloud) Close() { c.srv.Close() }

// AddSubnet makes a subnet of a virtual network exist.
func (c *Cloud) AddSubnet(group, vnet, subnet string) string {
	id := SubnetID(group, vnet, subnet)
	c.mu.Lock()
	c.subnets[strings.ToLower(id)] = true
	c.mu.Unlock()
	return id
}

// SubnetID returns the resource id of a subnet.
func SubnetID(group, vnet, subnet string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/virtualNetworks/%s/subnets/%s", Subscription, group, vnet, subnet)
}

// SetDelays sets how long asynchronous operations take and how long new
// resources stay out of listings.
func (c *Cloud) SetDelays(op, list time.Duration) {
	c.mu.Lock()
	c.opDelay, c.listDelay = op, list
	c.mu.Unlock()
}

// Settle completes every asynchronous operation under way now.
func (c *Cloud) Settle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, op := range c.ops {
		op.due = time.Time{}
	}
	c.tickLocked()
}

// SetLatency delays every answer (slow calls).
func (c *Cloud) SetLatency(d time.Duration) {
	c.mu.Lock()
	c.latency = d
	c.mu.Unlock()
}

// SetQuota sets the regional cores and virtual machines limits (negative
// = unlimited).
func (c *Cloud) SetQuota(cores, vms float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.coreLimit, c.vmLimit = unlimited(cores), unlimited(vms)
}

// SetFamilyQuota sets the cores limit of a VM family.
func (c *Cloud) SetFamilyQuota(family string, cores float64) {
	c.mu.Lock()
	c.famLimit[family] = unlimited(cores)
	c.mu.Unlock()
}

func unlimited(v float64) float64 {
	if v < 0 {
		return math.Inf(1)
	}
	return v
}

// Inject adds a fault.
func (c *Cloud) Inject(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	c.mu.Lock()
	c.faults = append(c.faults, &f)
	c.mu.Unlock()
}

// FailAllocations makes the next n VM creations fail asynchronously with
// AllocationFailed (no capacity).
func (c *Cloud) FailAllocations(n int) {
	c.mu.Lock()
	c.allocFails += n
	c.mu.Unlock()
}

// Calls returns the number of API requests answered so far.
func (c *Cloud) Calls() int64 { return c.calls.Load() }

// CallsOf returns the number of requests of a kind: the method and the
// last resource type of the path, e.g. "GET virtualmachines" (a list or a
// get), "PUT networkinterfaces", "GET operations".
func (c *Cloud) CallsOf(kind string) int64 {
	if v, ok := c.byMethod.Load(kind); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// Resource is a resource as the fake stores it.
type Resource struct {
	ID   string            // its id
	Name string            // its name
	Type string            // its type, e.g. Microsoft.Compute/virtualMachines
	Tags map[string]string // its tags
	// State is properties.provisioningState.
	State string
	Body  map[string]any // the full JSON body
}

// Resources returns the stored resources of a type (case-insensitive,
// e.g. "Microsoft.Compute/virtualMachines"), including ones not listed
// yet.
func (c *Cloud) Resources(typ string) []Resource {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tickLocked()
	var out []Resource
	for _, r := range c.res {
		if r.typ != strings.ToLower(typ) {
			continue
		}
		out = append(out, Resource{ID: r.id, Name: str(r.body["name"]), Type: str(r.body["type"]),
			Tags: tagsOf(r.body), State: state(r.body), Body: deepCopy(r.body)})
	}
	return out
}

// Blob returns the bytes uploaded to a disk.
func (c *Cloud) Blob(disk string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.blobs[strings.ToLower(disk)]...)
}

// CreateTagged stores a ready resource directly (a leak left by a crashed
// launcher), e.g. CreateTagged("Microsoft.Network/publicIPAddresses",
// "nodepool", "np1-pip-IPv4", tags).
func (c *Cloud) CreateTagged(typ, group, name string, tags map[string]string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", Subscription, group, typ, name)
	t := map[string]any{}
	for k, v := range tags {
		t[k] = v
	}
	c.res[strings.ToLower(id)] = &resource{id: id, typ: strings.ToLower(typ), created: time.Time{},
		body: map[string]any{"id": id, "name": name, "type": typ, "location": "centralus", "tags": t,
			"properties": map[string]any{"provisioningState": "Succeeded"}}}
	return id
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func tagsOf(body map[string]any) map[string]string {
	out := map[string]string{}
	if m, ok := body["tags"].(map[string]any); ok {
		for k, v := range m {
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

func props(body map[string]any) map[string]any {
	p, ok := body["properties"].(map[string]any)
	if !ok {
		p = map[string]any{}
		body["properties"] = p
	}
	return p
}

func state(body map[string]any) string { return str(props(body)["provisioningState"]) }

// tickLocked completes the operations that are due.
func (c *Cloud) tickLocked() {
	now := time.Now()
	for _, op := range c.ops {
		if !op.done && !now.Before(op.due) {
			op.done = true
			if op.apply != nil {
				op.apply()
			}
		}
	}
}

// startOp registers an asynchronous operation completing after the delay.
func (c *Cloud) startOp(apply func()) *operation {
	c.seq++
	op := &operation{id: fmt.Sprintf("op-%06d", c.seq), due: time.Now().Add(c.opDelay), apply: apply}
	c.ops[op.id] = op
	return op
}
