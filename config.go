package nodepool

import (
	"time"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Config is a loaded launcher/builder configuration (config.md). It is
// decoded once into typed, validated values; a reload builds a new Config.
type Config struct {
	// Path and SecurePath are the files it was loaded from.
	Path       string
	SecurePath string

	WebApp            WebAppConfig
	ElementsDir       string
	ImagesDir         string
	BuildLogDir       string // default /var/log/nodepool/builds
	BuildLogRetention int    // default 7
	ZooKeeperServers  []ZooKeeperServer
	ZooKeeperTLS      *zkclient.TLSFiles
	ZooKeeperTimeout  time.Duration // default 10 s
	Labels            []*LabelConfig
	Diskimages        []*DiskimageConfig // non-abstract images, inheritance resolved
	Providers         []*driver.ProviderConfig
	MaxHoldAge        time.Duration // 0 = unlimited
	TenantLimits      map[string]map[string]float64
}

// WebAppConfig is the webapp section.
type WebAppConfig struct {
	Port          int    // default 8005
	ListenAddress string // default 0.0.0.0
}

// ZooKeeperServer is one zookeeper-servers entry.
type ZooKeeperServer struct {
	Host   string
	Port   int // default 2281
	Chroot string
}

// LabelConfig is one top-level label.
type LabelConfig struct {
	Name        string
	MinReady    int
	MaxReadyAge time.Duration
}

// DiskimageConfig is a diskimage after parent/abstract inheritance.
type DiskimageConfig struct {
	Name         string
	Elements     []string
	EnvVars      map[string]string
	Formats      []string // own formats (after inheritance)
	Release      string
	RebuildAge   time.Duration // default 24 h
	BuildTimeout time.Duration // default 8 h
	Pause        bool
	DibCmd       string // default "disk-image-create"
	Username     string // default "zuul"
	PythonPath   string // default "auto"
	ShellType    string
	Metadata     map[string]string
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
