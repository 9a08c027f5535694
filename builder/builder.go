// Package builder is nodepool's image builder: it builds
// diskimages with diskimage-builder, records each build (UUID id) and each
// upload per provider in ZooKeeper, uploads builds through the drivers'
// ImageManager interface and prunes old builds, uploads and local files.
package builder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/internal/logconfig"
	"github.com/nodepool-go/nodepool/internal/version"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/leak"
	"github.com/nodepool-go/nodepool/internal/metrics"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Default intervals and counts.
const (
	DefaultBuildInterval   = 10 * time.Second
	DefaultUploadInterval  = 10 * time.Second
	DefaultCleanupInterval = 60 * time.Second
	DefaultBuildWorkers    = 1
	DefaultUploadWorkers   = 4
	errorBackoff           = 10 * time.Second
	suspendedRecheck       = 30 * time.Second
	// BuilderIDFile is the name of the builder identity file in images-dir.
	BuilderIDFile = "builder_id.txt"
	keepBuilds    = 2
	keepUploads   = 2
	// DefaultMinFreeSpace is the free space (bytes) the filesystem holding
	// images-dir must have before a build starts (a Go addition).
	DefaultMinFreeSpace int64 = 1 << 30
)

// ConfigSource returns the current configuration; it is called at the
// start of every worker iteration (re-reading the files).
type ConfigSource func(ctx context.Context) (*config.Config, error)

// settings are a Builder's collaborators and tunables; a zero field means
// its default.
type settings struct {
	Config          ConfigSource
	ZooKeeper       *zkclient.Client
	Drivers         *driver.Registry
	BuildWorkers    int
	UploadWorkers   int
	BuildInterval   time.Duration
	UploadInterval  time.Duration
	CleanupInterval time.Duration
	Now             func() time.Time
	Logger          *slog.Logger
	Hostname        string
	FQDN            string
	InstallDir      string
	MinFreeSpace    int64
}

// Option configures a Builder.
type Option func(*settings)

// WithDrivers makes providers name drivers of r (default driver.Default).
func WithDrivers(r *driver.Registry) Option { return func(s *settings) { s.Drivers = r } }

// WithWorkers sets how many build and upload workers run (default 1 and
// 4; zero keeps the default).
func WithWorkers(build, upload int) Option {
	return func(s *settings) { s.BuildWorkers, s.UploadWorkers = build, upload }
}

// WithIntervals sets the pauses between iterations of the build, upload
// and cleanup workers (default 10 s, 10 s, 60 s; zero keeps the default,
// a negative cleanup interval disables the cleanup worker).
func WithIntervals(build, upload, cleanup time.Duration) Option {
	return func(s *settings) { s.BuildInterval, s.UploadInterval, s.CleanupInterval = build, upload, cleanup }
}

// WithClock sets the wall clock used for state_time, rebuild-age and
// upload timestamps (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *settings) { s.Now = now } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.Logger = l } }

// WithHostname sets the short host name recorded in the component and the
// FQDN stored on builds (default the host's names).
func WithHostname(short, fqdn string) Option {
	return func(s *settings) { s.Hostname, s.FQDN = short, fqdn }
}

// WithInstallDir sets what replaces %p in dib-cmd (default the
// executable's directory).
func WithInstallDir(dir string) Option { return func(s *settings) { s.InstallDir = dir } }

// WithMinFreeSpace sets the free space in bytes the filesystem holding
// images-dir must have for a build to start; otherwise the build is
// skipped with a warning and retried on the next iteration. Zero means
// DefaultMinFreeSpace, a negative value disables the check. (Upstream has
// no such check.)
func WithMinFreeSpace(bytes int64) Option { return func(s *settings) { s.MinFreeSpace = bytes } }

// Builder runs the build, upload and cleanup workers.
type Builder struct {
	opts      settings
	zk        *zkclient.Client
	log       *slog.Logger
	now       func() time.Time
	builderID string
	fqdn      string
	hostname  string
	providers *providerManagers
	leaks     leak.Tracker
	stats     *metrics.Reporter

	mu        sync.Mutex
	component *zkclient.Component
}

