package ibmvpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/IBM/go-sdk-core/v5/core"
	"github.com/IBM/platform-services-go-sdk/resourcecontrollerv2"
	"github.com/IBM/platform-services-go-sdk/resourcemanagerv2"
	"github.com/IBM/vpc-go-sdk/vpcv1"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/listcache"
)

// Tunables of the adapter.
const (
	// apiWorkers bounds concurrent asynchronous API calls.
	apiWorkers = 10
	// apiTimeout bounds one asynchronous API call.
	apiTimeout = 5 * time.Minute
	// pageLimit is the page size of listings.
	pageLimit = 100
	// sdkRetries and sdkRetryMax configure the SDK's own retries of
	// throttled (429) and failed (5xx) calls.
	sdkRetries  = 3
	sdkRetryMax = 30 * time.Second
	// setupRetry is how long a failed setup's error is returned before
	// the setup is tried again.
	setupRetry = 10 * time.Second
)

// listTTL is the age after which the cached instance, floating IP and
// image listings are refreshed (one listing of each per provider); tests
// shorten it.
var listTTL = defaultListTTL

// defaultListTTL is listTTL outside tests.
const defaultListTTL = 5 * time.Second

// imagePollInterval is the pause between two checks of an image being
// imported; tests shorten it.
var imagePollInterval = 30 * time.Second

// credentialsFileMu serialises the reading of credentials files: the SDK
// core finds its credentials file through the IBM_CREDENTIALS_FILE
// environment variable, which the adapter sets while it reads a
// provider's credentials-file and restores afterwards.
var credentialsFileMu sync.Mutex

// Adapter is an IBM VPC provider's connection to its cloud.
type Adapter struct {
	cfg *driver.ProviderConfig
	st  *ProviderSettings
	log *slog.Logger

	auth    core.Authenticator
	vpc     *vpcv1.VpcV1
	rm      *resourcemanagerv2.ResourceManagerV2
	rc      *resourcecontrollerv2.ResourceControllerV2
	rate    *rateTransport
	workers chan struct{}

	setupMu  sync.Mutex
	ready    bool
	setupErr error     // the last failed setup's error
	setupAt  time.Time // when it failed
	vpcID    string
	subnets  map[string]vpcv1.Subnet  // by name
	keys     map[string]string        // key name → id
	prof     map[string]profileQuota  // by profile name
	rgMu     sync.Mutex               // guards rgs
	rgs      map[string]resourceGroup // by name

	instances *listcache.Cache[vpcv1.Instance]
	fips      *listcache.Cache[vpcv1.FloatingIP]
	images    *listcache.Cache[vpcv1.Image]

	// created remembers the ids of instances and floating IPs this adapter
	// created, by name, until they are deleted: a delete that comes before
	// the listing shows them still finds them.
	created sync.Map // name → *createdIDs

	cosMu sync.Mutex
	cos   *cosClient
}

type createdIDs struct {
	mu       sync.Mutex
	instance string
	fip      string
}

type resourceGroup struct{ id, name string }

// profileQuota is what an instance of a profile costs: vCPUs, and memory
// in MiB (profiles report GiB).
type profileQuota struct{ cores, ram float64 }

var (
	_ driver.Adapter       = (*Adapter)(nil)
	_ driver.QuotaReporter = (*Adapter)(nil)
	_ driver.LeakCleaner   = (*Adapter)(nil)
	_ driver.ImageManager  = (*Adapter)(nil)
)

// The adapter is no driver.LabelChecker: as upstream, a cloud image that
// cannot be found fails the launch rather than taking the label out of
// service.

