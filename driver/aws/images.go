package aws

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nodepool-go/nodepool/driver"
)

// UploadImage uploads a built image to the provider's bucket (tagged with
// the upload's metadata), imports it as a snapshot registered as an AMI
// (import-method snapshot) or directly as an AMI (import-method image),
// copies the metadata onto the AMI and its snapshot as tags, removes the
// object and returns the AMI id.
func (a *Adapter) UploadImage(ctx context.Context, spec driver.UploadSpec) (string, error) {
	if a.st.BucketName == "" {
		return "", fmt.Errorf("aws: provider %s has no object-storage bucket-name to upload images through", a.cfg.Name)
	}
	ds := &DiskimageSettings{Architecture: DefaultArchitecture, ENASupport: true, VolumeType: DefaultVolumeType, ImportMethod: "snapshot"}
	if d := a.cfg.Diskimage(spec.Diskimage); d != nil {
		if s, ok := d.Settings.(*DiskimageSettings); ok {
			ds = s
		}
	}
	key := spec.ImageName + "." + spec.Format
	if err := a.putObject(ctx, key, spec); err != nil {
		return "", err
	}
	var (
		imageID string
		err     error
	)
	if ds.ImportMethod == "image" {
		imageID, err = a.importImage(ctx, ds, key, spec)
	} else {
		imageID, err = a.importSnapshot(ctx, ds, key, spec)
	}
	return imageID, err
}

func (a *Adapter) putObject(ctx context.Context, key string, spec driver.UploadSpec) error {
	f, err := os.Open(spec.Filename)
	if err != nil {
		return err
	}
	defer f.Close()
	tagging := url.Values{}
	for k, v := range spec.Metadata {
		tagging.Set(k, v)
	}
	_, err = manager.NewUploader(a.s3).Upload(ctx, &s3.PutObjectInput{
		Bucket:  awssdk.String(a.st.BucketName),
		Key:     awssdk.String(key),
		Body:    f,
		Tagging: awssdk.String(tagging.Encode()),
	})
	return classify(err, false, "aws: uploading %s to bucket %s", key, a.st.BucketName)
}

func (a *Adapter) deleteObject(ctx context.Context, key string) {
	_, err := a.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: awssdk.String(a.st.BucketName), Key: awssdk.String(key)})
	if err != nil {
		a.log.Warn("deleting an uploaded image object failed; leak cleanup will remove it", "key", key, "error", err)
	}
}

func userBucket(bucket, key string) *ec2types.UserBucket {
	return &ec2types.UserBucket{S3Bucket: awssdk.String(bucket), S3Key: awssdk.String(key)}
}

// waitTask calls poll every importPoll until it reports the task ended.
func waitTask(ctx context.Context, poll func() (done bool, err error)) error {
	for {
		t := time.NewTimer(importPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		done, err := poll()
		if err != nil && !driver.IsTransient(err) {
			return err
		}
		if done {
			return nil
		}
	}
}

func (a *Adapter) importSnapshot(ctx context.Context, ds *DiskimageSettings, key string, spec driver.UploadSpec) (string, error) {
	start, err := a.ec2.ImportSnapshot(ctx, &ec2.ImportSnapshotInput{
		DiskContainer: &ec2types.SnapshotDiskContainer{Format: awssdk.String(spec.Format), UserBucket: userBucket(a.st.BucketName, key)},
		TagSpecifications: []ec2types.TagSpecification{{
			ResourceType: ec2types.ResourceTypeImportSnapshotTask, Tags: tagList(spec.Metadata)}},
	})
	if err != nil {
		a.deleteObject(ctx, key)
		return "", classify(err, false, "aws: importing %s as a snapshot", spec.ImageName)
	}
	var task ec2types.ImportSnapshotTask
	err = waitTask(ctx, func() (bool, error) {
		out, err := a.ec2.DescribeImportSnapshotTasks(ctx, &ec2.DescribeImportSnapshotTasksInput{ImportTaskIds: []string{awssdk.ToString(start.ImportTaskId)}})
		if err != nil {
			return false, classify(err, false, "aws: watching import task %s", awssdk.ToString(start.ImportTaskId))
		}
		if len(out.ImportSnapshotTasks) == 0 || out.ImportSnapshotTasks[0].SnapshotTaskDetail == nil {
			return false, nil
		}
		task = out.ImportSnapshotTasks[0]
		st := strings.ToLower(awssdk.ToString(task.SnapshotTaskDetail.Status))
		return st == "completed" || st == "deleted", nil
	})
	a.deleteObject(context.WithoutCancel(ctx), key)
	if err != nil {
		return "", err
	}
	d := task.SnapshotTaskDetail
	if strings.ToLower(awssdk.ToString(d.Status)) != "completed" {
		return "", fmt.Errorf("aws: importing %s failed: %s", spec.ImageName, awssdk.ToString(d.StatusMessage))
	}
	snapID := awssdk.ToString(d.SnapshotId)
	a.createTags(ctx, snapID, task.Tags)
	size := int32(ds.VolumeSize)
	if size == 0 {
		out, err := a.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snapID}})
		if err != nil {
			return "", classify(err, false, "aws: describing snapshot %s", snapID)
		}
		if len(out.Snapshots) == 0 {
			return "", fmt.Errorf("aws: imported snapshot %s not found", snapID)
		}
		size = awssdk.ToInt32(out.Snapshots[0].VolumeSize)
	}
	ebs := &ec2types.EbsBlockDevice{
		DeleteOnTermination: awssdk.Bool(true),
		SnapshotId:          awssdk.String(snapID),
		VolumeSize:          awssdk.Int32(size),
		VolumeType:          ec2types.VolumeType(ds.VolumeType),
	}
	if ds.IOPS > 0 {
		ebs.Iops = awssdk.Int32(int32(ds.IOPS))
	}
	if ds.Throughput > 0 {
		ebs.Throughput = awssdk.Int32(int32(ds.Throughput))
	}
	reg, err := a.ec2.RegisterImage(ctx, &ec2.RegisterImageInput{
		Name:                awssdk.String(spec.ImageName),
		Architecture:        ec2types.ArchitectureValues(ds.Architecture),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: awssdk.String("/dev/sda1"), Ebs: ebs}},
		RootDeviceName:      awssdk.String("/dev/sda1"),
		VirtualizationType:  awssdk.String("hvm"),
		EnaSupport:          awssdk.Bool(ds.ENASupport),
	})
	if err != nil {
		return "", classify(err, false, "aws: registering image %s", spec.ImageName)
	}
	id := awssdk.ToString(reg.ImageId)
	a.createTags(ctx, id, task.Tags)
	return id, nil
}

