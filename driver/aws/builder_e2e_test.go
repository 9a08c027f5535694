package aws_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

const diskimageConfig = `
images-dir: %[1]s/images
build-log-dir: %[1]s/logs
labels:
  - name: built
diskimages:
  - name: fedora
    username: fedora
    elements: [vm, fedora-minimal]
    formats: [raw]
    dib-cmd: %[2]s
    metadata:
      distro: fedora
providers:
  - name: ec2
    driver: aws
    region-name: us-west-2
    rate: 0
    object-storage:
      bucket-name: nodepool
    diskimages:
      - name: fedora
        tags: {provider_metadata: provider}
        volume-type: gp3
        iops: 1000
        throughput: 100
    pools:
      - name: main
        host-key-checking: false
        labels:
          - name: built
            diskimage: fedora
            instance-type: t3.medium
            key-name: zuul
            iops: 2000
            throughput: 200
`

// TestE2EDiskimageUploadedThroughS3: the builder uploads its raw build to
// the S3 bucket, the driver imports it as a snapshot registered as an AMI,
// and a launcher serves a diskimage label from that AMI.
func TestE2EDiskimageUploadedThroughS3(t *testing.T) {
	opts := e2eTimings
	opts.ImportTime = 100 * time.Millisecond
	cloud := useFake(t, opts)
	zk, chroot := zktest.Connect(t)
	dib, err := filepath.Abs("../../builder/testdata/disk-image-create")
	require.NoError(t, err)
	dir := t.TempDir()
	yaml := fmt.Sprintf(diskimageConfig, dir, dib)
	path := filepath.Join(dir, "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	launchertest.StartChrootStop(t, chroot, yaml)
	launchertest.StartBuilder(t, chroot, path)
	_, n := serve(t, ctx, zk, "built")

	builds, err := zk.Builds(ctx, "fedora", zkclient.ImageReady)
	require.NoError(t, err)
	require.Len(t, builds, 1)
	ups, err := zk.Uploads(ctx, "fedora", builds[0].ID, "ec2", zkclient.ImageReady)
	require.NoError(t, err)
	require.Len(t, ups, 1)
	up := ups[0]
	require.Equal(t, "raw", up.Format)
	require.Equal(t, up.Path(), n.ImageID, "the node records the upload it booted from")
	require.Equal(t, "fedora", n.Username)

	img, ok := cloud.Images()[up.ExternalID]
	require.True(t, ok, "the upload's external id is an AMI")
	require.Equal(t, up.ExternalName, img.Name)
	want := map[string]string{"distro": "fedora", "provider_metadata": "provider",
		driver.MetaBuildID: builds[0].ID, driver.MetaUploadID: up.ID, driver.MetaProviderName: "ec2"}
	require.Equal(t, want, img.Tags)
	require.Equal(t, "gp3", img.BlockDevices[0].VolumeType)
	require.Equal(t, 1000, img.BlockDevices[0].IOPS)
	require.Equal(t, want, cloud.Snapshots()[img.BlockDevices[0].SnapshotID].Tags)
	require.Empty(t, cloud.Objects("nodepool"), "the S3 object is removed after the import")
	require.Equal(t, 1, cloud.Calls()["ImportSnapshot"])
	require.Equal(t, 1, cloud.Calls()["s3:PUT"])

	in, ok := cloud.Instance(n.ExternalID)
	require.True(t, ok)
	require.Equal(t, up.ExternalID, in.ImageID, "the instance boots the imported AMI")
	require.Equal(t, 2000, in.BlockDevices[0].IOPS, "with the label's volume settings")
	require.Equal(t, 200, in.BlockDevices[0].Throughput)
}