// New returns a builder that reads its configuration from source and
// records its work through zk; nothing is started.
func New(source ConfigSource, zk *zkclient.Client, options ...Option) (*Builder, error) {
	opts := settings{Config: source, ZooKeeper: zk}
	for _, o := range options {
		o(&opts)
	}
	return newBuilder(opts)
}

func newBuilder(opts settings) (*Builder, error) {
	if opts.Config == nil {
		return nil, errors.New("builder: no config source")
	}
	if opts.ZooKeeper == nil {
		return nil, errors.New("builder: no ZooKeeper client")
	}
	if opts.BuildWorkers <= 0 {
		opts.BuildWorkers = DefaultBuildWorkers
	}
	if opts.UploadWorkers <= 0 {
		opts.UploadWorkers = DefaultUploadWorkers
	}
	if opts.BuildInterval == 0 {
		opts.BuildInterval = DefaultBuildInterval
	}
	if opts.UploadInterval == 0 {
		opts.UploadInterval = DefaultUploadInterval
	}
	if opts.CleanupInterval == 0 {
		opts.CleanupInterval = DefaultCleanupInterval
	}
	if opts.Drivers == nil {
		opts.Drivers = driver.Default
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Hostname == "" {
		h, _ := os.Hostname()
		opts.Hostname, _, _ = strings.Cut(h, ".")
	}
	if opts.FQDN == "" {
		opts.FQDN = fqdn()
	}
	if opts.MinFreeSpace == 0 {
		opts.MinFreeSpace = DefaultMinFreeSpace
	}
	if opts.InstallDir == "" {
		if exe, err := os.Executable(); err == nil {
			opts.InstallDir = filepath.Dir(exe)
		}
	}
	b := &Builder{
		opts:     opts,
		zk:       opts.ZooKeeper,
		log:      opts.Logger,
		now:      opts.Now,
		fqdn:     opts.FQDN,
		hostname: opts.Hostname,
		stats:    metrics.FromEnv(),
	}
	b.providers = newProviderManagers(b.log, opts.Drivers)
	b.providers.services = services{stats: b.stats}
	return b, nil
}

// fqdn approximates Python's socket.getfqdn().
func fqdn() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	if strings.Contains(h, ".") {
		return h
	}
	addrs, err := net.LookupHost(h)
	if err != nil {
		return h
	}
	for _, a := range addrs {
		names, err := net.LookupAddr(a)
		if err != nil {
			continue
		}
		for _, n := range names {
			n = strings.TrimSuffix(n, ".")
			if strings.HasPrefix(n, h+".") {
				return n
			}
		}
	}
	return h
}

// MetricsHandler serves the builder's figures in the
// Prometheus exposition format; the same figures go to statsd when
// STATSD_HOST or STATSD_PORT was set when the builder was created.
func (b *Builder) MetricsHandler() http.Handler { return b.stats.Handler() }

// BuilderID returns the builder's identity, read or created by Run.
func (b *Builder) BuilderID() string { return b.builderID }

// loadIdentity reads or creates <images-dir>/builder_id.txt.
func (b *Builder) loadIdentity(ctx context.Context) error {
	cfg, err := b.opts.Config(ctx)
	if err != nil {
		return err
	}
	id, err := ReadOrCreateBuilderID(cfg.ImagesDir)
	if err != nil {
		return err
	}
	b.builderID = id
	return nil
}

// ReadOrCreateBuilderID returns the contents of <dir>/builder_id.txt,
// creating it with a dashed UUID4 (no trailing newline) when missing.
func ReadOrCreateBuilderID(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("No images-dir specified in config.")
	}
	p := filepath.Join(dir, BuilderIDFile)
	data, err := os.ReadFile(p)
	if err == nil {
		return string(data), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	id := uuid.NewString()
	if err := os.WriteFile(p, []byte(id), 0o644); err != nil {
		return "", err
	}
	return id, nil
}

