package fakeibmvpc_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/go-sdk-core/v5/core"
	"github.com/IBM/vpc-go-sdk/vpcv1"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/internal/fakeibmvpc"
)

func client(t *testing.T, c *fakeibmvpc.Cloud, key string) *vpcv1.VpcV1 {
	t.Helper()
	auth, err := core.NewIamAuthenticatorBuilder().SetApiKey(key).SetURL(c.URL).Build()
	require.NoError(t, err)
	vpc, err := vpcv1.NewVpcV1(&vpcv1.VpcV1Options{URL: c.URL + "/v1", Authenticator: auth})
	require.NoError(t, err)
	return vpc
}

func TestIAMAndErrorBodies(t *testing.T) {
	c := fakeibmvpc.New(t)
	_, _, err := client(t, c, "wrong").ListVpcsWithContext(context.Background(), &vpcv1.ListVpcsOptions{})
	require.Error(t, err, "an unknown API key gets no token")

	vpc := client(t, c, fakeibmvpc.APIKey)
	list, _, err := vpc.ListVpcsWithContext(context.Background(), &vpcv1.ListVpcsOptions{})
	require.NoError(t, err)
	require.Equal(t, fakeibmvpc.VPCName, *list.Vpcs[0].Name)

	_, resp, err := vpc.GetInstanceWithContext(context.Background(), &vpcv1.GetInstanceOptions{ID: core.StringPtr("nope")})
	require.Error(t, err)
	require.Equal(t, 404, resp.StatusCode)
	require.Equal(t, "not_found", resp.Result.(map[string]any)["errors"].([]any)[0].(map[string]any)["code"])

	c.Fail("GET", "/v1/vpcs", 429, "too_many_requests", 1)
	_, resp, _ = vpc.ListVpcsWithContext(context.Background(), &vpcv1.ListVpcsOptions{})
	require.Equal(t, 429, resp.StatusCode, "no SDK retries configured here")
}

func TestInstanceLifecycleAndPagination(t *testing.T) {
	c := fakeibmvpc.New(t)
	c.SetStepDelay(time.Hour) // frozen: pending until the test moves on
	vpc := client(t, c, fakeibmvpc.APIKey)
	rg := c.GroupID("Default")
	for i := 0; i < 3; i++ {
		c.AddInstance("foreign", "Default", "cx2-2x4")
	}
	pager, err := vpc.NewInstancesPager(&vpcv1.ListInstancesOptions{Limit: core.Int64Ptr(2)})
	require.NoError(t, err)
	all, err := pager.GetAll()
	require.NoError(t, err)
	require.Len(t, all, 3)
	require.Equal(t, 2, c.Calls()["GET /v1/instances"], "two pages of two")

	images, _, err := vpc.ListImages(&vpcv1.ListImagesOptions{})
	require.NoError(t, err)
	vm, _, err := vpc.CreateInstance(&vpcv1.CreateInstanceOptions{InstancePrototype: &vpcv1.InstancePrototypeInstanceByImageInstanceByImageInstanceByNetworkInterface{
		Name:                    core.StringPtr("np1"),
		Profile:                 &vpcv1.InstanceProfileIdentityByName{Name: core.StringPtr("cx2-2x4")},
		ResourceGroup:           &vpcv1.ResourceGroupIdentityByID{ID: &rg},
		Image:                   &vpcv1.ImageIdentityByID{ID: images.Images[0].ID},
		Zone:                    &vpcv1.ZoneIdentityByName{Name: core.StringPtr(fakeibmvpc.Zone)},
		PrimaryNetworkInterface: &vpcv1.NetworkInterfacePrototype{Subnet: &vpcv1.SubnetIdentityByID{ID: core.StringPtr("subnet-1")}},
	}})
	require.NoError(t, err)
	require.Equal(t, "pending", *vm.Status)
	c.SetStepDelay(0)
	got, _, err := vpc.GetInstance(&vpcv1.GetInstanceOptions{ID: vm.ID})
	require.NoError(t, err)
	require.Equal(t, "running", *got.Status)

	c.SetInstanceQuota(4)
	_, resp, err := vpc.CreateInstance(&vpcv1.CreateInstanceOptions{InstancePrototype: &vpcv1.InstancePrototypeInstanceByImageInstanceByImageInstanceByNetworkInterface{
		Name:                    core.StringPtr("np2"),
		Profile:                 &vpcv1.InstanceProfileIdentityByName{Name: core.StringPtr("cx2-2x4")},
		ResourceGroup:           &vpcv1.ResourceGroupIdentityByID{ID: &rg},
		Image:                   &vpcv1.ImageIdentityByID{ID: images.Images[0].ID},
		Zone:                    &vpcv1.ZoneIdentityByName{Name: core.StringPtr(fakeibmvpc.Zone)},
		PrimaryNetworkInterface: &vpcv1.NetworkInterfacePrototype{Subnet: &vpcv1.SubnetIdentityByID{ID: core.StringPtr("subnet-1")}},
	}})
	require.ErrorContains(t, err, "Exceeded quota for instances")
	require.Equal(t, 400, resp.StatusCode)
}
