package simcloud

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/nodepool-go/nodepool/driver"
)

// Server statuses.
const (
	StatusBuild  = "BUILD"
	StatusActive = "ACTIVE"
	StatusError  = "ERROR"
)

// Server is one simulated instance.
type Server struct {
	ID          string            `json:"id"`                     // server id
	Name        string            `json:"name"`                   // server name (the node hostname)
	Status      string            `json:"status"`                 // StatusBuild, StatusActive or StatusError
	Fault       string            `json:"fault,omitempty"`        // error message of an ERROR server
	Metadata    map[string]string `json:"metadata,omitempty"`     // its metadata (ownership keys)
	Flavor      string            `json:"flavor,omitempty"`       // flavor name
	Cores       int               `json:"cores"`                  // cores it uses
	RAM         int               `json:"ram"`                    // RAM it uses (MiB)
	Image       string            `json:"image,omitempty"`        // image id or name it booted from
	AZ          string            `json:"az,omitempty"`           // availability zone
	Region      string            `json:"region,omitempty"`       // region
	HostID      string            `json:"host_id,omitempty"`      // simulated hypervisor id
	PublicIPv4  string            `json:"public_ipv4,omitempty"`  // public IPv4 address
	PublicIPv6  string            `json:"public_ipv6,omitempty"`  // public IPv6 address
	PrivateIPv4 string            `json:"private_ipv4,omitempty"` // private IPv4 address
	HostKey     string            `json:"host_key,omitempty"`     // the SSH host key it reports
	Created     time.Time         `json:"created"`                // creation time (the cloud's clock)
	// ReadyAt is when a BUILD server becomes ACTIVE.
	ReadyAt time.Time `json:"ready_at"`
	// Held servers stay in BUILD until the create hang is released.
	Held bool `json:"held,omitempty"`
}

// Image is one image in the cloud: a cloud image or an upload.
type Image struct {
	ID        string            `json:"id"`                  // image id
	Name      string            `json:"name"`                // image name
	Format    string            `json:"format,omitempty"`    // file format of an upload
	Diskimage string            `json:"diskimage,omitempty"` // the diskimage an upload was built from
	Metadata  map[string]string `json:"metadata,omitempty"`  // image metadata (ownership keys of uploads)
	Status    string            `json:"status"`              // "active"
	Created   time.Time         `json:"created"`             // creation time (the cloud's clock)
	// Public marks the cloud images from the configuration.
	Public bool `json:"public,omitempty"`
}

// Counters counts the calls a cloud served.
type Counters struct {
	Creates       int // create calls, failed ones included
	Deletes       int // server delete calls
	Lists         int // ListInstances calls
	ListResources int // ListResources calls
	Uploads       int // image upload calls
	ImageDeletes  int // image delete calls
}

// Cloud is an in-process simulated cloud. All methods are safe for
// concurrent use.
type Cloud struct {
	name string

	mu      sync.Mutex
	now     func() time.Time
	servers map[string]*Server
	images  map[string]*Image
	seq     uint64
	seeded  map[string]bool
	// usage of all servers, kept for O(1) quota checks.
	usedCores, usedRAM int

	applied    *Knobs // the knobs last applied from a configuration
	knobs      Knobs
	hang       bool
	listErr    error
	imageErr   error
	hostKey    string // SetHostKey
	failCreate int
	failErr    error // what failed creates return; nil for a generic error
	failWithID int
	failDelete int
	failUpload int
	failImgDel int
	counters   Counters
	saveErr    error
	// The state file's lock and the file as last read or written (share.go).
	flock     *os.File
	flockPath string
	flocked   bool
	seen      os.FileInfo
}

var (
	registryMu sync.Mutex
	clouds     = map[string]*Cloud{}
)

// Get returns the process-wide cloud of that name, creating an empty one
// (unlimited quota, no images) if none exists.
func Get(name string) *Cloud {
	registryMu.Lock()
	defer registryMu.Unlock()
	c, ok := clouds[name]
	if !ok {
		c = NewCloud(name)
		clouds[name] = c
	}
	return c
}

// Forget drops a cloud from the process-wide registry (the next Get or
// Open creates a fresh one, as after a process restart).
func Forget(name string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	delete(clouds, name)
}

