package aws

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nodepool-go/nodepool/driver"
)

// Resource types of ListResources.
const (
	TypeInstance = "instance"
	TypeVolume   = "volume"
	TypeAMI      = "image" // an AMI (metric name "amis")
	TypeSnapshot = "snapshot"
	TypeObject   = "object"
)

// ListResources returns every instance (not terminated), volume, AMI and
// snapshot of this account, and every object of the provider's bucket,
// that carries this provider's nodepool_provider_name tag. Imported AMIs
// and snapshots, which EC2 creates without tags, are first tagged from
// the import task that made them.
func (a *Adapter) ListResources(ctx context.Context) ([]driver.Resource, error) {
	if err := a.tagImports(ctx); err != nil {
		return nil, err
	}
	var out []driver.Resource
	add := func(typ, id string, tags map[string]string) {
		if tags[driver.MetaProviderName] == a.cfg.Name {
			r := driver.Resource{Type: typ, ID: id, Metadata: tags}
			if typ == TypeAMI {
				r.Plural = "amis"
			}
			out = append(out, r)
		}
	}
	instances, err := a.instances.Refresh(ctx)
	if err != nil {
		return nil, err
	}
	for _, in := range instances {
		if stateOf(in) != ec2types.InstanceStateNameTerminated {
			add(TypeInstance, awssdk.ToString(in.InstanceId), tagsOf(in.Tags))
		}
	}
	vp := ec2.NewDescribeVolumesPaginator(a.ec2, &ec2.DescribeVolumesInput{})
	for vp.HasMorePages() {
		page, err := vp.NextPage(ctx)
		if err != nil {
			return nil, classify(err, false, "aws: listing volumes")
		}
		for _, v := range page.Volumes {
			if v.State != ec2types.VolumeStateDeleted {
				add(TypeVolume, awssdk.ToString(v.VolumeId), tagsOf(v.Tags))
			}
		}
	}
	amis, err := a.ownImages(ctx)
	if err != nil {
		return nil, err
	}
	for _, img := range amis {
		add(TypeAMI, awssdk.ToString(img.ImageId), tagsOf(img.Tags))
	}
	snaps, err := a.ownSnapshots(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range snaps {
		add(TypeSnapshot, awssdk.ToString(s.SnapshotId), tagsOf(s.Tags))
	}
	if a.st.BucketName == "" {
		return out, nil
	}
	op := s3.NewListObjectsV2Paginator(a.s3, &s3.ListObjectsV2Input{Bucket: awssdk.String(a.st.BucketName)})
	for op.HasMorePages() {
		page, err := op.NextPage(ctx)
		if err != nil {
			return nil, classify(err, false, "aws: listing bucket %s", a.st.BucketName)
		}
		for _, o := range page.Contents {
			t, err := a.s3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: awssdk.String(a.st.BucketName), Key: o.Key})
			if err != nil {
				continue // removed meanwhile, or not ours to read
			}
			tags := map[string]string{}
			for _, tg := range t.TagSet {
				tags[awssdk.ToString(tg.Key)] = awssdk.ToString(tg.Value)
			}
			add(TypeObject, awssdk.ToString(o.Key), tags)
		}
	}
	return out, nil
}

func (a *Adapter) ownImages(ctx context.Context) ([]ec2types.Image, error) {
	var out []ec2types.Image
	p := ec2.NewDescribeImagesPaginator(a.ec2, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify(err, false, "aws: listing images")
		}
		out = append(out, page.Images...)
	}
	return out, nil
}

func (a *Adapter) ownSnapshots(ctx context.Context) ([]ec2types.Snapshot, error) {
	var out []ec2types.Snapshot
	p := ec2.NewDescribeSnapshotsPaginator(a.ec2, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify(err, false, "aws: listing snapshots")
		}
		out = append(out, page.Snapshots...)
	}
	return out, nil
}

var importAMIRE = regexp.MustCompile(`(import-ami-\w+)`)

