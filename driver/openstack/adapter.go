package openstack

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	gos "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/external"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/listcache"
)

// Tunables of the adapter.
const (
	// apiWorkers bounds concurrent asynchronous API calls (upstream's
	// 10-worker API pool).
	apiWorkers = 10
	// apiTimeout bounds one asynchronous API call.
	apiTimeout = 5 * time.Minute
	// listTTL is the age after which cached listings are refreshed.
	listTTL = time.Second
	// imageRecheck is how long a missing cloud image is remembered.
	imageRecheck = 300 * time.Second
)

// Counter is implemented by launcher services (driver.Env.Services) that
// count statsd keys; the adapter counts the DOWN ports and floating IPs
// it deletes itself during leak cleanup
// (nodepool.provider.<p>.leaked.{ports,floatingips}).
type Counter interface {
	// Incr adds n to the statsd counter key.
	Incr(key string, n int)
}

// Adapter is an OpenStack provider's connection to its cloud.
type Adapter struct {
	cfg     *driver.ProviderConfig
	st      *ProviderSettings
	log     *slog.Logger
	counter Counter

	authOpts gophercloud.AuthOptions
	epOpts   gophercloud.EndpointOpts
	http     http.Client
	workers  chan struct{}

	clientMu sync.Mutex
	cl       *clients

	epMu      sync.Mutex
	endpoints map[string]string // service client endpoint → service type

	servers *listcache.Cache[servers.Server]

	cacheMu    sync.Mutex
	flavorList []flavors.Flavor // sorted by (ram, name)
	netList    []network
	azList     []string
	azKnown    bool
	imageIDs   map[string]imageLookup

	portMu          sync.Mutex
	lastPortCleanup time.Time
	downPorts       map[string]bool
}

type clients struct {
	compute *gophercloud.ServiceClient
	network *gophercloud.ServiceClient
	image   *gophercloud.ServiceClient
	volume  *gophercloud.ServiceClient // nil without a volume service
}

type network struct {
	networks.Network
	external.NetworkExternalExt
}

type imageLookup struct {
	id string
	at time.Time
}

var (
	_ driver.Adapter           = (*Adapter)(nil)
	_ driver.QuotaReporter     = (*Adapter)(nil)
	_ driver.LeakCleaner       = (*Adapter)(nil)
	_ driver.ImageManager      = (*Adapter)(nil)
	_ driver.AZLister          = (*Adapter)(nil)
	_ driver.LabelChecker      = (*Adapter)(nil)
	_ driver.LabelErrorChecker = (*Adapter)(nil)
)

