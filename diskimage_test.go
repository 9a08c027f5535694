package nodepool_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver/simcloud"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// TestDiskimageLabelWaitsForUploadThenBootsFromNewest: a label built from
// a diskimage waits (undeclined) while its provider has no ready upload,
// then boots from the newest ready one, recording its znode path.
func TestDiskimageLabelWaitsForUploadThenBootsFromNewest(t *testing.T) {
	zk, chroot := zktest.Connect(t)
	cloud := "cloud-" + chroot[1:]
	launchertest.StartChroot(t, chroot, sprintf(`
labels:
  - name: built
diskimages:
  - name: ubuntu-jammy
    username: ubuntu
providers:
  - name: sim
    driver: simcloud
    cloud: %s
    diskimages:
      - name: ubuntu-jammy
    pools:
      - name: main
        labels:
          - name: built
            diskimage: ubuntu-jammy
`, cloud))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"built"}, zuulsim.Options{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		e, ok := launchertest.Explanation(ctx, zk, req.ID)
		return ok && e.Status == zkclient.ExplainDeferred
	}, 30*time.Second, 20*time.Millisecond)
	r, err := zk.GetRequest(ctx, req.ID)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestRequested, r.State)
	require.Empty(t, r.DeclinedBy, "nothing it could serve later is declined")

	c := simcloud.Get(cloud)
	upload := func(stateTime float64) *zkclient.ImageUpload {
		b := &zkclient.ImageBuild{ImageName: "ubuntu-jammy", State: zkclient.ImageReady, StateTime: stateTime, Formats: []string{"qcow2"}}
		require.NoError(t, zk.CreateBuild(ctx, b))
		ext := c.AddImage(simcloud.Image{Name: "ubuntu-jammy-" + b.ID, Diskimage: "ubuntu-jammy"})
		u := &zkclient.ImageUpload{ImageName: "ubuntu-jammy", BuildID: b.ID, ProviderName: "sim",
			State: zkclient.ImageReady, StateTime: stateTime, ExternalID: ext, Format: "qcow2", Username: "ubuntu", PythonPath: "auto"}
		require.NoError(t, zk.CreateUpload(ctx, u))
		return u
	}
	newest := upload(2000)
	upload(1000) // older by state_time, created later
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	n, err := zk.GetNode(ctx, got.Nodes[0])
	require.NoError(t, err)
	require.Equal(t, newest.Path(), n.ImageID, "the newest ready upload by state_time is used")
	require.Equal(t, "ubuntu", n.Username)
}
