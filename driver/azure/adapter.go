package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/internal/cloudutil"
)

// Tunables of the adapter.
var (
	// listTTL is the age after which the shared listings are refreshed:
	// every machine of the provider polls the same listing.
	listTTL = 2 * time.Second
	// pollFrequency is the pause between two polls of an asynchronous
	// operation the adapter waits for (uploads, image deletion) when the
	// cloud sends no Retry-After.
	pollFrequency = 2 * time.Second
	// apiWorkers bounds the API calls the machines have in flight.
	apiWorkers = 16
	// skuTTL is how long the compute SKU list (cores and memory of VM
	// sizes) is cached.
	skuTTL = time.Hour
	// testClient, when set (by tests), carries every HTTP request.
	testClient *http.Client
	// testRetry, when set (by tests), replaces the SDK's retry options.
	testRetry *policy.RetryOptions
)

// authFile is the JSON the Azure CLI writes with --sdk-auth.
type authFile struct {
	ClientID                   string `json:"clientId"`
	ClientSecret               string `json:"clientSecret"`
	SubscriptionID             string `json:"subscriptionId"`
	TenantID                   string `json:"tenantId"`
	ActiveDirectoryEndpointURL string `json:"activeDirectoryEndpointUrl"`
	ResourceManagerEndpointURL string `json:"resourceManagerEndpointUrl"`
	ManagementEndpointURL      string `json:"managementEndpointUrl"`
}

// Adapter is an Azure provider's connection to its subscription.
type Adapter struct {
	cfg *driver.ProviderConfig
	st  *ProviderSettings
	log *slog.Logger

	vms      *armcompute.VirtualMachinesClient
	disks    *armcompute.DisksClient
	images   *armcompute.ImagesClient
	skus     *armcompute.ResourceSKUsClient
	usage    *armcompute.UsageClient
	nics     *armnetwork.InterfacesClient
	pips     *armnetwork.PublicIPAddressesClient
	subnet   *armnetwork.SubnetsClient
	groups   *armresources.ResourceGroupsClient
	blobHTTP policy.Transporter // page-blob uploads

	workers chan struct{}
	limiter *limiter
	ctx     context.Context // ends at Close
	cancel  context.CancelFunc

	vmList    *listCache[*armcompute.VirtualMachine]
	nicList   *listCache[*armnetwork.Interface]
	pipList   *listCache[*armnetwork.PublicIPAddress]
	diskList  *listCache[*armcompute.Disk]
	imageList *listCache[*armcompute.Image]

	setupMu  sync.Mutex
	setup    *future[string] // resource group and subnet id
	skuMu    sync.Mutex
	skuAt    time.Time
	skuCache map[string]*armcompute.ResourceSKU // by lower-case name
	imageIDs sync.Map                           // diskimage upload name -> resource id
}

var (
	_ driver.Adapter       = (*Adapter)(nil)
	_ driver.QuotaReporter = (*Adapter)(nil)
	_ driver.LeakCleaner   = (*Adapter)(nil)
	_ driver.ImageManager  = (*Adapter)(nil)
	_ driver.LabelChecker  = (*Adapter)(nil)
)

