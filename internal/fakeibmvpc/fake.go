// Package fakeibmvpc is an in-process fake of the IBM Cloud APIs the
// ibmvpc driver uses, reached by IBM's real SDKs over HTTP: the VPC API
// (instances pending → starting → running, floating IPs, images pending →
// available or failed, paginated listings, the cloud's error bodies), the
// IAM token endpoint, the resource manager (resource groups), the resource
// controller (service instances) and an S3-compatible Cloud Object Storage
// endpoint. It models what the driver depends on: asynchronous state
// changes, eventual consistency (new objects are listed only after a
// while), an instance quota answered with over_quota, and injectable
// faults (any status and error code, e.g. 429 throttling, 5xx, capacity),
// plus slow calls.
package fakeibmvpc

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// APIKey is the only API key the fake's IAM endpoint accepts.
const APIKey = "fake-api-key-0123456789"

// Seeded names.
const (
	VPCName      = "nodepool"
	SubnetName   = "sn-nodepool"
	Zone         = "us-south-1"
	KeyName      = "testuser"
	PublicImage  = "ibm-debian-9-13-minimal-amd64-4"
	COSInstance  = "Cloud Object Storage-r6"
	Bucket       = "np-testbucket"
	FailingOS    = "failing-os" // images imported with this OS end failed
	BucketRegion = "us-south-standard"
)

// Cloud is one fake IBM Cloud account.
type Cloud struct {
	// URL serves the VPC API under /v1, IAM under /identity/token, and the
	// resource manager and controller under /v2.
	URL string
	// COSURL serves the object storage (path-style buckets).
	COSURL string

	mu            sync.Mutex
	stepDelay     time.Duration // how long each asynchronous state lasts
	listDelay     time.Duration // how long a new object stays out of listings
	latency       time.Duration // delays every API answer
	instanceQuota int           // instances allowed (0 = no limit)

	seq       int
	tokens    map[string]bool
	instances map[string]*instance
	fips      map[string]*floatingIP
	images    map[string]*image
	groups    map[string]string // id → name
	objects   map[string][]byte // key → content, in Bucket
	profiles  map[string][2]int // name → vCPUs, memory GiB
	faults    []*fault
	failNext  int
	peak      int // most instances alive at once
	calls     map[string]int
}

type fault struct {
	method, prefix string
	status         int
	code, message  string
	times          int
}

// New starts a fake cloud that stops with the test.
func New(t testing.TB) *Cloud {
	c := &Cloud{
		stepDelay: 20 * time.Millisecond,
		listDelay: 10 * time.Millisecond,
		tokens:    map[string]bool{},
		instances: map[string]*instance{},
		fips:      map[string]*floatingIP{},
		images:    map[string]*image{},
		groups:    map[string]string{"rg-default": "Default"},
		objects:   map[string][]byte{},
		profiles:  map[string][2]int{"cx2-2x4": {2, 4}, "bx2-8x32": {8, 32}},
		calls:     map[string]int{},
	}
	pub := c.newImage(PublicImage, "rg-default", "debian-9-amd64")
	pub.public, pub.status = true, "available"
	pub.created = time.Time{}
	api := httptest.NewServer(http.HandlerFunc(c.serveAPI))
	cos := httptest.NewServer(http.HandlerFunc(c.serveCOS))
	t.Cleanup(api.Close)
	t.Cleanup(cos.Close)
	c.URL, c.COSURL = api.URL, cos.URL
	return c
}

// WriteCredentials writes an IBM credentials file for the fake (API key
// authentication, every service's URL pointing at the fake) into dir and
// returns its path.
func (c *Cloud) WriteCredentials(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "ibm-credentials.env")
	body := fmt.Sprintf("VPC_AUTH_TYPE=iam\nVPC_APIKEY=%s\nVPC_AUTH_URL=%s\nVPC_URL=%s/v1\nRESOURCE_MANAGER_URL=%s\nRESOURCE_CONTROLLER_URL=%s\n",
		APIKey, c.URL, c.URL, c.URL, c.URL)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// SetStepDelay sets how long each asynchronous state (pending, starting,
// deleting, ...) lasts; default 20 ms.
func (c *Cloud) SetStepDelay(d time.Duration) { c.mu.Lock(); c.stepDelay = d; c.mu.Unlock() }

// SetListDelay sets how long a new object stays out of listings (eventual
// consistency); default 10 ms.
func (c *Cloud) SetListDelay(d time.Duration) { c.mu.Lock(); c.listDelay = d; c.mu.Unlock() }

// SetLatency delays every answer by d (slow calls).
func (c *Cloud) SetLatency(d time.Duration) { c.mu.Lock(); c.latency = d; c.mu.Unlock() }

// SetInstanceQuota refuses creating instances beyond n (counting those
// being deleted) with the cloud's over_quota error; 0 removes the limit.
func (c *Cloud) SetInstanceQuota(n int) { c.mu.Lock(); c.instanceQuota = n; c.mu.Unlock() }

// Fail makes the next times requests whose method matches (or any, for
// "") and whose path starts with prefix fail with status and an error of
// the given code.
func (c *Cloud) Fail(method, prefix string, status int, code string, times int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = append(c.faults, &fault{method: method, prefix: prefix, status: status, code: code, message: fmt.Sprintf("injected %s", code), times: times})
}

