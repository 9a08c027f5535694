// Package driver is the contract between the launcher and a cloud. A driver
// parses its part of the provider configuration and opens an Adapter per
// provider; the launcher drives creation and deletion of instances through
// small resumable state machines. Everything beyond creating, deleting and
// listing instances is optional and found by type assertion, as in
// database/sql/driver. Drivers know nothing of ZooKeeper or the launcher.
//
// A driver registers itself with Register (usually in an init function)
// under the name that provider entries give as their driver key, or is
// handed to one launcher with nodepool.WithDriver. Errors returned by
// machines and adapters are classified with QuotaError, NotFoundError,
// CapacityError and TransientError; see Kind for what the launcher does
// with each.
// Package driver/drivertest is the conformance suite every driver runs.
// docs/writing-a-driver.md in the repository walks through the contract.
package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/quota"
)

// Driver is what a driver package registers under its name.
type Driver interface {
	// ParseProvider decodes one entry of the providers list. The section's
	// common keys are parsed by ParseProviderCommon and ParsePoolCommon,
	// which the driver calls; it reads its own keys from the same section
	// and records every problem on it (never returning early on the first).
	ParseProvider(s *Section) *ProviderConfig

	// Open returns the adapter for a parsed provider. It is called when the
	// launcher (re)starts a provider and must not block on the cloud for
	// long; ctx bounds any start-up I/O.
	Open(ctx context.Context, cfg *ProviderConfig, env Env) (Adapter, error)
}

// Env is what the launcher offers an adapter.
type Env struct {
	// Logger is scoped to the provider.
	Logger *slog.Logger
	// Services exposes launcher facilities that a few drivers need (the
	// metastatic driver requests backing nodes through it); nil when the
	// launcher offers none.
	Services any
}

// Adapter talks to one provider's cloud. Its methods may be called
// concurrently.
type Adapter interface {
	// CreateMachine returns a state machine that creates one instance.
	// It does no I/O itself; the launcher advances the machine.
	CreateMachine(spec CreateSpec) CreateMachine
	// DeleteMachine returns a state machine that deletes the instance with
	// the given external id. It must tolerate an id that no longer exists
	// (by completing, or by returning a NotFound error).
	DeleteMachine(externalID string) DeleteMachine
	// ListInstances returns every instance visible to the credentials,
	// including ones nodepool does not own.
	ListInstances(ctx context.Context) ([]Instance, error)
	// Close releases the adapter's resources after all machines finished.
	Close() error
}

// CreateSpec is everything a create machine needs.
type CreateSpec struct {
	Hostname string // "np" + node id
	// Label is the pool label the node is launched for.
	Label *LabelConfig
	// Pool is the pool the node belongs to.
	Pool            *PoolConfig
	ImageExternalID string // uploaded diskimage id; "" for cloud images
	// Metadata holds the ownership tags (nodepool_node_id,
	// nodepool_pool_name, nodepool_provider_name) the instance must carry
	// and report back from ListInstances/ListResources.
	Metadata map[string]string
	AZ       string // chosen availability zone, "" for none
	// Request is the node request the launch serves (for drivers that
	// tag instances with it or, like metastatic, pass it on).
	Request RequestInfo
}

// RequestInfo is the read-only view of the node request a machine serves.
type RequestInfo struct {
	ID               string   // request id, "<priority>-<sequence>"
	Labels           []string // node_types: every label of the request
	Requestor        string   // who asked, e.g. a Zuul scheduler's hostname
	RelativePriority int      // relative_priority (lower is served first)
	EventID          string   // Zuul's event id, for log correlation
	TenantName       string   // Zuul tenant ("" when none)
	RequestorData    []byte   // JSON, may be empty
}

// CreateMachine creates one instance a step at a time.
type CreateMachine interface {
	// Advance does a small, non-blocking amount of work. It returns the
	// instance once creation is complete, nil while it is still under way,
	// or an error (see the error categories of this package). After a
	// TransientError the launcher calls Advance again, so the machine
	// resumes from the step that failed.
	Advance(ctx context.Context) (*Instance, error)
	// ExternalID returns the cloud's id as soon as it is known, else "".
	ExternalID() string
}

// DeleteMachine deletes one instance a step at a time.
type DeleteMachine interface {
	// Advance does a small amount of work and reports completion. A
	// NotFound error means the instance is already gone.
	Advance(ctx context.Context) (done bool, err error)
}