// Open returns the adapter of an OpenStack provider. It reads the cloud's
// credentials from clouds.yaml (found as openstackclient does, e.g. through
// OS_CLIENT_CONFIG_FILE) by the provider's cloud name and region;
// authentication happens on the first API call.
func (Driver) Open(ctx context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	st, ok := cfg.Settings.(*ProviderSettings)
	if !ok || st == nil {
		return nil, fmt.Errorf("openstack: provider %s has no openstack settings", cfg.Name)
	}
	opts := []clouds.ParseOption{clouds.WithCloudName(st.Cloud)}
	if st.RegionName != "" {
		opts = append(opts, clouds.WithRegion(st.RegionName))
	}
	ao, eo, tlsConfig, err := clouds.Parse(opts...)
	if err != nil {
		return nil, fmt.Errorf("openstack: provider %s: cloud %q: %w", cfg.Name, st.Cloud, err)
	}
	ao.AllowReauth = true
	base := http.DefaultTransport.(*http.Transport).Clone()
	if tlsConfig != nil {
		base.TLSClientConfig = tlsConfig
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &Adapter{
		cfg: cfg, st: st, log: log,
		authOpts: ao, epOpts: eo,
		workers:  make(chan struct{}, apiWorkers),
		imageIDs: map[string]imageLookup{},
	}
	// Calls are timed once their turn under the rate limit has come, as
	// upstream's SDK times its requests.
	timed := driver.TaskTransport(base, env, cfg.Name, a.callName)
	a.http = http.Client{Transport: newRateTransport(timed, time.Duration(st.Rate*float64(time.Second)))}
	if c, ok := env.Services.(Counter); ok {
		a.counter = c
	}
	a.servers = listcache.New(listTTL, log, a.fetchServers)
	return a, nil
}

// Close releases nothing: in-flight calls end with their own timeouts.
func (a *Adapter) Close() error { return nil }

// clients authenticates on first use and returns the service clients.
func (a *Adapter) clients(ctx context.Context) (*clients, error) {
	a.clientMu.Lock()
	defer a.clientMu.Unlock()
	if a.cl != nil {
		return a.cl, nil
	}
	pc, err := gos.NewClient(a.authOpts.IdentityEndpoint)
	if err != nil {
		return nil, fmt.Errorf("openstack: %w", err)
	}
	pc.HTTPClient = a.http
	pc.UserAgent.Prepend("nodepool-go")
	if err := gos.Authenticate(ctx, pc, a.authOpts); err != nil {
		return nil, fmt.Errorf("openstack: authenticating to cloud %s: %w", a.st.Cloud, err)
	}
	a.setEndpoints(pc)
	cl := &clients{}
	if cl.compute, err = gos.NewComputeV2(pc, a.epOpts); err != nil {
		return nil, fmt.Errorf("openstack: compute endpoint: %w", err)
	}
	if cl.network, err = gos.NewNetworkV2(pc, a.epOpts); err != nil {
		return nil, fmt.Errorf("openstack: network endpoint: %w", err)
	}
	if cl.image, err = gos.NewImageV2(pc, a.epOpts); err != nil {
		return nil, fmt.Errorf("openstack: image endpoint: %w", err)
	}
	if v, err := gos.NewBlockStorageV3(pc, a.epOpts); err == nil {
		cl.volume = v
	} else {
		a.log.Info("cloud has no block-storage v3 endpoint; volume quota is not checked", "error", err)
	}
	a.cl = cl
	return cl, nil
}

// setEndpoints records the service type of each catalog endpoint the
// adapter uses, for callName (before the service clients are made, so
// that their version discovery is named after its service too).
func (a *Adapter) setEndpoints(pc *gophercloud.ProviderClient) {
	eps := map[string]string{}
	for _, typ := range []string{"compute", "network", "image", "volumev3", "block-storage"} {
		eo := a.epOpts
		eo.ApplyDefaults(typ)
		u, err := pc.EndpointLocator(eo)
		if err != nil || u == "" {
			continue
		}
		name := typ
		if typ == "volumev3" {
			name = "block-storage"
		}
		eps[strings.TrimSuffix(u, "/")] = name
	}
	a.epMu.Lock()
	a.endpoints = eps
	a.epMu.Unlock()
}

// callName names an API request for the nodepool.task statistics:
// the service whose endpoint the URL starts with (identity before the
// service clients exist, and for any other URL), then APICallName of the
// path below that endpoint.
func (a *Adapter) callName(r *http.Request) string {
	u := r.URL.String()
	service, rest := "identity", r.URL.Path
	a.epMu.Lock()
	best := ""
	for ep, typ := range a.endpoints {
		boundary := len(u) == len(ep) || (len(u) > len(ep) && strings.ContainsRune("/?#", rune(u[len(ep)])))
		if strings.HasPrefix(u, ep) && boundary && len(ep) > len(best) {
			best, service = ep, typ
		}
	}
	a.epMu.Unlock()
	if best != "" {
		rest = strings.TrimPrefix(u, best)
		if i := strings.IndexAny(rest, "?#"); i >= 0 {
			rest = rest[:i]
		}
	}
	return driver.APICallName(service, r.Method, rest)
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

// submit runs fn on the API worker pool, detached from ctx's
// cancellation but bounded by apiTimeout.
func submit[T any](ctx context.Context, a *Adapter, fn func(ctx context.Context, cl *clients) (T, error)) *future[T] {
	f := &future[T]{done: make(chan struct{})}
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer close(f.done)
		a.workers <- struct{}{}
		defer func() { <-a.workers }()
		ctx, cancel := context.WithTimeout(ctx, apiTimeout)
		defer cancel()
		cl, err := a.clients(ctx)
		if err != nil {
			f.err = err
			return
		}
		f.val, f.err = fn(ctx, cl)
	}()
	return f
}

// classify turns a gophercloud error into the driver's error kinds.
func classify(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	low := strings.ToLower(err.Error())
	switch {
	case gophercloud.ResponseCodeIs(err, http.StatusNotFound):
		return driver.NotFoundError("%s: %v", msg, err)
	case strings.Contains(low, "quota exceeded") || strings.Contains(low, "number of ports exceeded"):
		return driver.QuotaError("%s: %v", msg, err)
	case gophercloud.ResponseCodeIs(err, http.StatusServiceUnavailable) ||
		gophercloud.ResponseCodeIs(err, http.StatusTooManyRequests) ||
		gophercloud.ResponseCodeIs(err, http.StatusGatewayTimeout):
		return driver.TransientError("%s: %v", msg, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// is400 reports whether err is an HTTP 400 (which clears the caches).
func is400(err error) bool { return gophercloud.ResponseCodeIs(err, http.StatusBadRequest) }

// clearCaches forgets flavors, images, networks and zones (after an HTTP
// 400 from Nova, as upstream does).
func (a *Adapter) clearCaches() {
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	a.flavorList, a.netList, a.azList, a.azKnown = nil, nil, nil, false
	a.imageIDs = map[string]imageLookup{}
}

func (a *Adapter) fetchServers(ctx context.Context) ([]servers.Server, error) {
	cl, err := a.clients(ctx)
	if err != nil {
		return nil, err
	}
	page, err := servers.List(cl.compute, servers.ListOpts{}).AllPages(ctx)
	if err != nil {
		return nil, classify(err, "openstack: listing servers")
	}
	all, err := servers.ExtractServers(page)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, s := range all {
		if s.Status != "DELETED" {
			out = append(out, s)
		}
	}
	return out, nil
}

// flavors returns the cloud's flavors sorted by (ram, name), cached.
func (a *Adapter) flavors(ctx context.Context) ([]flavors.Flavor, error) {
	a.cacheMu.Lock()
	if a.flavorList != nil {
		defer a.cacheMu.Unlock()
		return a.flavorList, nil
	}
	a.cacheMu.Unlock()
	cl, err := a.clients(ctx)
	if err != nil {
		return nil, err
	}
	page, err := flavors.ListDetail(cl.compute, flavors.ListOpts{}).AllPages(ctx)
	if err != nil {
		return nil, classify(err, "openstack: listing flavors")
	}
	list, err := flavors.ExtractFlavors(page)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].RAM != list[j].RAM {
			return list[i].RAM < list[j].RAM
		}
		return list[i].Name < list[j].Name
	})
	a.cacheMu.Lock()
	a.flavorList = list
	a.cacheMu.Unlock()
	return list, nil
}

// selectFlavor picks a label's flavor.
func selectFlavor(list []flavors.Flavor, ls *LabelSettings) (*flavors.Flavor, error) {
	for i := range list {
		f := &list[i]
		if ls.MinRAM > 0 {
			if f.RAM >= ls.MinRAM && (ls.FlavorName == "" || strings.Contains(f.Name, ls.FlavorName)) {
				return f, nil
			}
			continue
		}
		if f.Name == ls.FlavorName || f.ID == ls.FlavorName {
			return f, nil
		}
	}
	return nil, fmt.Errorf("openstack: unable to find flavor with min-ram %d and name %q", ls.MinRAM, ls.FlavorName)
}

func labelSettings(l *driver.LabelConfig) *LabelSettings {
	if l != nil {
		if ls, ok := l.Settings.(*LabelSettings); ok && ls != nil {
			return ls
		}
	}
	return &LabelSettings{}
}

func poolSettings(p *driver.PoolConfig) *PoolSettings {
	if p != nil {
		if ps, ok := p.Settings.(*PoolSettings); ok && ps != nil {
			return ps
		}
	}
	return &PoolSettings{}
}

// labelFlavor returns the flavor of a label.
func (a *Adapter) labelFlavor(ctx context.Context, l *driver.LabelConfig) (*flavors.Flavor, error) {
	list, err := a.flavors(ctx)
	if err != nil {
		return nil, err
	}
	return selectFlavor(list, labelSettings(l))
}

// flavorByID finds a flavor in the cached list.
func (a *Adapter) flavorByID(ctx context.Context, id string) *flavors.Flavor {
	list, err := a.flavors(ctx)
	if err != nil {
		return nil
	}
	for i := range list {
		if list[i].ID == id {
			return &list[i]
		}
	}
	return nil
}

// networks returns the cloud's networks, cached.
func (a *Adapter) networks(ctx context.Context) ([]network, error) {
	a.cacheMu.Lock()
	if a.netList != nil {
		defer a.cacheMu.Unlock()
		return a.netList, nil
	}
	a.cacheMu.Unlock()
	cl, err := a.clients(ctx)
	if err != nil {
		return nil, err
	}
	page, err := networks.List(cl.network, networks.ListOpts{}).AllPages(ctx)
	if err != nil {
		return nil, classify(err, "openstack: listing networks")
	}
	var list []network
	if err := networks.ExtractNetworksInto(page, &list); err != nil {
		return nil, err
	}
	if list == nil {
		list = []network{}
	}
	a.cacheMu.Lock()
	a.netList = list
	a.cacheMu.Unlock()
	return list, nil
}

// networkIDs resolves network names or ids.
func (a *Adapter) networkIDs(ctx context.Context, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	list, err := a.networks(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(names))
next:
	for _, n := range names {
		for _, net := range list {
			if net.ID == n || net.Name == n {
				out = append(out, net.ID)
				continue next
			}
		}
		return nil, fmt.Errorf("openstack: unable to find network %q", n)
	}
	return out, nil
}

// externalNetwork returns the first external network, or nil.
func (a *Adapter) externalNetwork(ctx context.Context) (*network, error) {
	list, err := a.networks(ctx)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if list[i].External {
			return &list[i], nil
		}
	}
	return nil, nil
}