// NewCloud returns an empty cloud outside the registry.
func NewCloud(name string) *Cloud {
	return &Cloud{
		name:    name,
		now:     time.Now,
		servers: map[string]*Server{},
		images:  map[string]*Image{},
		seeded:  map[string]bool{},
		knobs:   Knobs{Quota: UnlimitedQuota()},
	}
}

// Name returns the cloud's name.
func (c *Cloud) Name() string { return c.name }

// SetClock replaces the cloud's clock (time.Now by default).
func (c *Cloud) SetClock(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now == nil {
		now = time.Now
	}
	c.now = now
}

// Now returns the cloud's current time.
func (c *Cloud) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now()
}

// Configure applies configured knobs and loads the state file. Knobs are
// only re-applied when they differ from the last configured ones, so the
// settings a test changed survive a provider restart with the same config.
func (c *Cloud) Configure(k Knobs) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applied == nil || !reflect.DeepEqual(*c.applied, k) {
		kk := k
		kk.AZs = append([]string(nil), k.AZs...)
		kk.Images = append([]string(nil), k.Images...)
		c.applied = &kk
		c.knobs = kk
	}
	err := c.lockFileLocked() // loads the file when new or changed
	defer c.unlockFileLocked()
	c.addPublicImagesLocked(k.Images)
	c.saveLocked()
	return err
}

func (c *Cloud) addPublicImagesLocked(names []string) {
	for _, n := range names {
		if _, ok := c.images[n]; !ok {
			c.images[n] = &Image{ID: n, Name: n, Status: "active", Public: true, Created: c.now()}
		}
	}
}

// Reset removes every server and uploaded image, restores the configured
// knobs and cloud images, and clears injected failures and counters.
func (c *Cloud) Reset() {
	c.lock()
	defer c.unlock()
	c.servers = map[string]*Server{}
	c.images = map[string]*Image{}
	c.seeded = map[string]bool{}
	c.usedCores, c.usedRAM = 0, 0
	c.knobs = Knobs{Quota: UnlimitedQuota()}
	if c.applied != nil {
		c.knobs = *c.applied
		c.addPublicImagesLocked(c.applied.Images)
	}
	c.hang, c.listErr, c.imageErr, c.hostKey = false, nil, nil, ""
	c.failCreate, c.failWithID, c.failDelete, c.failUpload, c.failImgDel = 0, 0, 0, 0, 0
	c.failErr = nil
	c.counters = Counters{}
	c.saveLocked()
}

// FailNextCreates makes the next n create calls fail with a generic error
// before any server exists.
func (c *Cloud) FailNextCreates(n int) { c.FailNextCreatesWith(n, nil) }

// FailNextCreatesWith makes the next n create calls fail with err (e.g. a
// driver.TransientError) before any server exists; nil means a generic
// error.
func (c *Cloud) FailNextCreatesWith(n int, err error) {
	c.mu.Lock()
	c.failCreate, c.failErr = n, err
	c.mu.Unlock()
}

// FailNextCreatesWithID makes the next n created servers go to ERROR: the
// machine learns the server's id, then fails with metric "error.status".
func (c *Cloud) FailNextCreatesWithID(n int) { c.mu.Lock(); c.failWithID = n; c.mu.Unlock() }

// FailNextDeletes makes the next n server delete calls fail.
func (c *Cloud) FailNextDeletes(n int) { c.mu.Lock(); c.failDelete = n; c.mu.Unlock() }

// FailNextUploads makes the next n image uploads fail.
func (c *Cloud) FailNextUploads(n int) { c.mu.Lock(); c.failUpload = n; c.mu.Unlock() }

// FailNextImageDeletes makes the next n image deletes fail.
func (c *Cloud) FailNextImageDeletes(n int) { c.mu.Lock(); c.failImgDel = n; c.mu.Unlock() }

// SetCreateHang holds new servers in BUILD while on; turning it off
// releases every held server.
func (c *Cloud) SetCreateHang(on bool) {
	c.lock()
	defer c.unlock()
	c.hang = on
	if !on {
		for _, s := range c.servers {
			s.Held = false
		}
		c.saveLocked()
	}
}

