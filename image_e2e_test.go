package nodepool_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/simcloud"
	"github.com/nodepool-go/nodepool/internal/fakeopenstack"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// fakeDIB is the fake disk-image-create of the builder tests: it writes
// real qcow2/raw/vhd files with qemu-img.
func fakeDIB(t *testing.T) string {
	p, err := filepath.Abs("builder/testdata/disk-image-create")
	require.NoError(t, err)
	return p
}

// writeConfig writes a config file for the test and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return path
}

// waitReadyUpload waits for the builder's first ready build of image and
// its ready upload to provider.
func waitReadyUpload(t *testing.T, ctx context.Context, zk *zkclient.Client, image, provider string) (*zkclient.ImageBuild, *zkclient.ImageUpload) {
	t.Helper()
	var build *zkclient.ImageBuild
	var upload *zkclient.ImageUpload
	require.Eventually(t, func() bool {
		builds, err := zk.Builds(ctx, image, zkclient.ImageReady)
		if err != nil || len(builds) == 0 {
			return false
		}
		ups, err := zk.Uploads(ctx, image, builds[0].ID, provider, zkclient.ImageReady)
		if err != nil || len(ups) == 0 {
			return false
		}
		build, upload = builds[0], ups[0]
		return true
	}, 30*time.Second, 50*time.Millisecond, "the builder builds and uploads %s to %s", image, provider)
	return build, upload
}

// qemuFormat returns the format qemu-img detects in a file.
func qemuFormat(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("qemu-img", "info", "--output=json", path).Output()
	require.NoError(t, err, "qemu-img info %s", path)
	var info struct {
		Format string `json:"format"`
	}
	require.NoError(t, json.Unmarshal(out, &info))
	return info.Format
}

// bootFromUpload submits a request for label and returns the fulfilled
// node (accepted and returned when the test ends).
func bootFromUpload(t *testing.T, ctx context.Context, zk *zkclient.Client, label string) *zkclient.Node {
	t.Helper()
	req, err := zuulsim.Submit(ctx, zk, []string{label}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	require.Len(t, got.Nodes, 1)
	n, err := zk.GetNode(ctx, got.Nodes[0])
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeReady, n.State)
	return n
}

// TestImageBuildUploadBootSimcloud (#6): a builder runs the fake
// disk-image-create (real qcow2, raw and vhd files), uploads the qcow2 to
// simcloud, and a launcher sharing the cloud and the ZooKeeper chroot boots
// a node of a diskimage label from exactly that upload.
func TestImageBuildUploadBootSimcloud(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	dir := t.TempDir()
	yaml := sprintf(`
images-dir: %[1]s/images
build-log-dir: %[1]s/logs
labels:
  - name: built
diskimages:
  - name: ubuntu-jammy
    username: ubuntu
    elements: [vm, ubuntu-minimal]
    formats: [raw, vhd]
    release: jammy
    dib-cmd: %[2]s
    metadata:
      distro: ubuntu
providers:
  - name: sim
    driver: simcloud
    cloud: %[3]s
    diskimages:
      - name: ubuntu-jammy
        meta:
          team: infra
    pools:
      - name: main
        labels:
          - name: built
            diskimage: ubuntu-jammy
`, dir, fakeDIB(t), cloud)
	path := writeConfig(t, yaml)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	launchertest.Start(t, zktest.ConnectChroot(t, chroot), yaml)
	req, err := zuulsim.Submit(ctx, zk, []string{"built"}, zuulsim.Options{})
	require.NoError(t, err)
	launchertest.StartBuilder(t, chroot, path)

	build, upload := waitReadyUpload(t, ctx, zk, "ubuntu-jammy", "sim")
	require.Regexp(t, `^[0-9a-f]{32}$`, build.ID, "UUID build id")
	require.Equal(t, []string{"qcow2", "raw", "vhd"}, build.Formats)
	prefix := filepath.Join(dir, "images", "ubuntu-jammy-"+build.ID)
	for f, want := range map[string]string{"qcow2": "qcow2", "raw": "raw", "vhd": "vpc"} {
		require.Equal(t, want, qemuFormat(t, prefix+"."+f), "real %s file", f)
	}
	require.Equal(t, "qcow2", upload.Format)

	c := simcloud.Get(cloud)
	var img simcloud.Image
	for _, im := range c.Images() {
		if im.ID == upload.ExternalID {
			img = im
		}
	}
	require.Equal(t, upload.ExternalID, img.ID, "the upload's external id is a simcloud image")
	require.Equal(t, upload.ExternalName, img.Name)
	require.Equal(t, "qcow2", img.Format)
	require.Equal(t, "ubuntu-jammy", img.Diskimage)
	require.Equal(t, map[string]string{
		"distro": "ubuntu", "team": "infra",
		driver.MetaBuildID: build.ID, driver.MetaUploadID: upload.ID, driver.MetaProviderName: "sim",
	}, img.Metadata)

	// The request submitted before any upload existed is served from it.
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	n, err := zk.GetNode(ctx, got.Nodes[0])
	require.NoError(t, err)
	require.Equal(t, upload.Path(), n.ImageID, "the node records the upload it booted from")
	require.Equal(t, "ubuntu", n.Username)
	var srv simcloud.Server
	for _, s := range c.Instances() {
		if s.ID == n.ExternalID {
			srv = s
		}
	}
	require.Equal(t, n.ExternalID, srv.ID, "the node's server exists")
	require.Equal(t, upload.ExternalID, srv.Image, "the server boots the uploaded image")

	// A second node boots from the same upload.
	n2 := bootFromUpload(t, ctx, zk, "built")
	require.Equal(t, upload.Path(), n2.ImageID)
}

