package fakegce_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	compute "google.golang.org/api/compute/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/nodepool-go/nodepool/internal/fakegce"
)

func TestLifecycleThroughTheClientLibrary(t *testing.T) {
	cloud, keyFile := fakegce.Setup(t, fakegce.Options{BuildTime: 100 * time.Millisecond, ListDelay: 50 * time.Millisecond, PageSize: 1})
	ctx := context.Background()
	svc, err := compute.NewService(ctx, option.WithEndpoint(cloud.Endpoint()), option.WithAuthCredentialsFile(option.ServiceAccount, keyFile))
	require.NoError(t, err)
	p, z := cloud.Project(), cloud.Zone()
	body := &compute.Instance{
		Name: "np1", MachineType: "zones/" + z + "/machineTypes/e2-small",
		Disks: []*compute.AttachedDisk{{Boot: true, InitializeParams: &compute.AttachedDiskInitializeParams{
			SourceImage: "projects/debian-cloud/global/images/debian-12-bookworm-v20260101", DiskType: "zones/" + z + "/diskTypes/pd-standard"}}},
	}
	op, err := svc.Instances.Insert(p, z, body).Do()
	require.NoError(t, err)
	require.Equal(t, "RUNNING", op.Status)
	list, err := svc.Instances.List(p, z).Do()
	require.NoError(t, err)
	require.Empty(t, list.Items, "not listed right after the insert")
	in, err := svc.Instances.Get(p, z, "np1").Do()
	require.NoError(t, err)
	require.Equal(t, "PROVISIONING", in.Status)

	_, err = svc.Instances.Insert(p, z, body).Do()
	var ge *googleapi.Error
	require.ErrorAs(t, err, &ge)
	require.Equal(t, 409, ge.Code)
	require.Equal(t, "alreadyExists", ge.Errors[0].Reason)

	pending, err := svc.ZoneOperations.List(p, z).Filter(`status != "DONE"`).Do()
	require.NoError(t, err)
	require.Len(t, pending.Items, 1)
	require.Eventually(t, func() bool {
		in, err := svc.Instances.Get(p, z, "np1").Do()
		return err == nil && in.Status == "RUNNING"
	}, 5*time.Second, 5*time.Millisecond)
	done, err := svc.ZoneOperations.Get(p, z, op.Name).Do()
	require.NoError(t, err)
	require.Equal(t, "DONE", done.Status)
	require.Nil(t, done.Error)

	cloud.AddInstance("pet", "", nil)
	var names []string
	require.NoError(t, svc.Instances.List(p, z).Pages(ctx, func(l *compute.InstanceList) error {
		require.LessOrEqual(t, len(l.Items), 1, "page size")
		for _, i := range l.Items {
			names = append(names, i.Name)
		}
		return nil
	}))
	require.Equal(t, []string{"np1", "pet"}, names)

	cloud.SetQuota("INSTANCES", 2)
	body.Name = "np2"
	op, err = svc.Instances.Insert(p, z, body).Do()
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		op, err = svc.ZoneOperations.Get(p, z, op.Name).Do()
		return err == nil && op.Status == "DONE"
	}, 5*time.Second, 5*time.Millisecond)
	require.NotNil(t, op.Error)
	require.Equal(t, "QUOTA_EXCEEDED", op.Error.Errors[0].Code)

	_, err = svc.Instances.Delete(p, z, "np1").Do()
	require.NoError(t, err)
	_, err = svc.Instances.Delete(p, z, "np1").Do()
	require.ErrorAs(t, err, &ge)
	require.Equal(t, "resourceNotReady", ge.Errors[0].Reason)
	require.Eventually(t, func() bool { _, ok := cloud.Instance("np1"); return !ok }, 5*time.Second, 5*time.Millisecond)
	_, err = svc.Instances.Delete(p, z, "np1").Do()
	require.ErrorAs(t, err, &ge)
	require.Equal(t, 404, ge.Code)

	unauth, err := compute.NewService(ctx, option.WithEndpoint(cloud.Endpoint()), option.WithoutAuthentication())
	require.NoError(t, err)
	_, err = unauth.Instances.List(p, z).Do()
	require.ErrorAs(t, err, &ge)
	require.Equal(t, 401, ge.Code)
}