// Calls returns the number of API requests per "METHOD /path-pattern"
// (ids replaced by {id}); "LIST /v1/<collection>" counts whole listings
// (their first pages) on top.
func (c *Cloud) Calls() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.calls))
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

// TotalCalls returns the number of API and object storage requests.
func (c *Cloud) TotalCalls() int {
	n := 0
	for k, v := range c.Calls() {
		if !strings.HasPrefix(k, "LIST ") {
			n += v
		}
	}
	return n
}

func (c *Cloud) nextID(prefix string) string {
	c.seq++
	return fmt.Sprintf("%s-%08d-0000-4000-8000-%012d", prefix, c.seq, c.seq)
}

// GroupID returns the id of the resource group with the given name ("" if
// none).
func (c *Cloud) GroupID(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range c.groups {
		if n == name {
			return id
		}
	}
	return ""
}

// apiError writes the cloud's error body.
func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "0")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors":      []map[string]any{{"code": code, "message": msg, "more_info": "https://cloud.ibm.com/docs/vpc?topic=vpc-rias-error-messages"}},
		"trace":       "fake-trace",
		"status_code": status,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// pattern turns a request path into its call-counting key.
func pattern(method, path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range parts {
		if i > 0 && (strings.Contains(p, "-0000-") || strings.HasPrefix(p, "np")) {
			parts[i] = "{id}"
		}
	}
	return method + " /" + strings.Join(parts, "/")
}

// intercept counts the call, applies latency and faults; it reports
// whether the request was answered.
func (c *Cloud) intercept(w http.ResponseWriter, r *http.Request) bool {
	c.mu.Lock()
	c.calls[pattern(r.Method, r.URL.Path)]++
	if r.Method == http.MethodGet && !r.URL.Query().Has("start") && strings.Count(r.URL.Path, "/") == 2 {
		c.calls["LIST "+r.URL.Path]++ // first pages: one per listing
	}
	lat := c.latency
	var f *fault
	for _, x := range c.faults {
		if x.times > 0 && (x.method == "" || x.method == r.Method) && strings.HasPrefix(r.URL.Path, x.prefix) {
			x.times--
			f = x
			break
		}
	}
	c.mu.Unlock()
	if lat > 0 {
		time.Sleep(lat)
	}
	if f != nil {
		apiError(w, f.status, f.code, f.message)
		return true
	}
	return false
}

func (c *Cloud) serveAPI(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/identity/token" {
		c.serveToken(w, r)
		return
	}
	if !c.authorized(r) {
		apiError(w, http.StatusUnauthorized, "not_authorized", "The request is not authorized.")
		return
	}
	if c.intercept(w, r) {
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/"):
		c.serveVPC(w, r)
	case r.URL.Path == "/v2/resource_groups":
		c.serveGroups(w, r)
	case r.URL.Path == "/v2/resource_instances":
		writeJSON(w, 200, map[string]any{"rows_count": 1, "resources": []map[string]any{{
			"id":   "crn:v1:bluemix:public:cloud-object-storage:global:a/fakeaccount:cos-1::",
			"crn":  "crn:v1:bluemix:public:cloud-object-storage:global:a/fakeaccount:cos-1::",
			"name": COSInstance,
		}}})
	default:
		apiError(w, http.StatusNotFound, "not_found", "no such path "+r.URL.Path)
	}
}

func (c *Cloud) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokens[tok]
}

// serveToken is IAM's API key exchange.
func (c *Cloud) serveToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		writeJSON(w, 400, map[string]any{"errorCode": "BXNIM0109E", "errorMessage": "bad request"})
		return
	}
	if r.Form.Get("apikey") != APIKey {
		writeJSON(w, 400, map[string]any{"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found."})
		return
	}
	now := time.Now().Unix()
	claims, _ := json.Marshal(map[string]any{"iat": now, "exp": now + 3600, "sub": "fake"})
	enc := base64.RawURLEncoding
	c.mu.Lock()
	c.seq++
	tok := enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString([]byte(fmt.Sprint(c.seq)))
	c.tokens[tok] = true
	c.mu.Unlock()
	writeJSON(w, 200, map[string]any{"access_token": tok, "refresh_token": "not-supported", "token_type": "Bearer", "expires_in": 3600, "expiration": now + 3600})
}

func (c *Cloud) serveGroups(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Method == http.MethodPost {
		var body struct{ Name string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		for _, n := range c.groups {
			if n == body.Name {
				c.mu.Unlock()
				apiError(w, 400, "resource_group_exists", "resource group exists")
				c.mu.Lock()
				return
			}
		}
		id := c.nextID("rg")
		c.groups[id] = body.Name
		writeJSON(w, 201, map[string]any{"id": id, "crn": "crn:v1:bluemix:public:resource-controller::a/fakeaccount::resource-group:" + id})
		return
	}
	var out []map[string]any
	for id, n := range c.groups {
		out = append(out, map[string]any{"id": id, "name": n, "state": "ACTIVE"})
	}
	writeJSON(w, 200, map[string]any{"resources": out})
}