// cloudImageID resolves a cloud image to an active image id ("" when
// absent); lookups by name are cached, misses for imageRecheck.
func (a *Adapter) cloudImageID(ctx context.Context, ci *CloudImage) (string, error) {
	if ci.ImageID != "" {
		return ci.ImageID, nil
	}
	name := ci.LookupName()
	a.cacheMu.Lock()
	if l, ok := a.imageIDs[name]; ok && (l.id != "" || time.Since(l.at) < imageRecheck) {
		a.cacheMu.Unlock()
		return l.id, nil
	}
	a.cacheMu.Unlock()
	cl, err := a.clients(ctx)
	if err != nil {
		return "", err
	}
	page, err := images.List(cl.image, images.ListOpts{Name: name, Status: images.ImageStatusActive}).AllPages(ctx)
	if err != nil {
		return "", classify(err, "openstack: looking up image %s", name)
	}
	list, err := images.ExtractImages(page)
	if err != nil {
		return "", err
	}
	id := ""
	for _, im := range list {
		if im.Name == name && im.Status == images.ImageStatusActive {
			id = im.ID
			break
		}
	}
	if id == "" {
		// Also accept an image id given as the name.
		if im, err := images.Get(ctx, cl.image, name).Extract(); err == nil && im.Status == images.ImageStatusActive {
			id = im.ID
		}
	}
	a.cacheMu.Lock()
	a.imageIDs[name] = imageLookup{id: id, at: time.Now()}
	a.cacheMu.Unlock()
	return id, nil
}

