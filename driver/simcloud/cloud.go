package simcloud

import (
	"os"
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