// Instance is a cloud server as the driver reports it.
type Instance struct {
	ExternalID  string // the cloud's id; the node's external_id
	InterfaceIP string // address Zuul connects to (see UseInternalIP)
	PublicIPv4  string // public_ipv4 of the node
	PublicIPv6  string // public_ipv6 of the node
	PrivateIPv4 string // private_ipv4; interface_ip with use-internal-ip
	PrivateIPv6 string // used as interface_ip with use-internal-ip when no private IPv4
	Cloud       string // cloud name recorded on the node
	Region      string // region recorded on the node
	AZ          string // availability zone the instance landed in
	HostID      string // the hypervisor's id, when the cloud reports it
	// Metadata is the instance's metadata; ListInstances must report the
	// ownership keys of CreateSpec.Metadata here.
	Metadata map[string]string
	// DriverData is stored verbatim on the node (JSON), if non-nil.
	DriverData []byte
	Slot       *int // slot index on a shared host (static, metastatic)
	// Username overrides the label's username ("" = no override; so do
	// the connection fields below).
	Username       string
	PythonPath     string // overrides the python-path of the label
	ShellType      string // overrides the shell-type of the label
	ConnectionType string // overrides the connection-type ("ssh", "winrm", ...)
	ConnectionPort int    // overrides the connection port (0 = no override)
	// ConnectionPortObject, when non-nil, is a JSON object stored as the
	// node's connection_port instead of a number: kubectl-style
	// connections carry their namespace, API host and credentials there.
	// It wins over ConnectionPort.
	ConnectionPortObject json.RawMessage
	// HostKeys, when non-empty, are used as the node's host keys and no
	// key scan is made.
	HostKeys []string
	// Resources is what the instance consumes, for unmanaged-usage
	// accounting; nil counts as nothing.
	Resources *quota.Resources
}

// Resource is a cloud object that may carry nodepool metadata.
type Resource struct {
	Type     string            // e.g. "instance", "image", "floatingip"
	ID       string            // the cloud's id, passed back to DeleteResource
	Metadata map[string]string // the nodepool_* ownership keys it carries
	// Plural is the metric name of the type ("instances"); defaults to
	// Type + "s".
	Plural string
}

// PluralName returns the metric name of the resource type.
func (r Resource) PluralName() string {
	if r.Plural != "" {
		return r.Plural
	}
	return r.Type + "s"
}

// Ownership metadata keys.
const (
	MetaNodeID       = "nodepool_node_id"
	MetaPoolName     = "nodepool_pool_name"
	MetaProviderName = "nodepool_provider_name"
	MetaBuildID      = "nodepool_build_id"
	MetaUploadID     = "nodepool_upload_id"
)

// QuotaReporter is implemented by adapters that know their cloud's limits
// and what a label costs.
type QuotaReporter interface {
	// QuotaLimits returns the cloud's limits (resources it does not report
	// are unlimited unless the value's default says otherwise).
	QuotaLimits(ctx context.Context) (quota.Resources, error)
	// QuotaForLabel returns what one node of the label consumes.
	QuotaForLabel(ctx context.Context, label *LabelConfig) (quota.Resources, error)
}

// LeakCleaner is implemented by adapters that can list and delete every
// cloud resource carrying nodepool metadata.
type LeakCleaner interface {
	// ListResources returns every resource carrying nodepool metadata
	// (MetaProviderName and MetaNodeID, or MetaBuildID/MetaUploadID for
	// images); the launcher deletes those whose node or upload record no
	// longer exists after two cleanup passes.
	ListResources(ctx context.Context) ([]Resource, error)
	// DeleteResource deletes one listed resource; NotFound means already
	// gone.
	DeleteResource(ctx context.Context, r Resource) error
}

// ImageManager is implemented by adapters that accept diskimage uploads.
type ImageManager interface {
	// UploadImage uploads a built image file and returns its cloud id. The
	// metadata must be stored on the image.
	UploadImage(ctx context.Context, spec UploadSpec) (externalID string, err error)
	// DeleteImage deletes an uploaded image; NotFound means already gone.
	DeleteImage(ctx context.Context, externalID string) error
}

