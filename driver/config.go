package driver

import (
	"time"

	"github.com/nodepool-go/nodepool/quota"
)

// ProviderConfig is a parsed provider entry. The launcher uses the common
// fields; Settings holds the driver's own parsed keys. Two configs are the
// same provider configuration when reflect.DeepEqual says so.
type ProviderConfig struct {
	Name   string
	Driver string
	// MaxConcurrency caps concurrently handled requests; negative is
	// unlimited and 0 accepts nothing.
	MaxConcurrency int
	// Priority is the default pool priority (lower is preferred); nil = 100.
	Priority *int
	// ManageImages is true when the builder uploads diskimages here.
	ManageImages bool
	// PausesAtQuota is false for drivers that never pause (static).
	PausesAtQuota bool
	LaunchTimeout time.Duration
	BootTimeout   time.Duration
	LaunchRetries int
	// Diskimages are the provider's diskimage entries (image-managing drivers).
	Diskimages []*ProviderDiskimage
	// ImageFormat is the upload format this provider needs ("" when none).
	ImageFormat string
	Pools       []*PoolConfig
	Settings    any
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
	Name           string
	Pause          bool
	ConnectionType string
	ConnectionPort int
	Meta           map[string]string
	Settings       any
}

// PoolConfig is a parsed pool.
type PoolConfig struct {
	Name string
	// Limits; Unlimited when not configured.
	MaxServers  int
	MaxCores    int
	MaxRAM      int
	MaxVolumes  int
	MaxVolumeGB int
	// MaxResources are extra named limits (max-resources).
	MaxResources        map[string]float64
	NodeAttributes      map[string]any
	Priority            *int
	Labels              []*LabelConfig
	AZs                 []string
	IgnoreProviderQuota bool
	UseInternalIP       bool
	HostKeyChecking     bool
	Settings            any
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
	Name string
	// Exactly one of Diskimage and CloudImage is set for image-based drivers.
	Diskimage  string
	CloudImage string
	// Connection settings copied onto nodes.
	Username        string
	PythonPath      string
	ShellType       string
	ConnectionType  string
	ConnectionPort  int
	HostKeyChecking bool
	// Resources is what one node costs when the driver cannot say
	// (nil = {instances: 1}).
	Resources map[string]float64
	Settings  any
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
