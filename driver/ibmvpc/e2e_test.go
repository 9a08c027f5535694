package ibmvpc_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	nodepool "github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver/ibmvpc"
	"github.com/nodepool-go/nodepool/internal/fakeibmvpc"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

func init() { ibmvpc.SetTimings(20*time.Millisecond, 10*time.Millisecond) }

// e2eYAML is a launcher and builder configuration on the fake cloud.
func e2eYAML(t *testing.T, c *fakeibmvpc.Cloud, extra string) string {
	dir := t.TempDir()
	dib, err := filepath.Abs("../../builder/testdata/disk-image-create")
	require.NoError(t, err)
	return fmt.Sprintf(`
images-dir: %[1]s/images
build-log-dir: %[1]s/logs
labels:
  - name: debian-private
  - name: debian-public
  - name: fake-image
diskimages:
  - name: fake-image
    username: zuul
    elements: [vm]
    release: 21
    dib-cmd: %[2]s
providers:
  - name: ibmvpc
    driver: ibmvpc
    rate: 1000
    credentials-file: %[3]s
    object-storage:
      instance-name: '%[4]s'
      endpoint: '%[5]s'
      bucket-name: %[6]s
    vpc: nodepool
    region: us-south
    subnet: sn-nodepool
    boot-timeout: 10
%[7]s
    cloud-images:
      - name: debian-by-name
        username: zuul
        keys: [testuser]
        image-name: ibm-debian-9-13-minimal-amd64-4
    diskimages:
      - name: fake-image
        operating-system: debian-9-amd64
    pools:
      - name: private
        zone: us-south-1
        max-servers: 10
        host-key-checking: false
        labels:
          - name: debian-private
            cloud-image: debian-by-name
            profile: cx2-2x4
          - name: fake-image
            diskimage: fake-image
            profile: cx2-2x4
      - name: public
        zone: us-south-1
        max-servers: 10
        public-ipv4: true
        host-key-checking: false
        labels:
          - name: debian-public
            cloud-image: debian-by-name
            profile: cx2-2x4
`, dir, dib, c.WriteCredentials(t, dir), fakeibmvpc.COSInstance, c.COSURL, fakeibmvpc.Bucket, extra)
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nodepool.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return path
}

// serve submits a request for label and returns it with its fulfilled
// node.
func serve(t *testing.T, ctx context.Context, zk *zkclient.Client, label string) (*zuulsim.Request, *zkclient.Node) {
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
	return req, n
}

// useAndReturn accepts the request's node set as Zuul does and returns it.
func useAndReturn(t *testing.T, ctx context.Context, req *zuulsim.Request) {
	t.Helper()
	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
}

func waitNoNodes(t *testing.T, ctx context.Context, zk *zkclient.Client) {
	t.Helper()
	require.Eventually(t, func() bool {
		ids, _ := zk.NodeIDs(ctx)
		return len(ids) == 0
	}, 30*time.Second, 20*time.Millisecond, "used nodes are deleted")
}

func TestEndToEndCloudImageAndUploadedDiskimage(t *testing.T) {
	c := fakeibmvpc.New(t)
	zk, chroot := zktest.Connect(t)
	yaml := e2eYAML(t, c, "")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	launchertest.StartChrootStop(t, chroot, yaml)

	// A cloud-image label in the public pool: floating IP as interface_ip.
	req, n := serve(t, ctx, zk, "debian-public")
	require.Equal(t, "np"+n.ID, n.ExternalID)
	require.NotEmpty(t, n.PublicIPv4)
	require.Equal(t, n.PublicIPv4, n.InterfaceIP)
	require.NotEmpty(t, n.PrivateIPv4)
	require.Equal(t, "IBM", n.Cloud)
	require.Equal(t, "us-south", n.Region)
	require.Equal(t, "us-south-1", n.AZ)
	require.Equal(t, "zuul", n.Username)
	require.Equal(t, "ssh", n.ConnectionType)
	require.Equal(t, "22", string(n.ConnectionPort))
	require.Equal(t, "auto", n.PythonPath)
	require.Empty(t, n.HostKeys, "host-key-checking is off")
	vms := c.Instances()
	require.Len(t, vms, 1)
	require.Equal(t, "np_ibmvpc_public", vms[0].Group)
	require.Len(t, c.FloatingIPs(), 1)

	// A diskimage label served from the image the builder uploaded
	// through object storage.
	launchertest.StartBuilder(t, chroot, writeConfig(t, yaml))
	var upload *zkclient.ImageUpload
	require.Eventually(t, func() bool {
		builds, err := zk.Builds(ctx, "fake-image", zkclient.ImageReady)
		if err != nil || len(builds) == 0 {
			return false
		}
		ups, err := zk.Uploads(ctx, "fake-image", builds[0].ID, "ibmvpc", zkclient.ImageReady)
		if err != nil || len(ups) == 0 {
			return false
		}
		upload = ups[0]
		return true
	}, 60*time.Second, 50*time.Millisecond, "the builder builds and uploads fake-image")
	ims := c.Images()
	require.Len(t, ims, 1)
	require.Equal(t, upload.ExternalID, ims[0].ID)
	require.Equal(t, "npimage"+upload.ID+"-"+upload.BuildID, ims[0].Name)
	require.Equal(t, "npimages_ibmvpc", ims[0].Group)
	require.Empty(t, c.Objects(), "the staged object is removed")

	req2, n2 := serve(t, ctx, zk, "fake-image")
	require.Equal(t, upload.Path(), n2.ImageID)
	require.Equal(t, n2.PrivateIPv4, n2.InterfaceIP)
	var booted string
	for _, v := range c.Instances() {
		if v.Name == n2.ExternalID {
			booted = v.Image
		}
	}
	require.Equal(t, upload.ExternalID, booted, "the instance boots the uploaded image")

	useAndReturn(t, ctx, req)
	useAndReturn(t, ctx, req2)
	waitNoNodes(t, ctx, zk)
	require.Eventually(t, func() bool { return len(c.Instances()) == 0 && len(c.FloatingIPs()) == 0 }, 30*time.Second, 20*time.Millisecond,
		"instances and floating IPs are deleted")
}

