package aws_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/fakeaws"
	"github.com/nodepool-go/nodepool/internal/launchertest"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/internal/zuulsim"
	"github.com/nodepool-go/nodepool/zkclient"
)

// e2eConfig is a launcher configuration with one AWS provider; %s adds
// provider keys.
const e2eConfig = `
labels:
  - name: small
  - name: big
providers:
  - name: ec2
    driver: aws
    region-name: us-west-2
    rate: 0
    boot-timeout: 10
    launch-retries: 2
%s
    cloud-images:
      - name: ubuntu
        image-id: ami-1e749f67
        username: ubuntu
    pools:
      - name: main
        subnet-id: subnet-0a1b2c3d
        security-group-id: sg-0a1b2c3d
        host-key-checking: false
        node-attributes: {team: ci}
        labels:
          - name: small
            cloud-image: ubuntu
            instance-type: t3.medium
            key-name: zuul
          - name: big
            cloud-image: ubuntu
            instance-type: t3.large
            key-name: zuul
`

var e2eTimings = fakeaws.Options{PendingTime: 50 * time.Millisecond, ShutdownTime: 30 * time.Millisecond,
	TerminatedLinger: 200 * time.Millisecond, Invisible: 30 * time.Millisecond}

func serve(t *testing.T, ctx context.Context, zk *zkclient.Client, label string) (*zuulsim.Request, *zkclient.Node) {
	t.Helper()
	req, err := zuulsim.Submit(ctx, zk, []string{label}, zuulsim.Options{})
	require.NoError(t, err)
	got, err := req.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, got.State)
	n, err := zk.GetNode(ctx, got.Nodes[0])
	require.NoError(t, err)
	return req, n
}

func TestE2ECloudImageNodeThroughACapacityFault(t *testing.T) {
	cloud := useFake(t, e2eTimings)
	zk, chroot := zktest.Connect(t)
	launchertest.StartChrootStop(t, chroot, fmt.Sprintf(e2eConfig, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The first attempt meets no capacity (three answers: the SDK retries
	// a 5xx), then a throttled call the SDK rides out.
	cloud.FailNext(3, "RunInstances", "InsufficientInstanceCapacity")
	cloud.FailNext(1, "RunInstances", "RequestLimitExceeded")

	req, n := serve(t, ctx, zk, "small")
	require.Equal(t, zkclient.NodeReady, n.State)
	in, ok := cloud.Instance(n.ExternalID)
	require.True(t, ok, "the node's external id is the instance id")
	require.Equal(t, "np"+n.ID, in.Tags["Name"])
	require.Equal(t, n.ID, in.Tags[driver.MetaNodeID])
	require.Equal(t, in.PublicIP, n.InterfaceIP)
	require.Equal(t, in.PublicIP, n.PublicIPv4)
	require.Equal(t, in.PrivateIP, n.PrivateIPv4)
	require.Equal(t, "AWS", n.Cloud)
	require.Equal(t, "us-west-2", n.Region)
	require.Equal(t, "us-west-2b", n.AZ)
	require.Equal(t, "ubuntu", n.Username)
	require.Equal(t, "ssh", n.ConnectionType)
	require.JSONEq(t, `22`, string(n.ConnectionPort))
	require.Equal(t, "auto", n.PythonPath)
	require.JSONEq(t, `{"team": "ci"}`, string(n.Attributes))
	require.Equal(t, map[string]float64{"cores": 1, "instances": 1, "ram": 4096, "L-1216C47A": 2}, n.Resources)
	require.GreaterOrEqual(t, cloud.Calls()["RunInstances"], 5, "three capacity answers, one throttled, one success")

	ns, err := req.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
	require.Eventually(t, func() bool {
		ids, _ := zk.NodeIDs(ctx)
		return len(ids) == 0
	}, 30*time.Second, 20*time.Millisecond, "the used node is deleted")
	require.Empty(t, cloud.Alive(), "its instance is terminated")
}

func TestE2EQuotaPausesThePool(t *testing.T) {
	cloud := useFake(t, e2eTimings)
	cloud.SetQuota("L-1216C47A", 4) // two t3 instances
	zk, chroot := zktest.Connect(t)
	launchertest.StartChrootStop(t, chroot, fmt.Sprintf(e2eConfig, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	first, _ := serve(t, ctx, zk, "small")
	// Someone else's instance takes the rest of the quota behind the
	// launcher's back: the cloud refuses the next create for quota.
	cloud.AddInstance(fakeaws.Instance{InstanceType: "t3.large"})
	second, err := zuulsim.Submit(ctx, zk, []string{"big"}, zuulsim.Options{})
	require.NoError(t, err)
	time.Sleep(1500 * time.Millisecond)
	got, err := zk.GetRequest(ctx, second.ID)
	require.NoError(t, err)
	require.NotEqual(t, zkclient.RequestFailed, got.State, "a quota refusal pauses, it does not fail the request")
	require.NotEqual(t, zkclient.RequestFulfilled, got.State)

	_, err = first.Wait(ctx)
	require.NoError(t, err)
	ns, err := first.Accept(ctx)
	require.NoError(t, err)
	require.NoError(t, ns.Return(ctx))
	done, err := second.Wait(ctx)
	require.NoError(t, err)
	require.Equal(t, zkclient.RequestFulfilled, done.State, "served once the first node is gone")
	require.Empty(t, done.DeclinedBy)
}

func TestE2ELeakCleanupAfterRestart(t *testing.T) {
	cloud := useFake(t, e2eTimings)
	zk, chroot := zktest.Connect(t)
	stop := launchertest.StartChrootStop(t, chroot, fmt.Sprintf(e2eConfig, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, n := serve(t, ctx, zk, "small")
	stop()
	// The node record is lost while the launcher is down: its instance
	// is a leak.
	require.NoError(t, zk.DeleteRecursive(ctx, zkclient.NodePath(n.ID)))
	foreign := cloud.AddInstance(fakeaws.Instance{Tags: map[string]string{"Name": "pet"}})
	otherProvider := cloud.AddInstance(fakeaws.Instance{Tags: map[string]string{driver.MetaProviderName: "other", driver.MetaNodeID: "0000000999"}})

	launchertest.StartChrootStop(t, chroot, fmt.Sprintf(e2eConfig, ""), nodepool.WithCleanupInterval(100*time.Millisecond))
	require.Eventually(t, func() bool {
		_, ok := cloud.Instance(n.ExternalID)
		return !ok || cloud.InstanceState(n.ExternalID) == "terminated"
	}, 30*time.Second, 20*time.Millisecond, "the leaked instance is terminated")
	require.ElementsMatch(t, []string{foreign, otherProvider}, cloud.Alive(), "instances not ours are untouched")
}