// AvailabilityZones returns the available compute zones, cached until an
// HTTP 400.
func (a *Adapter) AvailabilityZones(ctx context.Context) ([]string, error) {
	a.cacheMu.Lock()
	if a.azKnown {
		defer a.cacheMu.Unlock()
		return append([]string(nil), a.azList...), nil
	}
	a.cacheMu.Unlock()
	cl, err := a.clients(ctx)
	if err != nil {
		return nil, err
	}
	zones, err := listAZs(ctx, cl)
	if err != nil {
		return nil, err
	}
	a.cacheMu.Lock()
	a.azList, a.azKnown = zones, true
	a.cacheMu.Unlock()
	return append([]string(nil), zones...), nil
}

// LabelReady reports whether a cloud-image label's image exists.
func (a *Adapter) LabelReady(ctx context.Context, label *driver.LabelConfig) bool {
	return a.CheckLabel(ctx, label) == nil
}

// CheckLabel returns nil when a cloud-image label's image exists, a
// KindNotFound error when it does not, and the cloud's error when the
// lookup failed.
func (a *Adapter) CheckLabel(ctx context.Context, label *driver.LabelConfig) error {
	if label == nil || label.CloudImage == "" {
		return nil
	}
	ci := a.st.CloudImage(label.CloudImage)
	if ci == nil {
		return driver.NotFoundError("cloud image %s is not configured", label.CloudImage)
	}
	id, err := a.cloudImageID(ctx, ci)
	if err != nil {
		a.log.Warn("checking cloud image failed", "label", label.Name, "error", err)
		return err
	}
	if id == "" {
		return driver.NotFoundError("cloud image %s not found", label.CloudImage)
	}
	return nil
}
