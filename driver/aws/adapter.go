package aws

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsmw "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/smithy-go/middleware"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/internal/cloudutil"
	"github.com/nodepool-go/nodepool/driver/listcache"
)

// Tunables of the adapter.
var (
	// listTTL is the age after which the shared instance listing is
	// refreshed: every machine of the provider polls the same listing.
	listTTL = 2 * time.Second
	// filterTTL is how long the image an image-filters entry resolved to
	// is remembered.
	filterTTL = 5 * time.Minute
	// importPoll is the pause between two looks at an import task.
	importPoll = 15 * time.Second
)

// Adapter is an AWS provider's connection to EC2, S3 and Service Quotas.
type Adapter struct {
	cfg *driver.ProviderConfig
	st  *ProviderSettings
	log *slog.Logger

	ec2    *ec2.Client
	s3     *s3.Client
	quotas *servicequotas.Client

	mutating    *cloudutil.Limiter // rate calls/s
	nonMutating *cloudutil.Limiter // 10 × rate calls/s
	workers     chan struct{}      // bounds concurrent RunInstances calls

	instances *listcache.Cache[ec2types.Instance]

	deleteQ   chan terminateReq // terminations for the batcher
	stop      chan struct{}     // closed by Close
	loopDone  chan struct{}     // closed when the batcher ended
	closeOnce sync.Once

	mu          sync.Mutex
	types       map[string]ec2types.InstanceTypeInfo
	images      map[string]ec2types.Image // by id, for block-device mappings
	filterCache map[string]filterHit
	notOurs     map[string]bool // untagged AMIs and snapshots that are not imports of ours
}

type filterHit struct {
	id string
	at time.Time
}

var (
	_ driver.Adapter       = (*Adapter)(nil)
	_ driver.QuotaReporter = (*Adapter)(nil)
	_ driver.LeakCleaner   = (*Adapter)(nil)
	_ driver.ImageManager  = (*Adapter)(nil)
)

// Open returns the adapter of an AWS provider. Credentials, endpoints and
// retry settings are found the SDK's way (environment variables such as
// AWS_ACCESS_KEY_ID and AWS_ENDPOINT_URL, the shared config and
// credentials files with the provider's profile-name, SSO, web identity,
// the instance role); the region is the provider's region-name. Nothing is
// sent to AWS before the first call.
func (Driver) Open(ctx context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	st, ok := cfg.Settings.(*ProviderSettings)
	if !ok || st == nil {
		return nil, fmt.Errorf("aws: provider %s has no aws settings", cfg.Name)
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(st.RegionName)}
	if st.ProfileName != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(st.ProfileName))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("aws: provider %s: loading the AWS configuration: %w", cfg.Name, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	workers := int(st.Rate * 4)
	workers = max(min(workers, 8), 1)
	a := &Adapter{
		cfg: cfg, st: st, log: log,
		mutating:    cloudutil.NewLimiter(st.Rate),
		nonMutating: cloudutil.NewLimiter(st.Rate * 10),
		workers:     make(chan struct{}, workers),
		types:       map[string]ec2types.InstanceTypeInfo{},
		images:      map[string]ec2types.Image{},
		filterCache: map[string]filterHit{},
		notOurs:     map[string]bool{},
	}
	ac.APIOptions = append(ac.APIOptions, a.rateLimit)
	a.ec2 = ec2.NewFromConfig(ac)
	a.s3 = s3.NewFromConfig(ac)
	a.quotas = servicequotas.NewFromConfig(ac)
	a.instances = listcache.New(listTTL, log, a.fetchInstances)
	a.deleteQ = make(chan terminateReq, 4096)
	a.stop = make(chan struct{})
	a.loopDone = make(chan struct{})
	go a.terminateLoop()
	return a, nil
}