// Open returns the adapter of an Azure provider. It reads the auth-path
// file; the token is requested on the first API call, and the resource
// group and subnet are looked up by the first launch.
func (Driver) Open(ctx context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	st, ok := cfg.Settings.(*ProviderSettings)
	if !ok || st == nil {
		return nil, fmt.Errorf("azure: provider %s has no azure settings", cfg.Name)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if st.AuthPath == "" {
		return nil, fmt.Errorf("azure: provider %s: no auth-path (and %s is not set)", cfg.Name, AuthLocationEnv)
	}
	raw, err := os.ReadFile(st.AuthPath)
	if err != nil {
		return nil, fmt.Errorf("azure: provider %s: reading auth-path: %w", cfg.Name, err)
	}
	var af authFile
	if err := json.Unmarshal(raw, &af); err != nil {
		// The decoder's message may quote the file; keep it out.
		return nil, fmt.Errorf("azure: provider %s: auth-path %s is not valid JSON", cfg.Name, st.AuthPath)
	}
	if af.SubscriptionID == "" {
		return nil, fmt.Errorf("azure: provider %s: auth-path %s has no subscriptionId", cfg.Name, st.AuthPath)
	}
	a := &Adapter{cfg: cfg, st: st, log: log, workers: make(chan struct{}, apiWorkers), limiter: newLimiter(st.Rate)}
	a.ctx, a.cancel = context.WithCancel(context.Background())

	cc := cloud.AzurePublic
	if af.ActiveDirectoryEndpointURL != "" {
		cc.ActiveDirectoryAuthorityHost = af.ActiveDirectoryEndpointURL
	}
	if af.ResourceManagerEndpointURL != "" {
		aud := af.ManagementEndpointURL
		if aud == "" {
			aud = af.ResourceManagerEndpointURL
		}
		cc.Services = map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: af.ResourceManagerEndpointURL, Audience: aud},
		}
	}
	co := azcore.ClientOptions{Cloud: cc, Logging: policy.LogOptions{}}
	if testClient != nil {
		co.Transport = testClient
	}
	if testRetry != nil {
		co.Retry = *testRetry
	}
	a.blobHTTP = co.Transport
	var cred azcore.TokenCredential
	if af.ClientID != "" && af.ClientSecret != "" && af.TenantID != "" {
		cred, err = azidentity.NewClientSecretCredential(af.TenantID, af.ClientID, af.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: !isPublicAuthority(cc.ActiveDirectoryAuthorityHost)})
	} else {
		// No service principal in the file: the environment, a managed
		// identity or the Azure CLI's login, as the CLI would find them.
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: co, TenantID: af.TenantID})
	}
	if err != nil {
		return nil, fmt.Errorf("azure: provider %s: credential: %w", cfg.Name, err)
	}
	aco := &arm.ClientOptions{ClientOptions: co}
	aco.PerCallPolicies = append(aco.PerCallPolicies, a.limiter)
	sub := af.SubscriptionID
	cf, err := armcompute.NewClientFactory(sub, cred, aco)
	if err != nil {
		return nil, fmt.Errorf("azure: provider %s: %w", cfg.Name, err)
	}
	nf, err := armnetwork.NewClientFactory(sub, cred, aco)
	if err != nil {
		return nil, fmt.Errorf("azure: provider %s: %w", cfg.Name, err)
	}
	rf, err := armresources.NewClientFactory(sub, cred, aco)
	if err != nil {
		return nil, fmt.Errorf("azure: provider %s: %w", cfg.Name, err)
	}
	a.vms, a.disks, a.images = cf.NewVirtualMachinesClient(), cf.NewDisksClient(), cf.NewImagesClient()
	a.skus, a.usage = cf.NewResourceSKUsClient(), cf.NewUsageClient()
	a.nics, a.pips, a.subnet = nf.NewInterfacesClient(), nf.NewPublicIPAddressesClient(), nf.NewSubnetsClient()
	a.groups = rf.NewResourceGroupsClient()
	a.initLists()
	return a, nil
}

func isPublicAuthority(host string) bool {
	return strings.Contains(host, "login.microsoftonline.com") || strings.Contains(host, "login.chinacloudapi.cn") ||
		strings.Contains(host, "login.microsoftonline.us")
}

// Close stops background listings.
func (a *Adapter) Close() error {
	a.cancel()
	return nil
}