// tagImports copies the tags of this provider's import tasks onto the
// untagged AMIs and snapshots they produced, so that a crash between the
// import and the tagging leaves nothing leak cleanup cannot see. Untagged
// ones that are not ours are remembered and not examined again.
func (a *Adapter) tagImports(ctx context.Context) error {
	amis, err := a.ownImages(ctx)
	if err != nil {
		return err
	}
	snaps, err := a.ownSnapshots(ctx)
	if err != nil {
		return err
	}
	var untaggedAMIs []ec2types.Image
	var untaggedSnaps []ec2types.Snapshot
	a.mu.Lock()
	for _, img := range amis {
		if len(img.Tags) == 0 && !a.notOurs[awssdk.ToString(img.ImageId)] {
			untaggedAMIs = append(untaggedAMIs, img)
		}
	}
	for _, s := range snaps {
		if len(s.Tags) == 0 && !a.notOurs[awssdk.ToString(s.SnapshotId)] {
			untaggedSnaps = append(untaggedSnaps, s)
		}
	}
	a.mu.Unlock()
	if len(untaggedAMIs) == 0 && len(untaggedSnaps) == 0 {
		return nil
	}
	// Tags of every import task by what it produced: snapshot ids and
	// image-import task ids (the name of the AMIs they make).
	bySnapshot := map[string][]ec2types.Tag{}
	byTask := map[string][]ec2types.Tag{}
	sp := ec2.NewDescribeImportSnapshotTasksPaginator(a.ec2, &ec2.DescribeImportSnapshotTasksInput{})
	for sp.HasMorePages() {
		page, err := sp.NextPage(ctx)
		if err != nil {
			return classify(err, false, "aws: listing import snapshot tasks")
		}
		for _, t := range page.ImportSnapshotTasks {
			if t.SnapshotTaskDetail != nil && t.SnapshotTaskDetail.SnapshotId != nil {
				bySnapshot[*t.SnapshotTaskDetail.SnapshotId] = t.Tags
			}
		}
	}
	ip := ec2.NewDescribeImportImageTasksPaginator(a.ec2, &ec2.DescribeImportImageTasksInput{})
	for ip.HasMorePages() {
		page, err := ip.NextPage(ctx)
		if err != nil {
			return classify(err, false, "aws: listing import image tasks")
		}
		for _, t := range page.ImportImageTasks {
			byTask[awssdk.ToString(t.ImportTaskId)] = t.Tags
			for _, d := range t.SnapshotDetails {
				if d.SnapshotId != nil {
					bySnapshot[*d.SnapshotId] = t.Tags
				}
			}
		}
	}
	tag := func(id string, tags []ec2types.Tag) {
		if len(tags) == 0 || tagsOf(tags)[driver.MetaProviderName] != a.cfg.Name {
			a.mu.Lock()
			a.notOurs[id] = true
			a.mu.Unlock()
			return
		}
		if _, err := a.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: tags}); err != nil {
			a.log.Warn("copying import task tags failed", "resource", id, "error", err)
		}
	}
	for _, img := range untaggedAMIs {
		var tags []ec2types.Tag
		if strings.HasPrefix(awssdk.ToString(img.Name), "import-ami-") {
			tags = byTask[awssdk.ToString(img.Name)]
		}
		if tags == nil && len(img.BlockDeviceMappings) > 0 && img.BlockDeviceMappings[0].Ebs != nil {
			tags = bySnapshot[awssdk.ToString(img.BlockDeviceMappings[0].Ebs.SnapshotId)]
		}
		tag(awssdk.ToString(img.ImageId), tags)
	}
	for _, s := range untaggedSnaps {
		tags := bySnapshot[awssdk.ToString(s.SnapshotId)]
		if m := importAMIRE.FindStringSubmatch(awssdk.ToString(s.Description)); tags == nil && m != nil {
			tags = byTask[m[1]]
		}
		tag(awssdk.ToString(s.SnapshotId), tags)
	}
	return nil
}

// DeleteResource deletes one listed resource; a missing one is a
// NotFound error.
func (a *Adapter) DeleteResource(ctx context.Context, r driver.Resource) error {
	a.log.Info(fmt.Sprintf("Deleting leaked %s: %s", r.Type, r.ID))
	var err error
	switch r.Type {
	case TypeInstance:
		_, err = a.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{r.ID}})
	case TypeVolume:
		_, err = a.ec2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: awssdk.String(r.ID)})
	case TypeAMI:
		return a.DeleteImage(ctx, r.ID)
	case TypeSnapshot:
		_, err = a.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: awssdk.String(r.ID)})
	case TypeObject:
		_, err = a.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: awssdk.String(a.st.BucketName), Key: awssdk.String(r.ID)})
	default:
		return fmt.Errorf("aws: unknown resource type %q", r.Type)
	}
	return classify(err, true, "aws: deleting %s %s", r.Type, r.ID)
}
