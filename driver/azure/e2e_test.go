package azure_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/fakeazure"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// e2eConfig is a launcher configuration with one Azure provider on the
// fake; %[1]s is the auth file, %[2]s extra top-level YAML, %[3]s extra
// provider keys.
const e2eConfig = `
labels:
  - name: bionic
  - name: built
%[2]s
providers:
  - name: az
    driver: azure
    location: centralus
    resource-group: nodepool
    resource-group-location: centralus
    auth-path: %[1]s
    network: {network: NodePool}
    rate: 1000
    boot-timeout: 10
%[3]s
    cloud-images:
      - name: bionic
        username: zuul
        shell-type: sh
        image-reference: {sku: 18.04-LTS, publisher: Canonical, version: latest, offer: UbuntuServer}
    pools:
      - name: main
        max-servers: 10
        host-key-checking: false
        node-attributes: {key1: value1}
        labels:
          - name: bionic
            cloud-image: bionic
            hardware-profile: {vm-size: Standard_B1ls}
            dynamic-tags: {dynamic-tenant: "Tenant is {request.tenant_name}"}
`

func fulfilled(t *testing.T, ctx context.Context, req *zuulsim.Request) *zkclient.Node {
	t.Helper()
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	require.Len(t, got.Nodes, 1)
	return nil
}