// future is the result of an API call running on a worker.
type future[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// ready reports whether the call has ended, with its result.
func (f *future[T]) ready() (T, error, bool) {
	select {
	case <-f.done:
		return f.val, f.err, true
	default:
		var zero T
		return zero, nil, false
	}
}

// wait blocks for the result.
func (f *future[T]) wait(ctx context.Context) (T, error) {
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// apiTimeout bounds one call made on a worker.
const apiTimeout = 5 * time.Minute

// run starts fn on a worker; the machine's Advance checks the future.
func run[T any](a *Adapter, fn func(ctx context.Context) (T, error)) *future[T] {
	f := &future[T]{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		select {
		case a.workers <- struct{}{}:
		case <-a.ctx.Done():
			f.err = a.ctx.Err()
			return
		}
		defer func() { <-a.workers }()
		ctx, cancel := context.WithTimeout(a.ctx, apiTimeout)
		defer cancel()
		f.val, f.err = fn(ctx)
	}()
	return f
}

// ensureSetup makes sure the resource group exists (creating it at
// resource-group-location) and finds the subnet id; it runs once per
// adapter (again after a failure).
func (a *Adapter) ensureSetup() *future[string] {
	a.setupMu.Lock()
	defer a.setupMu.Unlock()
	if a.setup != nil {
		if _, err, done := a.setup.ready(); !done || err == nil {
			return a.setup
		}
	}
	a.setup = run(a, a.doSetup)
	return a.setup
}

func (a *Adapter) doSetup(ctx context.Context) (string, error) {
	ex, err := a.groups.CheckExistence(ctx, a.st.ResourceGroup, nil)
	if err != nil {
		return "", classify(err, "checking resource group %s", a.st.ResourceGroup)
	}
	if !ex.Success {
		a.log.Info("creating resource group", "resource_group", a.st.ResourceGroup, "location", a.st.ResourceGroupLocation)
		_, err := a.groups.CreateOrUpdate(ctx, a.st.ResourceGroup, armresources.ResourceGroup{Location: &a.st.ResourceGroupLocation}, nil)
		if err != nil {
			return "", classify(err, "creating resource group %s", a.st.ResourceGroup)
		}
	}
	if err := a.loadSKUs(ctx); err != nil {
		a.log.Warn("listing compute SKUs failed", "error", err)
	}
	if a.st.SubnetID != "" {
		return a.st.SubnetID, nil
	}
	n := a.st.Network
	if n == nil || n.Network == "" {
		return "", fmt.Errorf("azure: provider %s: neither subnet-id nor network is configured", a.cfg.Name)
	}
	group, subnet := n.ResourceGroup, n.Subnet
	if group == "" {
		group = a.st.ResourceGroup
	}
	if subnet == "" {
		subnet = "default"
	}
	sn, err := a.subnet.Get(ctx, group, n.Network, subnet, nil)
	if err != nil {
		return "", classify(err, "getting subnet %s of network %s", subnet, n.Network)
	}
	return deref(sn.ID), nil
}

// limiter spaces API calls by the provider's rate (calls per second); it
// is a pipeline policy, so every call of every client (pages and polls
// included) waits for its turn.
type limiter struct{ *cloudutil.Limiter }

func newLimiter(rate float64) *limiter { return &limiter{cloudutil.NewLimiter(rate)} }

// Do waits for the request's turn and sends it.
func (l *limiter) Do(req *policy.Request) (*http.Response, error) {
	if err := l.Wait(req.Raw().Context()); err != nil {
		return nil, err
	}
	return req.Next()
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

func ptr[T any](v T) *T { return &v }

// tagsOf converts Azure tags to metadata.
func tagsOf(t map[string]*string) map[string]string {
	out := make(map[string]string, len(t))
	for k, v := range t {
		out[k] = deref(v)
	}
	return out
}

func azTags(m map[string]string) map[string]*string {
	out := make(map[string]*string, len(m))
	for k, v := range m {
		out[k] = ptr(v)
	}
	return out
}

// errInUse reports an error meaning the resource is still attached to
// another (a NIC to a VM being deleted, a public IP to a NIC).
func errInUse(err error) bool {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch re.ErrorCode {
		case "NicInUse", "PublicIPAddressCannotBeDeleted", "InUseNetworkInterfaceCannotBeDeleted":
			return true
		}
	}
	return false
}