func TestEndToEndQuotaPauseAndFaults(t *testing.T) {
	c := fakeibmvpc.New(t)
	zk, chroot := zktest.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// One attempt per node: neither the quota refusal nor the ridden-out
	// faults may use one up.
	launchertest.StartChrootStop(t, chroot, e2eYAML(t, c, "    launch-retries: 1"))

	// 503s beyond the SDK's own retries: transient, retried by the
	// launcher in the same attempt. Then throttling, ridden out by the SDK.
	c.Fail("POST", "/v1/instances", 503, "service_unavailable", 6)
	c.Fail("GET", "/v1/instances", 429, "too_many_requests", 2)
	req1, _ := serve(t, ctx, zk, "debian-private")

	// The cloud's instance quota: the next node is refused with over_quota,
	// aborted, and the pool pauses until the first node is gone.
	c.SetInstanceQuota(1)
	req2, err := zuulsim.Submit(ctx, zk, []string{"debian-private"}, zuulsim.Options{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.Calls()["POST /v1/instances"] >= 8 }, 30*time.Second, 10*time.Millisecond,
		"a create refused for quota")
	got, err := zk.GetRequest(ctx, req2.ID)
	require.NoError(t, err)
	require.NotEqual(t, zkclient.RequestFulfilled, got.State)
	useAndReturn(t, ctx, req1)
	got, err = req2.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State, "served once quota frees up")
	require.Empty(t, got.DeclinedBy)
	require.Len(t, c.Instances(), 1)
}

func TestEndToEndLeakCleanupAfterRestart(t *testing.T) {
	c := fakeibmvpc.New(t)
	zk, chroot := zktest.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	yaml := e2eYAML(t, c, "")
	stop := launchertest.StartChrootStop(t, chroot, yaml)
	_, n := serve(t, ctx, zk, "debian-public")
	stop()

	// While no launcher runs, the node's record is lost, and a foreign
	// instance and a leaked one appear. (Staged objects and images are
	// leaks of uploads, which the launcher judges only while ZooKeeper
	// holds images; ibmvpc_test.go covers how they are listed.)
	n2, err := zk.GetNode(ctx, n.ID)
	require.NoError(t, err)
	require.NoError(t, zk.DeleteNode(ctx, n2, nil))
	c.AddInstance("np0000099999", "np_ibmvpc_private", "cx2-2x4")
	c.AddInstance("someone-elses", "Default", "cx2-2x4")

	launchertest.StartChrootStop(t, chroot, yaml, nodepool.WithCleanupInterval(100*time.Millisecond))
	require.Eventually(t, func() bool {
		vms := c.Instances()
		return len(vms) == 1 && len(c.FloatingIPs()) == 0
	}, 30*time.Second, 20*time.Millisecond, "leaked instances and floating IPs are deleted")
	require.Equal(t, "someone-elses", c.Instances()[0].Name, "what nodepool does not own stays")
}

func TestEndToEndProviderQuotaKey(t *testing.T) {
	c := fakeibmvpc.New(t)
	zk, chroot := zktest.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// cx2-2x4 has 2 vCPUs: one node at a time, as a foreign instance's
	// vCPUs count too.
	c.AddInstance("someone-elses", "Default", "cx2-2x4")
	launchertest.StartChrootStop(t, chroot, e2eYAML(t, c, "    quota:\n      cores: 4"))
	req1, _ := serve(t, ctx, zk, "debian-private")
	req2, err := zuulsim.Submit(ctx, zk, []string{"debian-private"}, zuulsim.Options{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, err := zk.GetRequest(ctx, req2.ID)
		return err == nil && got.State == zkclient.RequestPending
	}, 30*time.Second, 5*time.Millisecond, "a pool takes the second request")
	useAndReturn(t, ctx, req1)
	got, err := req2.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	require.Equal(t, 2, c.Calls()["POST /v1/instances"], "the launcher never asked beyond the quota")
	require.Equal(t, 2, c.PeakInstances(), "the second node waited for the first to go (one is foreign)")
}
