package gce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	compute "google.golang.org/api/compute/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"google.golang.org/api/option/internaloption"
	htransport "google.golang.org/api/transport/http"

	"golang.org/x/sync/singleflight"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/listcache"
)

// Tunables of the adapter.
const (
	// apiWorkers bounds concurrent API calls of machines.
	apiWorkers = 8
	// apiTimeout bounds one API call made for a machine.
	apiTimeout = 5 * time.Minute
	// defaultListTTL is the age after which the shared listings are
	// fetched again.
	defaultListTTL = 5 * time.Second
	// imageTTL is how long an image family's image is used before the
	// family is looked up again.
	imageTTL = time.Hour
)

// overrides replace the client options and the listing TTL (tests reach
// the in-process fake through them); nil options and a zero TTL mean the
// production behaviour.
var overrides struct {
	sync.Mutex
	opts []option.ClientOption
	ttl  time.Duration
}

// Adapter is a GCE provider's connection to Compute Engine.
type Adapter struct {
	cfg *driver.ProviderConfig
	st  *ProviderSettings
	log *slog.Logger
	svc *compute.Service

	workers   chan struct{}
	instances *listcache.Cache[*compute.Instance]
	pending   *listcache.Cache[*compute.Operation]

	lookups      singleflight.Group // one lookup per key at a time
	mu           sync.Mutex
	machineTypes map[string]*compute.MachineType
	images       map[string]imageLookup
}

type imageLookup struct {
	link string
	at   time.Time
}

var (
	_ driver.Adapter       = (*Adapter)(nil)
	_ driver.QuotaReporter = (*Adapter)(nil)
	_ driver.LeakCleaner   = (*Adapter)(nil)
)

// Open returns the adapter of a GCE provider. Credentials are Application
// Default Credentials, found by the client library; every request goes
// through a transport that spaces requests by the provider's rate.
func (Driver) Open(ctx context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	st, ok := cfg.Settings.(*ProviderSettings)
	if !ok || st == nil {
		return nil, fmt.Errorf("gce: provider %s has no gce settings", cfg.Name)
	}
	overrides.Lock()
	extra, ttl := overrides.opts, overrides.ttl
	overrides.Unlock()
	if ttl == 0 {
		ttl = defaultListTTL
	}
	var interval time.Duration
	if rps := st.RequestsPerSecond(); rps > 0 {
		interval = time.Duration(float64(time.Second) / rps)
	}
	base := newRateTransport(http.DefaultTransport.(*http.Transport).Clone(), interval)
	opts := append([]option.ClientOption{
		internaloption.WithDefaultScopes(compute.CloudPlatformScope),
		internaloption.EnableNewAuthLibrary(),
	}, extra...)
	// The transport outlives Open: token refreshes must not use its ctx.
	tr, err := htransport.NewTransport(context.WithoutCancel(ctx), base, opts...)
	if err != nil {
		return nil, fmt.Errorf("gce: provider %s: credentials: %w", cfg.Name, err)
	}
	svc, err := compute.NewService(ctx, append(extra, option.WithHTTPClient(&http.Client{Transport: tr}))...)
	if err != nil {
		return nil, fmt.Errorf("gce: provider %s: %w", cfg.Name, err)
	}
	svc.UserAgent = "nodepool-go"
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &Adapter{
		cfg: cfg, st: st, log: log, svc: svc,
		workers:      make(chan struct{}, apiWorkers),
		machineTypes: map[string]*compute.MachineType{},
		images:       map[string]imageLookup{},
	}
	a.instances = listcache.New(ttl, log, a.fetchInstances)
	a.pending = listcache.New(ttl, log, a.fetchPendingOps)
	return a, nil
}

// Close releases nothing: in-flight calls end with their own timeouts.
func (a *Adapter) Close() error { return nil }

func (a *Adapter) fetchInstances(ctx context.Context) ([]*compute.Instance, error) {
	var out []*compute.Instance
	err := a.svc.Instances.List(a.st.Project, a.st.Zone).Pages(ctx, func(l *compute.InstanceList) error {
		out = append(out, l.Items...)
		return nil
	})
	if err != nil {
		return nil, classify(err, "gce: listing instances")
	}
	return out, nil
}

// fetchPendingOps lists the zone's operations that are not done: an
// operation a machine waits on is done once a listing that started after
// the operation was created no longer shows it.
func (a *Adapter) fetchPendingOps(ctx context.Context) ([]*compute.Operation, error) {
	var out []*compute.Operation
	err := a.svc.ZoneOperations.List(a.st.Project, a.st.Zone).Filter(`status != "DONE"`).Pages(ctx, func(l *compute.OperationList) error {
		out = append(out, l.Items...)
		return nil
	})
	if err != nil {
		return nil, classify(err, "gce: listing zone operations")
	}
	return out, nil
}

