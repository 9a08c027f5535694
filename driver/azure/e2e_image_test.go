package azure_test

// The builder is used in this file only.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/builder"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// The builder builds a VHD, uploads it as a managed disk turned into an
// image, and a diskimage label boots from that image.
func TestE2EDiskimageUploadedByBuilder(t *testing.T) {
	cloud, auth := newFake(t)
	zk, chroot := zktest.Connect(t)
	dib, err := filepath.Abs("../../builder/testdata/disk-image-create")
	require.NoError(t, err)
	dir := t.TempDir()
	top := fmt.Sprintf(`images-dir: %[1]s/images
build-log-dir: %[1]s/logs
diskimages:
  - name: ubuntu-jammy
    username: ubuntu
    elements: [vm, ubuntu-minimal]
    release: jammy
    dib-cmd: %[2]s
    metadata: {distro: ubuntu}`, dir, dib)
	prov := `    diskimages:
      - name: ubuntu-jammy
        tags: {provider_metadata: provider}
`
	yaml := fmt.Sprintf(e2eConfig, auth, top, prov) + `          - name: built
            diskimage: ubuntu-jammy
            hardware-profile: {vm-size: Standard_B1ls}
`
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	launchertest.StartChrootStop(t, chroot, yaml)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"built"}, zuulsim.Options{})
	require.NoError(t, err)
	launchertest.StartBuilder(t, chroot, path)

	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	n, err := zk.GetNode(ctx, got.Nodes[0])
	require.NoError(t, err)
	require.Equal(t, "ubuntu", n.Username)

	builds, err := zk.Builds(ctx, "ubuntu-jammy", zkclient.ImageReady)
	require.NoError(t, err)
	require.NotEmpty(t, builds)
	require.Contains(t, builds[0].Formats, "vhd")
	ups, err := zk.Uploads(ctx, "ubuntu-jammy", builds[0].ID, "az", zkclient.ImageReady)
	require.NoError(t, err)
	require.Len(t, ups, 1)
	require.Equal(t, "vhd", ups[0].Format)
	require.Regexp(t, `^ubuntu-jammy-\d+$`, ups[0].ExternalID)

	var img map[string]string
	var imgID string
	for _, r := range cloud.Resources("Microsoft.Compute/images") {
		if r.Name == ups[0].ExternalID {
			img, imgID = r.Tags, r.ID
		}
	}
	require.Equal(t, map[string]string{
		"distro": "ubuntu", "provider_metadata": "provider",
		driver.MetaBuildID: builds[0].ID, driver.MetaUploadID: ups[0].ID, driver.MetaProviderName: "az",
	}, img)
	vm := one(t, cloud, "Microsoft.Compute/virtualMachines")
	require.Equal(t, n.ExternalID, vm.Name)
	require.Equal(t, imgID, dig(vm.Body, "properties", "storageProfile", "imageReference", "id"))
}

// The builder finds the post-upload-hook on the provider settings.
func TestPostUploadHook(t *testing.T) {
	cfg, err := nodepool.LoadConfig(writeConfig(t, provider+"    post-upload-hook: /usr/local/bin/hook\n"+cloudImages+pools), "")
	require.NoError(t, err)
	h, ok := cfg.Providers[0].Settings.(builder.PostUploadHooker)
	require.True(t, ok)
	require.Equal(t, "/usr/local/bin/hook", h.UploadHook())
}
