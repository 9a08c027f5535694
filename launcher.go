package nodepool

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/launcher"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Launcher serves node requests from ZooKeeper with the providers of its
// configuration. It is the library form of nodepool-launcher.
type Launcher struct {
	impl *launcher.Launcher
}

// Option configures a Launcher.
type Option func(*settings)

type settings struct {
	launcher.Settings
	extra map[string]driver.Driver
}

// WithZooKeeper makes the launcher use an existing connection instead of
// connecting with the configuration's zookeeper settings.
func WithZooKeeper(c *zkclient.Client) Option { return func(s *settings) { s.ZooKeeper = c } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(s *settings) { s.Logger = log } }

// WithDrivers makes providers name drivers of r instead of driver.Default,
// both when providers start and when WithConfigFile re-reads the
// configuration.
func WithDrivers(r *driver.Registry) Option { return func(s *settings) { s.Drivers = r } }

// WithDriver adds a driver for providers naming it, ahead of the registry's
// (WithDrivers, or driver.Default). With WithConfigFile and a nil
// configuration, NewLauncher loads the file with it, so its providers can
// be configured in YAML like any other.
func WithDriver(name string, d driver.Driver) Option {
	return func(s *settings) {
		if s.extra == nil {
			s.extra = map[string]driver.Driver{}
		}
		s.extra[name] = d
	}
}

// WithConfigFile makes the launcher re-read the configuration files every
// second and apply changes, restarting only the providers that changed.
func WithConfigFile(path, securePath string) Option {
	return func(s *settings) { s.ConfigPath, s.SecurePath = path, securePath }
}

// WithCleanupInterval sets how often the cleanup tasks run (default 60 s,
// as upstream); leaked instances are deleted after two passes.
func WithCleanupInterval(d time.Duration) Option {
	return func(s *settings) { s.CleanupInterval = d }
}

// WithHostname overrides the hostname used in component registrations.
func WithHostname(h string) Option { return func(s *settings) { s.Hostname = h } }

// NewLauncher returns a launcher for cfg. cfg may be nil when
// WithConfigFile is given: the launcher then loads that file with its
// drivers (WithDrivers and WithDriver).
func NewLauncher(cfg *config.Config, opts ...Option) (*Launcher, error) {
	var s settings
	for _, o := range opts {
		o(&s)
	}
	if s.Drivers == nil {
		s.Drivers = driver.Default
	}
	if len(s.extra) > 0 {
		reg := s.Drivers.Overlay()
		for name, d := range s.extra {
			reg.Register(name, d)
		}
		s.Drivers = reg
	}
	if cfg == nil && s.ConfigPath != "" {
		loaded, err := config.Load(s.ConfigPath, s.SecurePath, config.WithRegistry(s.Drivers))
		if err != nil {
			return nil, err
		}
		cfg = loaded
	}
	impl, err := launcher.New(cfg, s.Settings)
	if err != nil {
		return nil, err
	}
	return &Launcher{impl: impl}, nil
}

// Run serves requests until ctx ends, then stops gracefully.
func (l *Launcher) Run(ctx context.Context) error { return l.impl.Run(ctx) }

// Config returns the configuration in effect.
func (l *Launcher) Config() *config.Config { return l.impl.Config() }

// ZooKeeper returns the launcher's ZooKeeper client: the one given with
// WithZooKeeper, else the one Run connects (nil until then). It is safe to
// call while Run runs.
func (l *Launcher) ZooKeeper() *zkclient.Client { return l.impl.ZooKeeper() }

// Ready reports whether the launcher has completed its first start-up pass
// (providers started, pools registered).
func (l *Launcher) Ready() bool { return l.impl.Ready() }

// Nodes returns the launcher's cache of the node records (nil until Run
// has created it). Callers must not modify the cached nodes.
func (l *Launcher) Nodes() *zkclient.TreeCache[*zkclient.Node] { return l.impl.Nodes() }

// LastCleanup returns when the launcher's last complete pass of the
// periodic cleanup tasks ended (zero before the first one).
func (l *Launcher) LastCleanup() time.Time { return l.impl.LastCleanup() }

// MetricsHandler serves the launcher's Prometheus metrics.
func (l *Launcher) MetricsHandler() http.Handler { return l.impl.MetricsHandler() }
