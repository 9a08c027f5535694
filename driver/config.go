package driver

import (
	"time"

	"github.com/nodepool-go/nodepool/quota"
)

// ProviderConfig is a parsed provider entry. The launcher uses the common
// fields; Settings holds the driver's own parsed keys. Two configs are the
// same provider configuration when reflect.DeepEqual says so.
type ProviderConfig struct {
	Name   string // the provider's unique name
	Driver string // the name its driver is registered under
	// MaxConcurrency caps concurrently handled requests; negative is
	// unlimited and 0 accepts nothing.
	MaxConcurrency int
	// Priority is the default pool priority (lower is preferred); nil = 100.
	Priority *int
	// ManageImages is true when the builder uploads diskimages here.
	ManageImages bool
	// PausesAtQuota is false for drivers that never pause (static).
	PausesAtQuota bool
	LaunchTimeout time.Duration // launch-timeout: one create attempt's limit
	BootTimeout   time.Duration // boot-timeout: how long the key scan may wait for the host
	LaunchRetries int           // launch-retries: attempts per node before it fails
	// Diskimages are the provider's diskimage entries (image-managing drivers).
	Diskimages []*ProviderDiskimage
	// ImageFormat is the upload format this provider needs ("" when none).
	ImageFormat string
	Pools       []*PoolConfig // in configuration order
	// Settings holds the driver's own parsed keys (e.g. a pointer to the
	// driver's settings struct); the launcher never looks inside.
	Settings any
}

// Pool returns the pool with the given name.
func (p *ProviderConfig) Pool(name string) *PoolConfig {
	for _, pl := range p.Pools {
		if pl.Name == name {
			return pl
		}
	}
	return nil
}