// rateLimit adds a step to every SDK call (each attempt, retries
// included) that waits for the provider's rate: calls that read
// (Describe*, List*, Get*) at ten times the rate of the others.
func (a *Adapter) rateLimit(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("NodepoolRateLimit",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			l := a.mutating
			op := awsmw.GetOperationName(ctx)
			if strings.HasPrefix(op, "Describe") || strings.HasPrefix(op, "List") || strings.HasPrefix(op, "Get") {
				l = a.nonMutating
			}
			if err := l.Wait(ctx); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, err
			}
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

// Close stops the termination batcher; queued terminations not yet sent
// fail (their nodes' deletions are retried by the launcher).
func (a *Adapter) Close() error {
	a.closeOnce.Do(func() {
		close(a.stop)
		<-a.loopDone
	})
	return nil
}

// fetchInstances lists every instance of the region, all pages.
func (a *Adapter) fetchInstances(ctx context.Context) ([]ec2types.Instance, error) {
	var out []ec2types.Instance
	p := ec2.NewDescribeInstancesPaginator(a.ec2, &ec2.DescribeInstancesInput{MaxResults: awssdk.Int32(1000)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify(err, false, "aws: listing instances")
		}
		for _, r := range page.Reservations {
			out = append(out, r.Instances...)
		}
	}
	return out, nil
}

func tagsOf(tags []ec2types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
	}
	return m
}

func tagList(m map[string]string) []ec2types.Tag {
	out := make([]ec2types.Tag, 0, len(m))
	for k, v := range m {
		out = append(out, ec2types.Tag{Key: awssdk.String(k), Value: awssdk.String(v)})
	}
	return out
}

func stateOf(in ec2types.Instance) ec2types.InstanceStateName {
	if in.State == nil {
		return ""
	}
	return in.State.Name
}

// ListInstances returns every instance that is not terminated, with its
// tags and what it costs (for unmanaged-usage accounting).
func (a *Adapter) ListInstances(ctx context.Context) ([]driver.Instance, error) {
	list, _, err := a.instances.Get(ctx)
	if err != nil {
		return nil, err
	}
	var out []driver.Instance
	for _, in := range list {
		if stateOf(in) == ec2types.InstanceStateNameTerminated {
			continue
		}
		inst := a.instance(in)
		if r, err := a.quotaFor(ctx, string(in.InstanceType), in.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot); err == nil {
			inst.Resources = &r
		} else {
			a.log.Warn("no quota information for an instance type", "instance_type", in.InstanceType, "error", err)
		}
		out = append(out, inst)
	}
	return out, nil
}

// instance converts an EC2 instance: interface_ip is the public IPv4,
// else the public IPv6, else the private IPv4.
func (a *Adapter) instance(in ec2types.Instance) driver.Instance {
	out := driver.Instance{
		ExternalID:  awssdk.ToString(in.InstanceId),
		PrivateIPv4: awssdk.ToString(in.PrivateIpAddress),
		PublicIPv4:  awssdk.ToString(in.PublicIpAddress),
		Cloud:       "AWS",
		Region:      a.st.RegionName,
		Metadata:    tagsOf(in.Tags),
	}
	if in.Placement != nil {
		out.AZ = awssdk.ToString(in.Placement.AvailabilityZone)
	}
	if len(in.NetworkInterfaces) > 0 && len(in.NetworkInterfaces[0].Ipv6Addresses) > 0 {
		out.PublicIPv6 = awssdk.ToString(in.NetworkInterfaces[0].Ipv6Addresses[0].Ipv6Address)
	}
	for _, ip := range []string{out.PublicIPv4, out.PublicIPv6, out.PrivateIPv4} {
		if ip != "" {
			out.InterfaceIP = ip
			break
		}
	}
	return out
}

// findInstance looks an instance up in a listing.
func findInstance(list []ec2types.Instance, id string) (ec2types.Instance, bool) {
	for _, in := range list {
		if awssdk.ToString(in.InstanceId) == id {
			return in, true
		}
	}
	return ec2types.Instance{}, false
}