func (a *Adapter) importImage(ctx context.Context, ds *DiskimageSettings, key string, spec driver.UploadSpec) (string, error) {
	start, err := a.ec2.ImportImage(ctx, &ec2.ImportImageInput{
		Architecture:   awssdk.String(ds.Architecture),
		DiskContainers: []ec2types.ImageDiskContainer{{Format: awssdk.String(spec.Format), UserBucket: userBucket(a.st.BucketName, key)}},
		TagSpecifications: []ec2types.TagSpecification{{
			ResourceType: ec2types.ResourceTypeImportImageTask, Tags: tagList(spec.Metadata)}},
	})
	if err != nil {
		a.deleteObject(ctx, key)
		return "", classify(err, false, "aws: importing %s as an image", spec.ImageName)
	}
	var task ec2types.ImportImageTask
	err = waitTask(ctx, func() (bool, error) {
		out, err := a.ec2.DescribeImportImageTasks(ctx, &ec2.DescribeImportImageTasksInput{ImportTaskIds: []string{awssdk.ToString(start.ImportTaskId)}})
		if err != nil {
			return false, classify(err, false, "aws: watching import task %s", awssdk.ToString(start.ImportTaskId))
		}
		if len(out.ImportImageTasks) == 0 {
			return false, nil
		}
		task = out.ImportImageTasks[0]
		st := strings.ToLower(awssdk.ToString(task.Status))
		return st == "completed" || st == "deleted", nil
	})
	a.deleteObject(context.WithoutCancel(ctx), key)
	if err != nil {
		return "", err
	}
	if strings.ToLower(awssdk.ToString(task.Status)) != "completed" {
		return "", fmt.Errorf("aws: importing %s failed: %s", spec.ImageName, awssdk.ToString(task.StatusMessage))
	}
	id := awssdk.ToString(task.ImageId)
	a.createTags(ctx, id, task.Tags)
	if len(task.SnapshotDetails) > 0 {
		a.createTags(ctx, awssdk.ToString(task.SnapshotDetails[0].SnapshotId), task.Tags)
	}
	return id, nil
}

// createTags tags an imported AMI or snapshot; a failure is logged (leak
// cleanup copies the tags from the import task later).
func (a *Adapter) createTags(ctx context.Context, id string, tags []ec2types.Tag) {
	if id == "" || len(tags) == 0 {
		return
	}
	if _, err := a.ec2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: tags}); err != nil {
		a.log.Warn("tagging an imported resource failed", "resource", id, "error", err)
	}
}

// DeleteImage deregisters an AMI and deletes the snapshots it was made
// of; an unknown AMI is a NotFound error.
func (a *Adapter) DeleteImage(ctx context.Context, externalID string) error {
	out, err := a.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{externalID}})
	if err != nil {
		return classify(err, true, "aws: describing image %s", externalID)
	}
	if len(out.Images) == 0 {
		return driver.NotFoundError("aws: image %s not found", externalID)
	}
	var snaps []string
	for _, bdm := range out.Images[0].BlockDeviceMappings {
		if bdm.Ebs != nil && bdm.Ebs.SnapshotId != nil {
			snaps = append(snaps, *bdm.Ebs.SnapshotId)
		}
	}
	if _, err := a.ec2.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: awssdk.String(externalID)}); err != nil {
		return classify(err, true, "aws: deregistering image %s", externalID)
	}
	var errs []error
	for _, s := range snaps {
		_, err := a.ec2.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: awssdk.String(s)})
		if err = classify(err, true, "aws: deleting snapshot %s", s); err != nil && !driver.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