// A cloud-image request served through ZooKeeper as Zuul sees it, with
// 5xx answers ridden out, an allocation failure retried and slow calls on
// the way; the returned node's VM, NIC and public IP are deleted.
func TestE2ECloudImage(t *testing.T) {
	cloud, auth := newFake(t)
	zk, chroot := zktest.Connect(t)
	launchertest.StartChrootStop(t, chroot, fmt.Sprintf(e2eConfig, auth, "", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// More failures than the SDK retries: the launcher retries the step.
	cloud.Inject(fakeazure.Fault{Method: "PUT", Path: "/virtualmachines/", Status: 500, Code: "InternalServerError", Msg: "oops", Times: 5})
	// No capacity for the first VM: the attempt fails, the next succeeds.
	cloud.FailAllocations(1)
	cloud.SetLatency(5 * time.Millisecond)
	req, err := zuulsim.Submit(ctx, zk, []string{"bionic"}, zuulsim.Options{Tenant: "tenant-1"})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	n, err := zk.GetNode(ctx, got.Nodes[0])
	require.NoError(t, err)
	require.Equal(t, zkclient.NodeReady, n.State)

	vm := one(t, cloud, "Microsoft.Compute/virtualMachines")
	require.Equal(t, "np"+n.ID, n.ExternalID)
	require.Equal(t, n.ExternalID, vm.Name)
	require.Equal(t, "Tenant is tenant-1", vm.Tags["dynamic-tenant"])
	require.Equal(t, n.ID, vm.Tags[driver.MetaNodeID])
	pip := one(t, cloud, "Microsoft.Network/publicIPAddresses")
	require.Equal(t, dig(pip.Body, "properties", "ipAddress"), n.PublicIPv4)
	require.Equal(t, n.PublicIPv4, n.InterfaceIP)
	require.Regexp(t, `^10\.0\.`, n.PrivateIPv4)
	require.Equal(t, "Azure", n.Cloud)
	require.Equal(t, "centralus", n.Region)
	require.Equal(t, "zuul", n.Username)
	require.Equal(t, "sh", n.ShellType)
	require.Equal(t, "ssh", n.ConnectionType)
	require.JSONEq(t, "22", string(n.ConnectionPort))
	require.Equal(t, 1.0, n.Resources["cores"])
	require.Equal(t, 512.0, n.Resources["ram"])
	require.JSONEq(t, `{"key1": "value1"}`, string(n.Attributes))

	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
	for _, typ := range []string{"Microsoft.Compute/virtualMachines", "Microsoft.Network/networkInterfaces", "Microsoft.Network/publicIPAddresses", "Microsoft.Compute/disks"} {
		require.Eventually(t, func() bool { return len(cloud.Resources(typ)) == 0 }, 30*time.Second, 20*time.Millisecond, typ)
	}
}

// Quota: a refusal by the cloud aborts the node without failing it, and
// the cloud's VM limit pauses the pool: the second request waits until
// the first node is returned.
func TestE2EQuotaPause(t *testing.T) {
	cloud, auth := newFake(t)
	cloud.SetQuota(-1, 1)
	zk, chroot := zktest.Connect(t)
	launchertest.StartChrootStop(t, chroot, fmt.Sprintf(e2eConfig, auth, "", ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A refusal for quota the launcher could not foresee (someone else
	// used the cores) aborts the node and pauses; the request is served
	// once the cloud accepts.
	cloud.Inject(fakeazure.Fault{Method: "PUT", Path: "/virtualmachines/", Status: 409, Code: "OperationNotAllowed",
		Msg: "Operation could not be completed as it results in exceeding approved Total Regional Cores quota."})
	first, err := zuulsim.Submit(ctx, zk, []string{"bionic"}, zuulsim.Options{})
	require.NoError(t, err)
	fulfilled(t, ctx, first)
	got, err := zk.GetRequest(ctx, first.ID)
	require.NoError(t, err)
	require.Empty(t, got.DeclinedBy, "a quota refusal does not fail the request's node")
	second, err := zuulsim.Submit(ctx, zk, []string{"bionic"}, zuulsim.Options{})
	require.NoError(t, err)
	require.Never(t, func() bool {
		r, err := zk.GetRequest(ctx, second.ID)
		return err == nil && r.State == zkclient.RequestFulfilled
	}, time.Second, 50*time.Millisecond, "a second VM is over the cloud's quota")
	require.Len(t, cloud.Resources("Microsoft.Compute/virtualMachines"), 1)

	ns, err := first.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
	fulfilled(t, ctx, second)
}

// Resources of a node whose record is gone (a launcher that crashed
// mid-launch) are removed by the next launcher's cleanup; the live
// node's are kept.
func TestE2ELeakCleanupAfterRestart(t *testing.T) {
	cloud, auth := newFake(t)
	zk, chroot := zktest.Connect(t)
	yaml := fmt.Sprintf(e2eConfig, auth, "", "")
	stop := launchertest.StartChrootStop(t, chroot, yaml)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := zuulsim.Submit(ctx, zk, []string{"bionic"}, zuulsim.Options{})
	require.NoError(t, err)
	fulfilled(t, ctx, req)
	stop()

	md := map[string]string{driver.MetaNodeID: "0000099999", driver.MetaPoolName: "main", driver.MetaProviderName: "az"}
	cloud.CreateTagged("Microsoft.Compute/virtualMachines", "nodepool", "np0000099999", md)
	cloud.CreateTagged("Microsoft.Network/networkInterfaces", "nodepool", "np0000099999-nic", md)
	cloud.CreateTagged("Microsoft.Network/publicIPAddresses", "nodepool", "np0000099999-pip-IPv4", md)
	other := map[string]string{driver.MetaNodeID: "0000099998", driver.MetaPoolName: "main", driver.MetaProviderName: "another"}
	cloud.CreateTagged("Microsoft.Network/publicIPAddresses", "nodepool", "np0000099998-pip-IPv4", other)

	launchertest.StartChrootStop(t, chroot, yaml, nodepool.WithCleanupInterval(100*time.Millisecond))
	names := func(typ string) []string {
		var out []string
		for _, r := range cloud.Resources(typ) {
			out = append(out, r.Name)
		}
		return out
	}
	require.Eventually(t, func() bool {
		return len(names("Microsoft.Compute/virtualMachines")) == 1 && len(names("Microsoft.Network/networkInterfaces")) == 1 &&
			len(names("Microsoft.Network/publicIPAddresses")) == 2
	}, 30*time.Second, 20*time.Millisecond, "leaked VM, NIC and public IP deleted")
	require.NotContains(t, names("Microsoft.Compute/virtualMachines"), "np0000099999")
	require.Contains(t, names("Microsoft.Network/publicIPAddresses"), "np0000099998-pip-IPv4", "another provider's resources are kept")
}