// Diskimage returns the provider's entry for a diskimage.
func (p *ProviderConfig) Diskimage(name string) *ProviderDiskimage {
	for _, d := range p.Diskimages {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// EffectivePriority returns the pool's priority, else the provider's, else 100.
func (p *ProviderConfig) EffectivePriority(pool *PoolConfig) int {
	if pool != nil && pool.Priority != nil {
		return *pool.Priority
	}
	if p.Priority != nil {
		return *p.Priority
	}
	return 100
}

// ProviderDiskimage is a provider's use of a top-level diskimage.
type ProviderDiskimage struct {
	Name           string            // the top-level diskimage's name
	Pause          bool              // pause: no uploads to this provider
	ConnectionType string            // connection-type of nodes booted from it
	ConnectionPort int               // connection-port of nodes booted from it
	Meta           map[string]string // meta: metadata stored on the uploads
	Settings       any               // the driver's own keys of the entry
}

// PoolConfig is a parsed pool.
type PoolConfig struct {
	Name string // unique within the provider
	// MaxServers is max-servers; it and the other limits are Unlimited
	// when not configured.
	MaxServers  int
	MaxCores    int // max-cores
	MaxRAM      int // max-ram (MiB)
	MaxVolumes  int // max-volumes
	MaxVolumeGB int // max-volume-gb
	// MaxResources are extra named limits (max-resources).
	MaxResources   map[string]float64
	NodeAttributes map[string]any // node-attributes copied onto every node
	Priority       *int           // priority; nil = the provider's
	Labels         []*LabelConfig // the labels the pool offers
	AZs            []string       // availability-zones to choose from (none: ask the adapter)
	// IgnoreProviderQuota skips the cloud's limits; only the pool's apply.
	IgnoreProviderQuota bool
	UseInternalIP       bool // use the private address as interface_ip
	HostKeyChecking     bool // the default of the pool's labels' HostKeyChecking
	Settings            any  // the driver's own keys of the pool
}

// Label returns the pool's label config by name.
func (p *PoolConfig) Label(name string) *LabelConfig {
	for _, l := range p.Labels {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// LabelNames returns the pool's label names in config order.
func (p *PoolConfig) LabelNames() []string {
	out := make([]string, len(p.Labels))
	for i, l := range p.Labels {
		out[i] = l.Name
	}
	return out
}

// Limits returns the pool's limits as a quota value (default ∞). Volume
// limits are only set when configured non-zero (upstream semantics).
func (p *PoolConfig) Limits() quota.Resources {
	lim := func(v int) float64 {
		if v == Unlimited {
			return quota.Inf
		}
		return float64(v)
	}
	extra := map[string]float64{}
	for k, v := range p.MaxResources {
		extra[k] = v
	}
	if p.MaxVolumes != Unlimited && p.MaxVolumes != 0 {
		extra[quota.Volumes] = float64(p.MaxVolumes)
	}
	if p.MaxVolumeGB != Unlimited && p.MaxVolumeGB != 0 {
		extra[quota.VolumeGB] = float64(p.MaxVolumeGB)
	}
	return quota.New(lim(p.MaxCores), lim(p.MaxServers), lim(p.MaxRAM), quota.Inf, extra)
}

// LabelConfig is a pool's label.
type LabelConfig struct {
	Name string // a top-level label's name
	// Diskimage names the diskimage the label boots; exactly one of
	// Diskimage and CloudImage is set for image-based drivers.
	Diskimage  string
	CloudImage string // the name of a provider cloud-images entry
	// Username is the login user recorded on nodes; it and the
	// connection settings below are copied onto every node.
	Username        string
	PythonPath      string // python-path
	ShellType       string // shell-type
	ConnectionType  string // connection-type ("ssh", "winrm", ...)
	ConnectionPort  int    // connection-port
	HostKeyChecking bool   // scan host keys before a node goes ready: the label's host-key-checking, else the pool's (the launcher reads only this one)
	// Resources is what one node costs when the driver cannot say
	// (nil = {instances: 1}).
	Resources map[string]float64
	Settings  any // the driver's own keys of the label
}

// Need returns what one node of the label costs by its config.
func (l *LabelConfig) Need() quota.Resources {
	if l.Resources == nil {
		return quota.New(0, 1, 0, 0, nil)
	}
	r := quota.New(0, 1, 0, 0, nil)
	for k, v := range l.Resources {
		r.Set(k, v)
	}
	return r
}

// ParseProviderCommon reads the keys every provider has: name, driver,
// max-concurrency, priority. Pools are parsed by the driver (usually with
// ParsePoolCommon).
func ParseProviderCommon(s *Section) *ProviderConfig {
	p := &ProviderConfig{
		Name:           s.RequiredString("name"),
		Driver:         s.String("driver", "openstack"),
		MaxConcurrency: s.Int("max-concurrency", -1),
		PausesAtQuota:  true,
		LaunchRetries:  3,
		LaunchTimeout:  time.Hour,
		BootTimeout:    60 * time.Second,
	}
	if s.Has("priority") {
		v := s.Int("priority", 100)
		p.Priority = &v
	}
	if s.Has("max-concurrency") && p.MaxConcurrency == 0 {
		s.Warnf("max-concurrency", "max-concurrency 0 means provider %s accepts no requests", p.Name)
	}
	return p
}

// ParseTimeouts reads launch-retries, launch-timeout and boot-timeout with
// the given defaults (seconds).
func ParseTimeouts(s *Section, p *ProviderConfig, launchTimeout, bootTimeout int) {
	p.LaunchRetries = s.Int("launch-retries", 3)
	p.LaunchTimeout = time.Duration(s.Int("launch-timeout", launchTimeout)) * time.Second
	p.BootTimeout = time.Duration(s.Int("boot-timeout", bootTimeout)) * time.Second
}

// ParsePoolCommon reads the keys every pool has: name, max-servers,
// node-attributes, priority.
func ParsePoolCommon(s *Section) *PoolConfig {
	p := &PoolConfig{
		Name:            s.RequiredString("name"),
		MaxServers:      s.Limit("max-servers"),
		MaxCores:        Unlimited,
		MaxRAM:          Unlimited,
		MaxVolumes:      Unlimited,
		MaxVolumeGB:     Unlimited,
		HostKeyChecking: true,
	}
	if s.Has("node-attributes") {
		if m, ok := s.Any("node-attributes").(map[string]any); ok {
			p.NodeAttributes = m
		} else {
			s.Errorf("node-attributes", "expected a dictionary")
		}
	}
	if s.Has("priority") {
		v := s.Int("priority", 100)
		p.Priority = &v
	}
	return p
}

// DefaultPort returns the default connection port of a connection type.
func DefaultPort(connectionType string) int {
	if connectionType == "winrm" {
		return 5986
	}
	return 22
}