// SetQuota sets the cloud's limits; a negative value is unlimited.
func (c *Cloud) SetQuota(instances, cores, ram int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.knobs.Quota = Quota{Instances: instances, Cores: cores, RAM: ram}
}

// SetListError makes ListInstances and ListResources fail with err (nil
// clears it).
func (c *Cloud) SetListError(err error) { c.mu.Lock(); c.listErr = err; c.mu.Unlock() }

// SetHostKey makes servers created from now on report key as their SSH
// host key ("" restores fresh keys), e.g. to play a hostile server.
func (c *Cloud) SetHostKey(key string) { c.mu.Lock(); c.hostKey = key; c.mu.Unlock() }

func (c *Cloud) hostKeyOverride() string { c.mu.Lock(); defer c.mu.Unlock(); return c.hostKey }

// SetImageLookupError makes image lookups (a label's cloud image) fail
// with err, as a cloud refusing authentication does (nil restores them).
func (c *Cloud) SetImageLookupError(err error) { c.mu.Lock(); c.imageErr = err; c.mu.Unlock() }

func (c *Cloud) imageLookupError() error { c.mu.Lock(); defer c.mu.Unlock(); return c.imageErr }

// SetLatency sets the time every API call takes.
func (c *Cloud) SetLatency(d time.Duration) { c.mu.Lock(); c.knobs.APILatency = d; c.mu.Unlock() }

// SetBootTime sets the BUILD→ACTIVE time range of new servers.
func (c *Cloud) SetBootTime(lo, hi time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hi < lo {
		hi = lo
	}
	c.knobs.BootTimeMin, c.knobs.BootTimeMax = lo, hi
}

// SetFailureRates sets the probabilities (0..1) of a create or delete
// call failing.
func (c *Cloud) SetFailureRates(create, del float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.knobs.CreateFailureRate, c.knobs.DeleteFailureRate = create, del
}

// SetAZs sets the availability zones (none: any requested zone is
// accepted).
func (c *Cloud) SetAZs(azs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.knobs.AZs = append([]string(nil), azs...)
}

// AZs returns the availability zones.
func (c *Cloud) AZs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.knobs.AZs...)
}

// Quota returns the cloud's limits.
func (c *Cloud) Quota() Quota {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.knobs.Quota
}

// Counters returns the call counters.
func (c *Cloud) Counters() Counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counters
}

// SaveError returns the error of the last state-file write, if any.
func (c *Cloud) SaveError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.saveErr
}

// AddInstance injects a server (e.g. a leaked or foreign one). Missing
// fields are filled in: id, status ACTIVE, addresses, host id and key.
// It returns the stored server.
func (c *Cloud) AddInstance(s Server) Server {
	c.lock()
	defer c.unlock()
	now := c.now()
	s.Metadata = copyMap(s.Metadata)
	if s.ID == "" {
		s.ID = uuid.NewString()
	}
	if s.Status == "" {
		s.Status = StatusActive
	}
	if s.Created.IsZero() {
		s.Created = now
	}
	if s.ReadyAt.IsZero() {
		s.ReadyAt = now
	}
	c.fillAddressesLocked(&s)
	if old, ok := c.servers[s.ID]; ok {
		c.usedCores -= old.Cores
		c.usedRAM -= old.RAM
	}
	c.servers[s.ID] = &s
	c.usedCores += s.Cores
	c.usedRAM += s.RAM
	c.saveLocked()
	return s
}

// RemoveInstance deletes a server without counting a delete call.
func (c *Cloud) RemoveInstance(id string) bool {
	c.lock()
	defer c.unlock()
	ok := c.removeLocked(id)
	c.saveLocked()
	return ok
}

// SetServerStatus changes a server's status (and fault message).
func (c *Cloud) SetServerStatus(id, status, fault string) error {
	c.lock()
	defer c.unlock()
	s, ok := c.servers[id]
	if !ok {
		return driver.NotFoundError("server %s not found", id)
	}
	s.Status, s.Fault, s.Held = status, fault, false
	s.ReadyAt = c.now()
	c.saveLocked()
	return nil
}