// Open returns the adapter of an IBM VPC provider. Credentials are read as
// IBM's SDKs read them for the service "vpc": from the provider's
// credentials-file when set (VPC_AUTH_TYPE=iam, VPC_APIKEY=..., optionally
// VPC_AUTH_URL and VPC_URL), else from the environment variables of the
// same names or the default credentials file. The VPC endpoint is the
// region's unless VPC_URL says otherwise; RESOURCE_MANAGER_URL and
// RESOURCE_CONTROLLER_URL likewise override the global endpoints. No
// request is made until the first machine or listing needs one.
func (Driver) Open(ctx context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	st, ok := cfg.Settings.(*ProviderSettings)
	if !ok || st == nil {
		return nil, fmt.Errorf("ibmvpc: provider %s has no ibmvpc settings", cfg.Name)
	}
	if strings.Contains(cfg.Name, "_") {
		return nil, fmt.Errorf("ibmvpc: provider %s: provider and pool names may not contain underscores", cfg.Name)
	}
	for _, p := range cfg.Pools {
		if strings.Contains(p.Name, "_") {
			return nil, fmt.Errorf("ibmvpc: provider %s: provider and pool names may not contain underscores (pool %s)", cfg.Name, p.Name)
		}
	}
	auth, props, err := readCredentials(st.CredentialsFile)
	if err != nil {
		return nil, fmt.Errorf("ibmvpc: provider %s: credentials: %w", cfg.Name, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	var interval time.Duration
	if st.Rate > 0 {
		interval = time.Duration(float64(time.Second) / st.Rate)
	}
	rate := newRateTransport(http.DefaultTransport.(*http.Transport).Clone(), interval)
	client := func() *http.Client { return &http.Client{Transport: rate, Timeout: apiTimeout} }

	vpcURL := props["vpc"]["URL"]
	if vpcURL == "" {
		vpcURL = fmt.Sprintf("https://%s.iaas.cloud.ibm.com/v1", st.Region)
	}
	vpc, err := vpcv1.NewVpcV1(&vpcv1.VpcV1Options{URL: vpcURL, Authenticator: auth})
	if err != nil {
		return nil, fmt.Errorf("ibmvpc: provider %s: %w", cfg.Name, err)
	}
	vpc.Service.SetHTTPClient(client())
	vpc.Service.EnableRetries(sdkRetries, sdkRetryMax)

	rmOpts := &resourcemanagerv2.ResourceManagerV2Options{Authenticator: auth, URL: props["resource_manager"]["URL"]}
	rm, err := resourcemanagerv2.NewResourceManagerV2(rmOpts)
	if err != nil {
		return nil, fmt.Errorf("ibmvpc: provider %s: %w", cfg.Name, err)
	}
	rm.Service.SetHTTPClient(client())
	rm.Service.EnableRetries(sdkRetries, sdkRetryMax)

	rcOpts := &resourcecontrollerv2.ResourceControllerV2Options{Authenticator: auth, URL: props["resource_controller"]["URL"]}
	rc, err := resourcecontrollerv2.NewResourceControllerV2(rcOpts)
	if err != nil {
		return nil, fmt.Errorf("ibmvpc: provider %s: %w", cfg.Name, err)
	}
	rc.Service.SetHTTPClient(client())
	rc.Service.EnableRetries(sdkRetries, sdkRetryMax)

	a := &Adapter{
		cfg: cfg, st: st, log: log,
		auth: auth, vpc: vpc, rm: rm, rc: rc, rate: rate,
		workers: make(chan struct{}, apiWorkers),
	}
	a.instances = listcache.New(listTTL, log, a.fetchInstances)
	a.fips = listcache.New(listTTL, log, a.fetchFloatingIPs)
	a.images = listcache.New(listTTL, log, a.fetchImages)
	return a, nil
}

// readCredentials returns the authenticator of the service "vpc" and the
// external configuration of the services the adapter uses, read from the
// credentials file (when given) and the environment.
func readCredentials(file string) (core.Authenticator, map[string]map[string]string, error) {
	credentialsFileMu.Lock()
	defer credentialsFileMu.Unlock()
	if file != "" {
		old, had := os.LookupEnv("IBM_CREDENTIALS_FILE")
		if err := os.Setenv("IBM_CREDENTIALS_FILE", file); err != nil {
			return nil, nil, err
		}
		defer func() {
			if had {
				_ = os.Setenv("IBM_CREDENTIALS_FILE", old)
			} else {
				_ = os.Unsetenv("IBM_CREDENTIALS_FILE")
			}
		}()
		if _, err := os.Stat(file); err != nil {
			return nil, nil, fmt.Errorf("credentials-file: %w", err)
		}
	}
	auth, err := core.GetAuthenticatorFromEnvironment("vpc")
	if err != nil {
		return nil, nil, err
	}
	if auth == nil {
		return nil, nil, errors.New("no credentials found for the service vpc (VPC_AUTH_TYPE, VPC_APIKEY, ...)")
	}
	props := map[string]map[string]string{}
	for _, svc := range []string{"vpc", "resource_manager", "resource_controller"} {
		p, err := core.GetServiceProperties(svc)
		if err != nil {
			return nil, nil, err
		}
		if p == nil {
			p = map[string]string{}
		}
		props[svc] = p
	}
	return auth, props, nil
}

// Close releases nothing: in-flight calls end with their own timeouts.
func (a *Adapter) Close() error { return nil }

// future is the result of an asynchronous API call.
type future[T any] struct {
	done chan struct{}
	val  T
	err  error
}

func (f *future[T]) ready() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// step drives one asynchronous call of a machine: the first call submits
// fn into *slot, later calls report done once it finished, with its value
// or error, and clear the slot so a retried step submits anew.
func step[T any](ctx context.Context, a *Adapter, slot **future[T], fn func(ctx context.Context) (T, error)) (val T, done bool, err error) {
	if *slot == nil {
		*slot = submit(ctx, a, fn)
		return val, false, nil
	}
	if !(*slot).ready() {
		return val, false, nil
	}
	f := *slot
	*slot = nil
	return f.val, true, f.err
}

// submit runs fn on the API worker pool, detached from ctx's cancellation
// but bounded by apiTimeout.
func submit[T any](ctx context.Context, a *Adapter, fn func(ctx context.Context) (T, error)) *future[T] {
	f := &future[T]{done: make(chan struct{})}
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer close(f.done)
		a.workers <- struct{}{}
		defer func() { <-a.workers }()
		ctx, cancel := context.WithTimeout(ctx, apiTimeout)
		defer cancel()
		if err := a.setup(ctx); err != nil {
			f.err = err
			return
		}
		f.val, f.err = fn(ctx)
	}()
	return f
}

// setup looks up the VPC, subnets, keys, profiles and resource groups and
// creates the pools' resource groups, once (again after a failure).
func (a *Adapter) setup(ctx context.Context) error {
	a.setupMu.Lock()
	defer a.setupMu.Unlock()
	if a.ready {
		return nil
	}
	// A failed setup is not repeated for setupRetry: every machine would
	// otherwise repeat its listings.
	if a.setupErr != nil && time.Since(a.setupAt) < setupRetry {
		return a.setupErr
	}
	if err := a.setupLocked(ctx); err != nil {
		a.setupErr, a.setupAt = err, time.Now()
		return err
	}
	a.ready, a.setupErr = true, nil
	return nil
}

func (a *Adapter) setupLocked(ctx context.Context) error {
	vpcs, err := a.vpc.NewVpcsPager(&vpcv1.ListVpcsOptions{Limit: core.Int64Ptr(pageLimit)})
	if err != nil {
		return err
	}
	all, err := vpcs.GetAllWithContext(ctx)
	if err != nil {
		return classify(err, "ibmvpc: listing VPCs")
	}
	a.vpcID = ""
	for _, v := range all {
		if deref(v.Name) == a.st.VPC {
			a.vpcID = deref(v.ID)
			break
		}
	}
	if a.vpcID == "" {
		return fmt.Errorf("ibmvpc: unable to find vpc %s", a.st.VPC)
	}
	sp, err := a.vpc.NewSubnetsPager(&vpcv1.ListSubnetsOptions{Limit: core.Int64Ptr(pageLimit)})
	if err != nil {
		return err
	}
	subnets, err := sp.GetAllWithContext(ctx)
	if err != nil {
		return classify(err, "ibmvpc: listing subnets")
	}
	a.subnets = map[string]vpcv1.Subnet{}
	for _, s := range subnets {
		a.subnets[deref(s.Name)] = s
	}
	for _, p := range a.cfg.Pools {
		ps := poolSettings(p)
		sn, ok := a.subnets[ps.Subnet]
		if !ok {
			return fmt.Errorf("ibmvpc: unable to find subnet %s of pool %s", ps.Subnet, p.Name)
		}
		if z := zoneName(sn.Zone); z != ps.Zone {
			return fmt.Errorf("ibmvpc: subnet %s zone %s does not match pool zone %s", ps.Subnet, z, ps.Zone)
		}
	}
	kp, err := a.vpc.NewKeysPager(&vpcv1.ListKeysOptions{Limit: core.Int64Ptr(pageLimit)})
	if err != nil {
		return err
	}
	keys, err := kp.GetAllWithContext(ctx)
	if err != nil {
		return classify(err, "ibmvpc: listing keys")
	}
	a.keys = map[string]string{}
	for _, k := range keys {
		a.keys[deref(k.Name)] = deref(k.ID)
	}
	profs, _, err := a.vpc.ListInstanceProfilesWithContext(ctx, &vpcv1.ListInstanceProfilesOptions{})
	if err != nil {
		return classify(err, "ibmvpc: listing instance profiles")
	}
	a.prof = map[string]profileQuota{}
	for _, p := range profs.Profiles {
		a.prof[deref(p.Name)] = profileQuota{cores: profileValue(p.VcpuCount), ram: profileValue(p.Memory) * 1024}
	}
	if err := a.refreshResourceGroups(ctx); err != nil {
		return err
	}
	for _, p := range a.cfg.Pools {
		if _, err := a.ensureResourceGroup(ctx, poolGroupName(a.cfg.Name, p.Name)); err != nil {
			return err
		}
	}
	return nil
}

// profileValue reads the fixed (or default) value of a profile's vCPU
// count or memory.
func profileValue(v any) float64 {
	switch t := v.(type) {
	case *vpcv1.InstanceProfileVcpu:
		if t.Value != nil {
			return float64(*t.Value)
		}
		if t.Default != nil {
			return float64(*t.Default)
		}
	case *vpcv1.InstanceProfileMemory:
		if t.Value != nil {
			return float64(*t.Value)
		}
		if t.Default != nil {
			return float64(*t.Default)
		}
	}
	return 0
}

// poolGroupName is the resource group of a pool's instances and floating
// IPs.
func poolGroupName(provider, pool string) string { return "np_" + provider + "_" + pool }

// imageGroupName is the resource group of a provider's images.
func imageGroupName(provider string) string { return "npimages_" + provider }

func (a *Adapter) refreshResourceGroups(ctx context.Context) error {
	res, _, err := a.rm.ListResourceGroupsWithContext(ctx, &resourcemanagerv2.ListResourceGroupsOptions{})
	if err != nil {
		return classify(err, "ibmvpc: listing resource groups")
	}
	a.rgMu.Lock()
	defer a.rgMu.Unlock()
	a.rgs = map[string]resourceGroup{}
	for _, rg := range res.Resources {
		a.rgs[deref(rg.Name)] = resourceGroup{id: deref(rg.ID), name: deref(rg.Name)}
	}
	return nil
}

// ensureResourceGroup returns the id of a resource group, creating it when
// it does not exist.
func (a *Adapter) ensureResourceGroup(ctx context.Context, name string) (string, error) {
	a.rgMu.Lock()
	rg, ok := a.rgs[name]
	a.rgMu.Unlock()
	if ok {
		return rg.id, nil
	}
	a.log.Info("creating resource group", "name", name)
	res, _, err := a.rm.CreateResourceGroupWithContext(ctx, &resourcemanagerv2.CreateResourceGroupOptions{Name: &name})
	if err != nil {
		return "", classify(err, "ibmvpc: creating resource group %s", name)
	}
	a.rgMu.Lock()
	a.rgs[name] = resourceGroup{id: deref(res.ID), name: name}
	a.rgMu.Unlock()
	return deref(res.ID), nil
}

// groupName returns the name of a referenced resource group ("" when it
// is unknown).
func (a *Adapter) groupName(ref *vpcv1.ResourceGroupReference) string {
	if ref == nil {
		return ""
	}
	if ref.Name != nil && *ref.Name != "" {
		return *ref.Name
	}
	a.rgMu.Lock()
	defer a.rgMu.Unlock()
	for _, rg := range a.rgs {
		if rg.id == deref(ref.ID) {
			return rg.name
		}
	}
	return ""
}

func (a *Adapter) fetchInstances(ctx context.Context) ([]vpcv1.Instance, error) {
	p, err := a.vpc.NewInstancesPager(&vpcv1.ListInstancesOptions{Limit: core.Int64Ptr(pageLimit)})
	if err != nil {
		return nil, err
	}
	all, err := p.GetAllWithContext(ctx)
	if err != nil {
		return nil, classify(err, "ibmvpc: listing instances")
	}
	return all, nil
}

func (a *Adapter) fetchFloatingIPs(ctx context.Context) ([]vpcv1.FloatingIP, error) {
	p, err := a.vpc.NewFloatingIpsPager(&vpcv1.ListFloatingIpsOptions{Limit: core.Int64Ptr(pageLimit)})
	if err != nil {
		return nil, err
	}
	all, err := p.GetAllWithContext(ctx)
	if err != nil {
		return nil, classify(err, "ibmvpc: listing floating IPs")
	}
	return all, nil
}

func (a *Adapter) fetchImages(ctx context.Context) ([]vpcv1.Image, error) {
	p, err := a.vpc.NewImagesPager(&vpcv1.ListImagesOptions{Limit: core.Int64Ptr(pageLimit)})
	if err != nil {
		return nil, err
	}
	all, err := p.GetAllWithContext(ctx)
	if err != nil {
		return nil, classify(err, "ibmvpc: listing images")
	}
	return all, nil
}

// classify turns an SDK error into the driver's error kinds by the HTTP
// status and the cloud's error code.
func classify(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	status, code := problem(err)
	switch {
	case status == http.StatusNotFound || code == "not_found":
		return driver.NotFoundError("%s: %w", msg, err)
	case strings.Contains(code, "quota"):
		return driver.QuotaError("%s: %w", msg, err)
	case strings.Contains(code, "capacity"):
		return driver.CapacityError("%s: %w", msg, err)
	case status == http.StatusTooManyRequests || status >= 500:
		return driver.TransientError("%s: %w", msg, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// problem returns the HTTP status and the first error code of a failed
// call (0 and "" when the call got no answer).
func problem(err error) (int, string) {
	var hp *core.HTTPProblem
	if !errors.As(err, &hp) || hp.Response == nil {
		return 0, ""
	}
	code := ""
	if m, ok := hp.Response.Result.(map[string]any); ok {
		if list, ok := m["errors"].([]any); ok && len(list) > 0 {
			if e, ok := list[0].(map[string]any); ok {
				code, _ = e["code"].(string)
			}
		}
	}
	return hp.Response.StatusCode, code
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func zoneName(z *vpcv1.ZoneReference) string {
	if z == nil {
		return ""
	}
	return deref(z.Name)
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