// future is the result of an asynchronous API call.
type future[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// ready reports whether the call finished.
func (f *future[T]) ready() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// submit runs fn on the adapter's workers, detached from ctx's
// cancellation but bounded by apiTimeout.
func submit[T any](ctx context.Context, a *Adapter, fn func(ctx context.Context) (T, error)) *future[T] {
	f := &future[T]{done: make(chan struct{})}
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer close(f.done)
		a.workers <- struct{}{}
		defer func() { <-a.workers }()
		ctx, cancel := context.WithTimeout(ctx, apiTimeout)
		defer cancel()
		f.val, f.err = fn(ctx)
	}()
	return f
}

// classify turns a client library error into the driver's error kinds:
// 404 is not found; quotaExceeded is quota; throttling (403/429
// rateLimitExceeded), resourceNotReady, 5xx, timeouts and dropped
// connections are transient. Anything else (refused credentials
// included) is returned as it is.
func classify(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		reasons := map[string]bool{}
		for _, e := range ge.Errors {
			reasons[e.Reason] = true
		}
		switch {
		case ge.Code == http.StatusNotFound:
			return driver.NotFoundError("%s: %w", msg, err)
		case reasons["quotaExceeded"]:
			return driver.QuotaError("%s: %w", msg, err)
		case ge.Code == http.StatusTooManyRequests || reasons["rateLimitExceeded"] || reasons["userRateLimitExceeded"] ||
			reasons["resourceNotReady"] || ge.Code >= 500:
			return driver.TransientError("%s: %w", msg, err)
		}
		return fmt.Errorf("%s: %w", msg, err)
	}
	var ne net.Error
	if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return driver.TransientError("%s: %w", msg, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// operationError classifies the error an operation ended with: quota and
// the zone's exhausted resource pools steer the launcher; anything else
// fails with the operation's messages.
func operationError(op *compute.Operation, what string) error {
	if op == nil || op.Error == nil || len(op.Error.Errors) == 0 {
		return nil
	}
	codes := make([]string, 0, len(op.Error.Errors))
	quota, capacity := false, false
	for _, e := range op.Error.Errors {
		codes = append(codes, e.Code+": "+e.Message)
		switch e.Code {
		case "QUOTA_EXCEEDED":
			quota = true
		case "ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "RESOURCE_POOL_EXHAUSTED":
			capacity = true
		}
	}
	detail := strings.Join(codes, "; ")
	switch {
	case quota:
		return driver.QuotaError("gce: %s: %s", what, detail)
	case capacity:
		return driver.CapacityError("gce: %s: %s", what, detail)
	}
	return fmt.Errorf("gce: %s: %s", what, detail)
}

// machineType returns a machine type of the zone, cached for the
// adapter's life (failures are not cached).
func (a *Adapter) machineType(ctx context.Context, name string) (*compute.MachineType, error) {
	a.mu.Lock()
	mt := a.machineTypes[name]
	a.mu.Unlock()
	if mt != nil {
		return mt, nil
	}
	v, err, _ := a.lookups.Do("machineType/"+name, func() (any, error) {
		mt, err := a.svc.MachineTypes.Get(a.st.Project, a.st.Zone, name).Context(ctx).Do()
		if err != nil {
			return nil, classify(err, "gce: machine type %s", name)
		}
		a.mu.Lock()
		a.machineTypes[name] = mt
		a.mu.Unlock()
		return mt, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*compute.MachineType), nil
}

// imageLink returns the source image of a cloud image: its image-id, or
// the newest image of its image-family (looked up in image-project, else
// the provider's project), cached for imageTTL.
func (a *Adapter) imageLink(ctx context.Context, ci *CloudImage) (string, error) {
	if ci.ImageID != "" {
		return ci.ImageID, nil
	}
	if ci.ImageFamily == "" {
		return "", fmt.Errorf("gce: cloud image %s has neither image-id nor image-family", ci.Name)
	}
	project := ci.ImageProject
	if project == "" {
		project = a.st.Project
	}
	key := project + "/" + ci.ImageFamily
	a.mu.Lock()
	l, ok := a.images[key]
	a.mu.Unlock()
	if ok && time.Since(l.at) < imageTTL {
		return l.link, nil
	}
	v, err, _ := a.lookups.Do("image/"+key, func() (any, error) {
		img, err := a.svc.Images.GetFromFamily(project, ci.ImageFamily).Context(ctx).Do()
		if err != nil {
			// A missing image fails the launch like any other error.
			return nil, plainNotFound(classify(err, "gce: image family %s of project %s", ci.ImageFamily, project))
		}
		a.mu.Lock()
		a.images[key] = imageLookup{link: img.SelfLink, at: time.Now()}
		a.mu.Unlock()
		return img.SelfLink, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}