// UploadSpec describes one image upload.
type UploadSpec struct {
	ImageName string            // name in the cloud
	Diskimage string            // the diskimage it was built from
	Filename  string            // path of the built image file
	Format    string            // its format, e.g. "qcow2", "raw", "vhd"
	Metadata  map[string]string // ownership keys to store on the image
	MD5       string            // hex MD5 of the file ("" when unknown)
	SHA256    string            // hex SHA-256 of the file ("" when unknown)
}

// AZLister is implemented by adapters that know their availability zones.
type AZLister interface {
	// AvailabilityZones returns the zones a pool without an explicit
	// availability-zones list may launch into; the launcher picks one at
	// random for each node set.
	AvailabilityZones(ctx context.Context) ([]string, error)
}

// LabelChecker is implemented by adapters that can tell whether a label's
// cloud image exists.
type LabelChecker interface {
	// LabelReady reports whether the label can be launched now; the pool
	// declines requests for labels that are not ready.
	LabelReady(ctx context.Context, label *LabelConfig) bool
}

// LabelErrorChecker is implemented by LabelCheckers that can tell why a
// label is not ready, so a request is not declined with "image not
// found" when the cloud could not be asked (failed authentication, an
// outage).
type LabelErrorChecker interface {
	// CheckLabel returns nil when the label can be launched now, an
	// error of kind KindNotFound when its cloud image does not exist,
	// and the cloud's error when the image could not be looked up.
	CheckLabel(ctx context.Context, label *LabelConfig) error
}

// Registry is a set of drivers by name. Configuration loading and the
// launcher look drivers up in a Registry; Default is the one Register
// fills and the one they use unless given another, so a program can bring
// its own driver set (including its own driver under a stock name) by
// building a Registry of its own. A Registry is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	drivers map[string]Driver
	parent  *Registry
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{drivers: map[string]Driver{}} }

// Default is the process-wide registry that Register fills.
var Default = NewRegistry()

// Overlay returns a registry whose own drivers are looked up first, then
// those of r (which may be nil). Drivers registered in r later are seen.
func (r *Registry) Overlay() *Registry {
	o := NewRegistry()
	o.parent = r
	return o
}

// Register makes d available under name. It panics if name is empty, d is
// nil, or the registry itself (not its parent) already has the name.
func (r *Registry) Register(name string, d Driver) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name == "" || d == nil {
		panic("driver: Register with empty name or nil driver")
	}
	if _, dup := r.drivers[name]; dup {
		panic(fmt.Sprintf("driver: Register called twice for driver %q", name))
	}
	r.drivers[name] = d
}

// Lookup returns the driver registered under name.
func (r *Registry) Lookup(name string) (Driver, bool) {
	if r == nil {
		return nil, false
	}
	r.mu.RLock()
	d, ok := r.drivers[name]
	r.mu.RUnlock()
	if ok {
		return d, true
	}
	return r.parent.Lookup(name)
}

// Names returns the names the registry (with its parent) knows, sorted.
func (r *Registry) Names() []string {
	seen := map[string]bool{}
	for x := r; x != nil; x = x.parent {
		x.mu.RLock()
		for k := range x.drivers {
			seen[k] = true
		}
		x.mu.RUnlock()
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Open looks the provider's driver up and opens its adapter. The error
// names the provider when its driver is unknown.
func (r *Registry) Open(ctx context.Context, cfg *ProviderConfig, env Env) (Adapter, error) {
	d, ok := r.Lookup(cfg.Driver)
	if !ok {
		return nil, fmt.Errorf("provider %s uses driver %q: %w", cfg.Name, cfg.Driver, ErrUnknownDriver)
	}
	return d.Open(ctx, cfg, env)
}

// ErrUnknownDriver is returned by Registry.Open for a provider whose
// driver the registry does not have.
var ErrUnknownDriver = errors.New("no such driver in this program")

// Register makes a driver available under name in the Default registry.
// It panics if name is empty, d is nil, or the name is taken.
func Register(name string, d Driver) { Default.Register(name, d) }

// Lookup returns the driver registered under name in the Default registry.
func Lookup(name string) (Driver, bool) { return Default.Lookup(name) }

// Drivers returns the names registered in the Default registry, sorted.
func Drivers() []string { return Default.Names() }

// RunDelete advances a delete machine until it is done, pausing between
// steps, and reports the first error; NotFound counts as done. ctx bounds
// the whole deletion.
func RunDelete(ctx context.Context, m DeleteMachine, pause time.Duration) error {
	for {
		done, err := m.Advance(ctx)
		if IsNotFound(err) || (err == nil && done) {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}
