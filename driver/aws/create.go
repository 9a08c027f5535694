package aws

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/internal/cloudutil"
)

// createTimeout bounds one RunInstances call running in the background.
const createTimeout = 5 * time.Minute

// Create machine states.
const (
	stStart     = iota // submit RunInstances
	stSubmitted        // waiting for the RunInstances answer
	stCreating         // waiting for the instance to be running
)

type createMachine struct {
	a     *Adapter
	spec  driver.CreateSpec
	tags  map[string]string
	state int

	mu     sync.Mutex
	id     string
	done   chan struct{} // closed when the RunInstances call ends
	result error         // of RunInstances
	subAt  time.Time     // when RunInstances returned
}

// CreateMachine returns a machine that launches one EC2 instance tagged
// with the label's tags, its formatted dynamic-tags, the ownership
// metadata and Name = the hostname.
func (a *Adapter) CreateMachine(spec driver.CreateSpec) driver.CreateMachine {
	ls := labelSettings(spec.Label)
	tags := map[string]string{}
	for k, v := range ls.Tags {
		tags[k] = v
	}
	keys := make([]string, 0, len(ls.DynamicTags))
	for k := range ls.DynamicTags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := cloudutil.FormatRequest(ls.DynamicTags[k], spec.Request)
		if err != nil {
			a.log.Error("formatting a dynamic tag failed", "tag", k, "error", err)
			continue
		}
		tags[k] = v
	}
	for k, v := range spec.Metadata {
		tags[k] = v
	}
	tags["Name"] = spec.Hostname
	return &createMachine{a: a, spec: spec, tags: tags}
}

// ExternalID returns the instance id once RunInstances answered.
func (m *createMachine) ExternalID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

// Advance submits RunInstances on a worker (at most rate×4, 1 to 8, at
// once), then watches the shared instance listing until the instance is
// running. An instance not yet listed is waited for (EC2 lists new
// instances with a delay).
func (m *createMachine) Advance(ctx context.Context) (*driver.Instance, error) {
	switch m.state {
	case stStart:
		m.done = make(chan struct{})
		m.state = stSubmitted
		go m.submit(context.WithoutCancel(ctx))
		return nil, nil
	case stSubmitted:
		select {
		case <-m.done:
		default:
			return nil, nil
		}
		if m.result != nil {
			if driver.IsTransient(m.result) {
				m.state = stStart // the launcher calls Advance again: submit anew
			}
			return nil, m.result
		}
		m.state = stCreating
		fallthrough
	default:
		list, _, ok, err := m.a.instances.Fresh(ctx, m.subAt)
		if err != nil || !ok {
			return nil, err
		}
		in, found := findInstance(list, m.id)
		if !found {
			return nil, nil
		}
		switch stateOf(in) {
		case ec2types.InstanceStateNameRunning:
		case ec2types.InstanceStateNameTerminated, ec2types.InstanceStateNameShuttingDown:
			reason := ""
			if in.StateReason != nil {
				reason = ": " + awssdk.ToString(in.StateReason.Message)
			}
			return nil, fmt.Errorf("aws: instance %s in %s state%s", m.id, stateOf(in), reason)
		default:
			return nil, nil
		}
		inst := m.a.instance(in)
		if r, err := m.a.quotaFor(ctx, string(in.InstanceType), in.InstanceLifecycle == ec2types.InstanceLifecycleTypeSpot); err == nil {
			inst.Resources = &r
		}
		return &inst, nil
	}
}

func (m *createMachine) submit(ctx context.Context) {
	defer close(m.done)
	ctx, cancel := context.WithTimeout(ctx, createTimeout)
	defer cancel()
	select {
	case m.a.workers <- struct{}{}:
		defer func() { <-m.a.workers }()
	case <-ctx.Done():
		m.result = driver.TransientError("aws: waiting for a create worker: %w", ctx.Err())
		return
	}
	id, err := m.a.runInstance(ctx, m.spec, m.tags)
	m.mu.Lock()
	m.id, m.result, m.subAt = id, err, time.Now()
	m.mu.Unlock()
}