// Instances returns a snapshot of every server, sorted by creation.
func (c *Cloud) Instances() []Server {
	c.lock()
	defer c.unlock()
	now := c.now()
	out := make([]Server, 0, len(c.servers))
	for _, s := range c.servers {
		c.refreshLocked(s, now)
		cp := *s
		cp.Metadata = copyMap(s.Metadata)
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Server returns one server.
func (c *Cloud) Server(id string) (Server, bool) {
	c.lock()
	defer c.unlock()
	s, ok := c.servers[id]
	if !ok {
		return Server{}, false
	}
	c.refreshLocked(s, c.now())
	cp := *s
	cp.Metadata = copyMap(s.Metadata)
	return cp, true
}

// Images returns a snapshot of every image, sorted by id.
func (c *Cloud) Images() []Image {
	c.lock()
	defer c.unlock()
	out := make([]Image, 0, len(c.images))
	for _, im := range c.images {
		cp := *im
		cp.Metadata = copyMap(im.Metadata)
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// AddImage injects an image; an empty id is generated. It returns the id.
func (c *Cloud) AddImage(im Image) string {
	c.lock()
	defer c.unlock()
	if im.ID == "" {
		im.ID = uuid.NewString()
	}
	if im.Status == "" {
		im.Status = "active"
	}
	if im.Created.IsZero() {
		im.Created = c.now()
	}
	im.Metadata = copyMap(im.Metadata)
	c.images[im.ID] = &im
	c.saveLocked()
	return im.ID
}

// RemoveImage deletes an image without counting a call.
func (c *Cloud) RemoveImage(id string) bool {
	c.lock()
	defer c.unlock()
	_, ok := c.images[id]
	delete(c.images, id)
	c.saveLocked()
	return ok
}

// HasImage reports whether an image with that id or name exists.
func (c *Cloud) HasImage(idOrName string) bool {
	c.lock()
	defer c.unlock()
	return c.findImageLocked(idOrName) != nil
}

func (c *Cloud) findImageLocked(idOrName string) *Image {
	if im, ok := c.images[idOrName]; ok {
		return im
	}
	for _, im := range c.images {
		if im.Name == idOrName {
			return im
		}
	}
	return nil
}

// latency returns the configured API latency.
func (c *Cloud) latency() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.knobs.APILatency
}

// wait applies the API latency to a blocking call.
func (c *Cloud) wait(ctx context.Context) error {
	if d := c.latency(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return ctx.Err()
}

// refreshLocked resolves a BUILD server whose boot time has passed.
func (c *Cloud) refreshLocked(s *Server, now time.Time) {
	if s.Status == StatusBuild && !s.Held && !now.Before(s.ReadyAt) {
		s.Status = StatusActive
	}
}

func (c *Cloud) removeLocked(id string) bool {
	s, ok := c.servers[id]
	if !ok {
		return false
	}
	c.usedCores -= s.Cores
	c.usedRAM -= s.RAM
	delete(c.servers, id)
	return true
}

// createRequest is what a create machine asks the cloud for.
type createRequest struct {
	name   string
	flavor Flavor
	image  string // cloud image name or uploaded image id
	// diskimage is set for diskimage labels, which need an image id.
	diskimage string
	az        string
	region    string
	metadata  map[string]string
}

// create runs a server create call and returns the new server's id. An
// error without an id means no server was created.
func (c *Cloud) create(r createRequest) (string, error) {
	hostKey := newHostKey() // outside the lock: the costliest step
	if k := c.hostKeyOverride(); k != "" {
		hostKey = k
	}
	c.lock()
	defer c.unlock()
	c.counters.Creates++
	k := &c.knobs
	if c.failCreate > 0 {
		c.failCreate--
		if c.failErr != nil {
			return "", c.failErr
		}
		return "", errors.New("simcloud: injected create failure")
	}
	if r.image == "" && r.diskimage != "" {
		return "", fmt.Errorf("simcloud: no uploaded image given for diskimage %s", r.diskimage)
	}
	if r.image != "" && c.findImageLocked(r.image) == nil {
		return "", fmt.Errorf("simcloud: image %q not found", r.image)
	}
	q := k.Quota
	switch {
	case q.Instances >= 0 && len(c.servers)+1 > q.Instances:
		return "", driver.QuotaError("Quota exceeded for instances: Requested 1, but already used %d of %d instances", len(c.servers), q.Instances)
	case q.Cores >= 0 && c.usedCores+r.flavor.Cores > q.Cores:
		return "", driver.QuotaError("Quota exceeded for cores: Requested %d, but already used %d of %d cores", r.flavor.Cores, c.usedCores, q.Cores)
	case q.RAM >= 0 && c.usedRAM+r.flavor.RAM > q.RAM:
		return "", driver.QuotaError("Quota exceeded for ram: Requested %d, but already used %d of %d ram", r.flavor.RAM, c.usedRAM, q.RAM)
	}
	az := r.az
	if len(k.AZs) > 0 {
		if az == "" {
			az = k.AZs[int(c.seq)%len(k.AZs)]
		} else if !contains(k.AZs, az) {
			return "", driver.CapacityError("availability zone %q is not available", az)
		}
	}
	now := c.now()
	boot := k.BootTimeMin
	if k.BootTimeMax > k.BootTimeMin {
		boot += time.Duration(mrand.Int64N(int64(k.BootTimeMax-k.BootTimeMin) + 1))
	}
	s := &Server{
		ID:       uuid.NewString(),
		Name:     r.name,
		Status:   StatusBuild,
		Metadata: copyMap(r.metadata),
		Flavor:   r.flavor.Name,
		Cores:    r.flavor.Cores,
		RAM:      r.flavor.RAM,
		Image:    r.image,
		AZ:       az,
		Region:   r.region,
		Created:  now,
		ReadyAt:  now.Add(boot),
		Held:     c.hang,
		HostKey:  hostKey,
	}
	if c.failWithID > 0 {
		c.failWithID--
		s.Status, s.Fault, s.Held = StatusError, "injected failure", false
	} else if k.CreateFailureRate > 0 && mrand.Float64() < k.CreateFailureRate {
		s.Status, s.Fault, s.Held = StatusError, "random failure", false
	}
	c.fillAddressesLocked(s)
	c.servers[s.ID] = s
	c.usedCores += s.Cores
	c.usedRAM += s.RAM
	c.saveLocked()
	return s.ID, nil
}

// poll returns a copy of a server with its current status.
func (c *Cloud) poll(id string) (Server, bool) {
	c.lock()
	defer c.unlock()
	s, ok := c.servers[id]
	if !ok {
		return Server{}, false
	}
	c.refreshLocked(s, c.now())
	return *s, true
}

// deleteServer runs a server delete call.
func (c *Cloud) deleteServer(id string) error {
	c.lock()
	defer c.unlock()
	c.counters.Deletes++
	if _, ok := c.servers[id]; !ok {
		return driver.NotFoundError("server %s not found", id)
	}
	if c.failDelete > 0 {
		c.failDelete--
		return errors.New("simcloud: injected delete failure")
	}
	if r := c.knobs.DeleteFailureRate; r > 0 && mrand.Float64() < r {
		return errors.New("simcloud: random delete failure")
	}
	c.removeLocked(id)
	c.saveLocked()
	return nil
}

// upload stores an uploaded image.
func (c *Cloud) upload(spec driver.UploadSpec) (string, error) {
	c.lock()
	defer c.unlock()
	c.counters.Uploads++
	if spec.Metadata["SHOULD_FAIL"] == "true" {
		return "", errors.New("simcloud: image upload failed (SHOULD_FAIL)")
	}
	if c.failUpload > 0 {
		c.failUpload--
		return "", errors.New("simcloud: injected upload failure")
	}
	im := &Image{
		ID:        uuid.NewString(),
		Name:      spec.ImageName,
		Format:    spec.Format,
		Diskimage: spec.Diskimage,
		Metadata:  copyMap(spec.Metadata),
		Status:    "active",
		Created:   c.now(),
	}
	c.images[im.ID] = im
	c.saveLocked()
	return im.ID, nil
}

// deleteImage runs an image delete call.
func (c *Cloud) deleteImage(id string) error {
	c.lock()
	defer c.unlock()
	c.counters.ImageDeletes++
	if _, ok := c.images[id]; !ok {
		return driver.NotFoundError("image %s not found", id)
	}
	if c.failImgDel > 0 {
		c.failImgDel--
		return errors.New("simcloud: injected image delete failure")
	}
	delete(c.images, id)
	c.saveLocked()
	return nil
}

// seed adds leaked or foreign instances once per key.
func (c *Cloud) seed(key string, n int, mk func(i int) Server) {
	c.lock()
	done := c.seeded[key]
	c.seeded[key] = true
	c.saveLocked()
	c.unlock()
	if done {
		return
	}
	for i := 0; i < n; i++ {
		c.AddInstance(mk(i))
	}
}

// fillAddressesLocked gives a server addresses, a host id and a host key.
func (c *Cloud) fillAddressesLocked(s *Server) {
	c.seq++
	n := c.seq
	if s.PublicIPv4 == "" {
		s.PublicIPv4 = fmt.Sprintf("203.0.113.%d", (n-1)%254+1)
	}
	if s.PublicIPv6 == "" {
		s.PublicIPv6 = fmt.Sprintf("2001:db8::%x", n)
	}
	if s.PrivateIPv4 == "" {
		s.PrivateIPv4 = fmt.Sprintf("10.%d.%d.%d", (n>>16)&255, (n>>8)&255, n&255)
	}
	if s.HostID == "" {
		h := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/host%d", c.name, s.Region, n%16)))
		s.HostID = hex.EncodeToString(h[:28])
	}
	if s.HostKey == "" {
		s.HostKey = newHostKey()
	}
}

// newHostKey returns a fresh ed25519 public key in authorized_keys form
// ("ssh-ed25519 AAAA..."), encoded as RFC 8709 describes.
func newHostKey() string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	const algo = "ssh-ed25519"
	buf := make([]byte, 0, 4+len(algo)+4+len(pub))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(algo)))
	buf = append(buf, algo...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(pub)))
	buf = append(buf, pub...)
	return algo + " " + base64.StdEncoding.EncodeToString(buf)
}