// TestImageBuildUploadBootOpenStack (#7): the builder uploads to the fake
// Glance in the disk format clouds.yaml's image_format names (qcow2 when it
// names none), with our metadata and the file's data; a launcher boots a
// diskimage label from exactly that Glance image.
func TestImageBuildUploadBootOpenStack(t *testing.T) {
	for _, tc := range []struct{ cloudsFormat, want string }{{"", "qcow2"}, {"raw", "raw"}} {
		t.Run("image_format="+tc.want, func(t *testing.T) {
			cloud := fakeopenstack.Setup(t, fakeopenstack.Options{ImageFormat: tc.cloudsFormat})
			zk, chroot := zktest.Connect(t)
			dir := t.TempDir()
			// The raw case also names uploads and runs a post-upload hook.
			extra, hookArgs := "", filepath.Join(dir, "hook-args")
			if tc.want == "raw" {
				hook := filepath.Join(dir, "hook.sh")
				require.NoError(t, os.WriteFile(hook, []byte("#!/bin/sh\necho \"$@\" > "+hookArgs+"\n"), 0o755))
				extra = "\n    image-name-format: 'np-{image_name}-{upload_id}'\n    post-upload-hook: " + hook
			}
			yaml := sprintf(`
images-dir: %[1]s/images
build-log-dir: %[1]s/logs
labels:
  - name: built
diskimages:
  - name: ubuntu-jammy
    username: ubuntu
    elements: [vm, ubuntu-minimal]
    dib-cmd: %[2]s
    metadata:
      distro: ubuntu
providers:
  - name: os
    driver: openstack
    cloud: fake
    rate: 0
    boot-timeout: 10%[3]s
    diskimages:
      - name: ubuntu-jammy
        meta:
          team: infra
    pools:
      - name: main
        networks: [private]
        host-key-checking: false
        labels:
          - name: built
            diskimage: ubuntu-jammy
            flavor-name: m1.small
`, dir, fakeDIB(t), extra)
			path := writeConfig(t, yaml)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// Subtest names hold a "/", which a component name cannot.
			launchertest.Start(t, zktest.ConnectChroot(t, chroot), yaml, nodepool.WithHostname("test-image-e2e-"+tc.want))
			launchertest.StartBuilder(t, chroot, path)

			build, upload := waitReadyUpload(t, ctx, zk, "ubuntu-jammy", "os")
			require.Equal(t, []string{tc.want}, build.Formats, "the cloud's format is the one built")
			require.Equal(t, tc.want, upload.Format)
			file := filepath.Join(dir, "images", "ubuntu-jammy-"+build.ID+"."+tc.want)
			require.Equal(t, tc.want, qemuFormat(t, file))
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			sum := md5.Sum(data)

			if tc.want == "raw" {
				require.Equal(t, "np-ubuntu-jammy-"+upload.ID, upload.ExternalName)
				args, err := os.ReadFile(hookArgs)
				require.NoError(t, err, "the post-upload hook ran")
				require.Equal(t, "os "+upload.ExternalID+" "+file+"\n", string(args))
			} else {
				require.Regexp(t, `^ubuntu-jammy-\d{10}$`, upload.ExternalName)
			}
			im, ok := cloud.Image(upload.ExternalID)
			require.True(t, ok, "the upload's external id is a Glance image")
			require.Equal(t, "active", im.Status)
			require.Equal(t, upload.ExternalName, im.Name)
			require.Equal(t, tc.want, im.DiskFormat)
			require.Equal(t, "bare", im.ContainerFormat)
			require.Equal(t, "private", im.Visibility)
			require.Equal(t, int64(len(data)), im.Size, "the file's data was uploaded")
			require.Equal(t, hex.EncodeToString(sum[:]), im.Checksum)
			for k, v := range map[string]string{
				"distro": "ubuntu", "team": "infra",
				driver.MetaBuildID: build.ID, driver.MetaUploadID: upload.ID, driver.MetaProviderName: "os",
				"owner_specified.openstack.md5": hex.EncodeToString(sum[:]),
			} {
				require.Equal(t, v, im.Properties[k], k)
			}

			n := bootFromUpload(t, ctx, zk, "built")
			require.Equal(t, upload.Path(), n.ImageID)
			require.Equal(t, "ubuntu", n.Username)
			srv, ok := cloud.Server(n.ExternalID)
			require.True(t, ok)
			require.Equal(t, upload.ExternalID, srv.ImageID, "the server boots the uploaded Glance image")
		})
	}
}
