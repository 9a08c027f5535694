// Package config decodes the launcher's and builder's YAML configuration into
// typed, validated values: Load for the daemons (lenient about unknown keys,
// strict about types and references) and Validate for `nodepool
// config-validate` (upstream's strict verdicts). Providers are parsed by the
// driver their driver key names, looked up in driver.Default or in the
// registry given with WithRegistry.
package config

import (
	"sort"
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Config is a loaded launcher/builder configuration. It is
// decoded once into typed, validated values; a reload builds a new Config.
type Config struct {
	// Path is the main file it was loaded from.
	Path       string
	SecurePath string // the secure file ("" for none)

	WebApp            WebAppConfig             // the webapp section
	ElementsDir       string                   // elements-dir (builder)
	ImagesDir         string                   // images-dir (builder)
	BuildLogDir       string                   // default /var/log/nodepool/builds
	BuildLogRetention int                      // default 7
	ZooKeeperServers  []ZooKeeperServer        // zookeeper-servers
	ZooKeeperTLS      *zkclient.TLSFiles       // zookeeper-tls; nil = plaintext
	ZooKeeperTimeout  time.Duration            // default 10 s
	Labels            []*LabelConfig           // the top-level labels
	Diskimages        []*DiskimageConfig       // non-abstract images, inheritance resolved
	Providers         []*driver.ProviderConfig // in configuration order
	MaxHoldAge        time.Duration            // 0 = unlimited
	// TenantLimits maps a tenant to its limits: cores, instances and ram
	// always (default +Inf), volumes/volume-gb when given, other keys verbatim.
	TenantLimits map[string]map[string]float64
	// Warnings are the non-fatal problems found while loading (unknown keys).
	Warnings []*driver.ConfigError
}

// PoolRef names one provider pool.
type PoolRef struct {
	Provider *driver.ProviderConfig // the provider
	Pool     *driver.PoolConfig     // one of its pools
}

// WebAppConfig is the webapp section.
type WebAppConfig struct {
	Port          int    // default 8005
	ListenAddress string // default 0.0.0.0
}

// ZooKeeperServer is one zookeeper-servers entry.
type ZooKeeperServer struct {
	Host   string // host name or address
	Port   int    // default 2281
	Chroot string // chroot ("" for none)
}

// LabelConfig is one top-level label.
type LabelConfig struct {
	Name        string        // the label's name
	MinReady    int           // min-ready: ready nodes to keep unallocated
	MaxReadyAge time.Duration // max-ready-age; 0 = unlimited
}

// DiskimageConfig is a diskimage after parent/abstract inheritance.
type DiskimageConfig struct {
	Name         string            // the diskimage's name
	Elements     []string          // DIB elements
	EnvVars      map[string]string // env-vars passed to DIB
	Formats      []string          // own formats (after inheritance)
	Release      string            // DIB_RELEASE ("" for none)
	RebuildAge   time.Duration     // default 24 h
	BuildTimeout time.Duration     // default 8 h
	Pause        bool              // pause: no builds
	DibCmd       string            // default "disk-image-create"
	Username     string            // default "zuul"
	PythonPath   string            // default "auto"
	ShellType    string            // shell-type of nodes booted from it
	Metadata     map[string]string // metadata stored on uploads
	// Parent is the configured parent entry ("" for none), for display.
	Parent string
}

// Label returns the top-level label with the given name.
func (c *Config) Label(name string) *LabelConfig {
	for _, l := range c.Labels {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// Diskimage returns the diskimage with the given name.
func (c *Config) Diskimage(name string) *DiskimageConfig {
	for _, d := range c.Diskimages {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// Provider returns the provider with the given name.
func (c *Config) Provider(name string) *driver.ProviderConfig {
	for _, p := range c.Providers {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// PoolsForLabel returns every provider pool offering the label, in config
// order.
func (c *Config) PoolsForLabel(label string) []PoolRef {
	var out []PoolRef
	for _, p := range c.Providers {
		for _, pl := range p.Pools {
			if pl.Label(label) != nil {
				out = append(out, PoolRef{Provider: p, Pool: pl})
			}
		}
	}
	return out
}

// ImageFormats returns the sorted formats built for a diskimage: its own
// formats plus the upload format of every provider listing it. Empty means
// the image is never built.
func (c *Config) ImageFormats(image string) []string {
	set := map[string]bool{}
	if d := c.Diskimage(image); d != nil {
		for _, f := range d.Formats {
			set[f] = true
		}
	}
	for _, p := range c.Providers {
		if p.ImageFormat != "" && p.Diskimage(image) != nil {
			set[p.ImageFormat] = true
		}
	}
	if len(set) == 0 {
		return nil
	}
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