// stateFile is the JSON layout of a state file.
type stateFile struct {
	Servers []*Server       `json:"servers"`
	Images  []*Image        `json:"images"`
	Seq     uint64          `json:"seq"`
	Seeded  map[string]bool `json:"seeded,omitempty"`
}

func (c *Cloud) loadLocked(path string) error {
	data, err := os.ReadFile(path)
	defer c.noteFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("simcloud: reading state file: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("simcloud: state file %s: %w", path, err)
	}
	c.servers = make(map[string]*Server, len(st.Servers))
	c.usedCores, c.usedRAM = 0, 0
	for _, s := range st.Servers {
		c.servers[s.ID] = s
		c.usedCores += s.Cores
		c.usedRAM += s.RAM
	}
	c.images = make(map[string]*Image, len(st.Images))
	for _, im := range st.Images {
		c.images[im.ID] = im
	}
	if st.Seq > c.seq {
		c.seq = st.Seq
	}
	for k, v := range st.Seeded {
		c.seeded[k] = v
	}
	return nil
}

// saveLocked writes the state file, if one is configured.
func (c *Cloud) saveLocked() {
	path := c.knobs.StateFile
	if path == "" {
		return
	}
	st := stateFile{Seq: c.seq, Seeded: c.seeded}
	for _, s := range c.servers {
		st.Servers = append(st.Servers, s)
	}
	sort.Slice(st.Servers, func(i, j int) bool { return st.Servers[i].ID < st.Servers[j].ID })
	for _, im := range c.images {
		st.Images = append(st.Images, im)
	}
	sort.Slice(st.Images, func(i, j int) bool { return st.Images[i].ID < st.Images[j].ID })
	data, err := json.MarshalIndent(&st, "", " ")
	if err == nil {
		tmp := path + ".tmp"
		if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			if err = os.WriteFile(tmp, data, 0o644); err == nil {
				err = os.Rename(tmp, path)
			}
			if err == nil {
				c.noteFile(path)
			}
		}
	}
	c.saveErr = err
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