// register creates the builder component registration (kind builder,
// state "stopped", as upstream never reports running).
func (b *Builder) register(ctx context.Context) error {
	comp := &zkclient.Component{
		Kind:     zkclient.KindBuilder,
		Hostname: b.hostname,
		ModelAPI: zkclient.ModelAPI,
		State:    zkclient.ComponentStopped,
		Release:  version.String(),
	}
	if err := b.zk.RegisterComponent(ctx, comp); err != nil {
		return fmt.Errorf("registering builder component: %w", err)
	}
	b.mu.Lock()
	b.component = comp
	b.mu.Unlock()
	return nil
}

// Run starts the workers and blocks until ctx ends; then it waits for the
// workers (an in-flight DIB run is waited for), closes the provider
// adapters and removes the component registration.
func (b *Builder) Run(ctx context.Context) error {
	cfg, err := b.opts.Config(ctx)
	if err != nil {
		return err
	}
	if cfg.ImagesDir == "" {
		return errors.New("No images-dir specified in config.")
	}
	if b.builderID == "" {
		if err := b.loadIdentity(ctx); err != nil {
			return err
		}
	}
	if err := b.register(ctx); err != nil {
		return err
	}
	defer func() {
		b.mu.Lock()
		comp := b.component
		b.mu.Unlock()
		if comp != nil {
			c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = b.zk.UnregisterComponent(c, comp)
			cancel()
		}
		b.providers.closeAll()
	}()
	g, gctx := errgroup.WithContext(ctx)
	for i := 0; i < b.opts.BuildWorkers; i++ {
		g.Go(func() error {
			b.loop(gctx, "BuildWorker."+strconv.Itoa(i), b.opts.BuildInterval, b.buildPass)
			return nil
		})
	}
	for i := 0; i < b.opts.UploadWorkers; i++ {
		g.Go(func() error {
			b.loop(gctx, "UploadWorker."+strconv.Itoa(i), b.opts.UploadInterval, func(ctx context.Context) error {
				_, err := b.uploadPass(ctx)
				return err
			})
			return nil
		})
	}
	if b.opts.CleanupInterval > 0 {
		g.Go(func() error { b.loop(gctx, "CleanupWorker.0", b.opts.CleanupInterval, b.cleanupPass); return nil })
	}
	b.log.Info("builder started", "builder_id", b.builderID, "build_workers", b.opts.BuildWorkers, "upload_workers", b.opts.UploadWorkers)
	return g.Wait()
}

// logKey carries a worker's logger in its context.
type logKey struct{}

// logFor returns the logger of the worker running ctx (named after the
// worker, as nodepool.builder.<worker>), or the builder's.
func (b *Builder) logFor(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return b.log
}

// loop runs body every interval until ctx ends, with the worker's logger
// in body's context.
func (b *Builder) loop(ctx context.Context, name string, interval time.Duration, body func(context.Context) error) {
	log := b.log.With(logconfig.LoggerKey, "nodepool.builder."+name)
	ctx = context.WithValue(ctx, logKey{}, log)
	for ctx.Err() == nil {
		if !b.waitZooKeeper(ctx, log) {
			return
		}
		if err := body(ctx); err != nil && ctx.Err() == nil {
			log.Error("worker iteration failed", "error", err)
			if !sleep(ctx, errorBackoff) {
				return
			}
		}
		if !sleep(ctx, interval) {
			return
		}
	}
}

// waitZooKeeper blocks while the session is suspended or lost.
func (b *Builder) waitZooKeeper(ctx context.Context, log *slog.Logger) bool {
	if b.zk.Connected() {
		return true
	}
	log.Info("ZooKeeper suspended. Waiting")
	for !b.zk.Connected() {
		if !sleep(ctx, suspendedRecheck) {
			return false
		}
	}
	log.Info("ZooKeeper available. Resuming")
	return true
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// stateTime returns the clock as float Unix seconds.
func (b *Builder) stateTime() float64 {
	return float64(b.now().UnixNano()) / 1e9
}