// runInstance makes the RunInstances call of one node.
func (a *Adapter) runInstance(ctx context.Context, spec driver.CreateSpec, tags map[string]string) (string, error) {
	ls := labelSettings(spec.Label)
	ps, _ := spec.Pool.Settings.(*PoolSettings)
	if ps == nil {
		ps = &PoolSettings{}
	}
	imageID := spec.ImageExternalID
	if imageID == "" {
		var err error
		if imageID, err = a.cloudImageID(ctx, spec.Label.CloudImage); err != nil {
			return "", err
		}
	}
	nic := ec2types.InstanceNetworkInterfaceSpecification{
		AssociatePublicIpAddress: awssdk.Bool(ps.PublicIPv4),
		DeviceIndex:              awssdk.Int32(0),
	}
	if ps.SecurityGroupID != "" {
		nic.Groups = []string{ps.SecurityGroupID}
	}
	if ps.SubnetID != "" {
		nic.SubnetId = awssdk.String(ps.SubnetID)
	}
	if ps.PublicIPv6 {
		nic.Ipv6AddressCount = awssdk.Int32(1)
	}
	in := &ec2.RunInstancesInput{
		ImageId:           awssdk.String(imageID),
		MinCount:          awssdk.Int32(1),
		MaxCount:          awssdk.Int32(1),
		KeyName:           awssdk.String(ls.KeyName),
		EbsOptimized:      awssdk.Bool(ls.EBSOptimized),
		InstanceType:      ec2types.InstanceType(ls.InstanceType),
		NetworkInterfaces: []ec2types.InstanceNetworkInterfaceSpecification{nic},
		TagSpecifications: []ec2types.TagSpecification{
			{ResourceType: ec2types.ResourceTypeInstance, Tags: tagList(tags)},
			{ResourceType: ec2types.ResourceTypeVolume, Tags: tagList(tags)},
		},
	}
	if ls.Userdata != "" {
		in.UserData = awssdk.String(base64.StdEncoding.EncodeToString([]byte(ls.Userdata)))
	}
	if p := ls.IAMInstanceProfile; p != nil {
		switch {
		case p.Name != "":
			in.IamInstanceProfile = &ec2types.IamInstanceProfileSpecification{Name: awssdk.String(p.Name)}
		case p.ARN != "":
			in.IamInstanceProfile = &ec2types.IamInstanceProfileSpecification{Arn: awssdk.String(p.ARN)}
		}
	}
	img, err := a.image(ctx, imageID)
	if err != nil {
		return "", err
	}
	// The image's first block-device mapping, deleted with the instance
	// and with the label's volume settings.
	if len(img.BlockDeviceMappings) > 0 && img.BlockDeviceMappings[0].Ebs != nil {
		bdm := img.BlockDeviceMappings[0]
		ebs := *bdm.Ebs
		ebs.DeleteOnTermination = awssdk.Bool(true)
		if ls.VolumeSize > 0 {
			ebs.VolumeSize = awssdk.Int32(int32(ls.VolumeSize))
		}
		if ls.VolumeType != "" {
			ebs.VolumeType = ec2types.VolumeType(ls.VolumeType)
		}
		if ls.IOPS > 0 {
			ebs.Iops = awssdk.Int32(int32(ls.IOPS))
		}
		if ls.Throughput > 0 {
			ebs.Throughput = awssdk.Int32(int32(ls.Throughput))
		}
		ebs.Encrypted = nil // not allowed with a snapshot
		bdm.Ebs = &ebs
		in.BlockDeviceMappings = []ec2types.BlockDeviceMapping{bdm}
	}
	if ls.UseSpot {
		in.InstanceMarketOptions = &ec2types.InstanceMarketOptionsRequest{
			MarketType: ec2types.MarketTypeSpot,
			SpotOptions: &ec2types.SpotMarketOptions{
				SpotInstanceType:             ec2types.SpotInstanceTypeOneTime,
				InstanceInterruptionBehavior: ec2types.InstanceInterruptionBehaviorTerminate,
			},
		}
	}
	out, err := a.ec2.RunInstances(ctx, in)
	if err != nil {
		return "", classify(err, false, "aws: creating instance %s", spec.Hostname)
	}
	if len(out.Instances) == 0 {
		return "", errors.New("aws: RunInstances returned no instance")
	}
	return awssdk.ToString(out.Instances[0].InstanceId), nil
}

// image returns an AMI's description, cached for the life of the adapter
// (an AMI's block-device mappings do not change).
func (a *Adapter) image(ctx context.Context, id string) (ec2types.Image, error) {
	a.mu.Lock()
	img, ok := a.images[id]
	a.mu.Unlock()
	if ok {
		return img, nil
	}
	out, err := a.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil {
		return img, classify(err, false, "aws: describing image %s", id)
	}
	if len(out.Images) == 0 {
		return img, fmt.Errorf("aws: image %s not found", id)
	}
	img = out.Images[0]
	a.mu.Lock()
	a.images[id] = img
	a.mu.Unlock()
	return img, nil
}

// cloudImageID resolves a cloud-images entry: its image-id, or the newest
// image its image-filters match (remembered for five minutes).
func (a *Adapter) cloudImageID(ctx context.Context, name string) (string, error) {
	ci := a.st.CloudImage(name)
	if ci == nil {
		return "", fmt.Errorf("aws: cloud image %s is not configured", name)
	}
	if len(ci.ImageFilters) == 0 {
		return ci.ImageID, nil
	}
	keyb, _ := json.Marshal(ci.ImageFilters)
	key := string(keyb)
	a.mu.Lock()
	hit, ok := a.filterCache[key]
	a.mu.Unlock()
	if ok && time.Since(hit.at) < filterTTL {
		return hit.id, nil
	}
	var filters []ec2types.Filter
	for _, f := range ci.ImageFilters {
		filters = append(filters, ec2types.Filter{Name: awssdk.String(f.Name), Values: f.Values})
	}
	var images []ec2types.Image
	p := ec2.NewDescribeImagesPaginator(a.ec2, &ec2.DescribeImagesInput{Filters: filters})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", classify(err, false, "aws: looking up cloud image %s", name)
		}
		images = append(images, page.Images...)
	}
	if len(images) == 0 {
		return "", fmt.Errorf("aws: no cloud-image (AMI) matches the image filters of %s", name)
	}
	sort.Slice(images, func(i, j int) bool {
		return awssdk.ToString(images[i].CreationDate) > awssdk.ToString(images[j].CreationDate)
	})
	id := awssdk.ToString(images[0].ImageId)
	a.mu.Lock()
	a.filterCache[key] = filterHit{id: id, at: time.Now()}
	a.mu.Unlock()
	return id, nil
}
