package azure_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/azure"
	"github.com/nodepool-go/nodepool/driver/drivertest"
	"github.com/nodepool-go/nodepool/internal/fakeazure"
	"github.com/nodepool-go/nodepool/quota"
)

const (
	tick    = 5 * time.Millisecond
	timeout = 20 * time.Second
)

func spec(cfg *driver.ProviderConfig, label, id string) driver.CreateSpec {
	pool := cfg.Pools[0]
	return driver.CreateSpec{
		Hostname: "np" + id,
		Label:    pool.Label(label),
		Pool:     pool,
		Metadata: map[string]string{driver.MetaNodeID: id, driver.MetaPoolName: pool.Name, driver.MetaProviderName: cfg.Name},
		Request:  driver.RequestInfo{ID: "100-0000000001", Labels: []string{label}, TenantName: "tenant-1"},
	}
}

func create(t *testing.T, ad driver.Adapter, s driver.CreateSpec) (*driver.Instance, error) {
	t.Helper()
	return drivertest.AdvanceCreate(context.Background(), ad.CreateMachine(s), tick, timeout)
}

func remove(t *testing.T, ad driver.Adapter, id string) {
	t.Helper()
	require.NoError(t, drivertest.AdvanceDelete(context.Background(), ad.DeleteMachine(id), tick, timeout))
}

func one(t *testing.T, cloud *fakeazure.Cloud, typ string) fakeazure.Resource {
	t.Helper()
	rs := cloud.Resources(typ)
	require.Len(t, rs, 1, typ)
	return rs[0]
}

func dig(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

// A cloud-image node: public IP, NIC and VM as upstream builds them, and
// all of them deleted again (with the OS disk).
func TestCreateCloudImageNode(t *testing.T) {
	cloud, ad, cfg := openFake(t, "")
	inst, err := create(t, ad, spec(cfg, "bionic", "0000000001"))
	require.NoError(t, err)

	vm := one(t, cloud, "Microsoft.Compute/virtualMachines")
	require.Equal(t, "np0000000001", vm.Name)
	require.Equal(t, map[string]string{
		"team": "DevOps", "dynamic-tenant": "Tenant is tenant-1",
		driver.MetaNodeID: "0000000001", driver.MetaPoolName: "main", driver.MetaProviderName: "az",
	}, vm.Tags)
	require.Equal(t, "Standard_B1ls", dig(vm.Body, "properties", "hardwareProfile", "vmSize"))
	require.Equal(t, map[string]any{"publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS", "version": "latest"},
		dig(vm.Body, "properties", "storageProfile", "imageReference"))
	require.Equal(t, "zuul", dig(vm.Body, "properties", "osProfile", "adminUsername"))
	require.Equal(t, "np0000000001", dig(vm.Body, "properties", "osProfile", "computerName"))
	require.Equal(t, true, dig(vm.Body, "properties", "osProfile", "linuxConfiguration", "disablePasswordAuthentication"))
	keys := dig(vm.Body, "properties", "osProfile", "linuxConfiguration", "ssh", "publicKeys").([]any)
	require.Equal(t, "/home/zuul/.ssh/authorized_keys", keys[0].(map[string]any)["path"])
	require.Equal(t, base64.StdEncoding.EncodeToString([]byte("the user data")), dig(vm.Body, "properties", "userData"))

	pip := one(t, cloud, "Microsoft.Network/publicIPAddresses")
	require.Equal(t, "np0000000001-pip-IPv4", pip.Name)
	require.Equal(t, "Basic", dig(pip.Body, "sku", "name"))
	require.Equal(t, "Dynamic", dig(pip.Body, "properties", "publicIPAllocationMethod"))
	nic := one(t, cloud, "Microsoft.Network/networkInterfaces")
	require.Equal(t, "np0000000001-nic", nic.Name)
	require.Equal(t, vm.Tags, nic.Tags)

	require.Equal(t, "np0000000001", inst.ExternalID)
	require.Equal(t, dig(pip.Body, "properties", "ipAddress"), inst.PublicIPv4)
	require.Equal(t, inst.PublicIPv4, inst.InterfaceIP)
	require.Regexp(t, `^10\.0\.`, inst.PrivateIPv4)
	require.Equal(t, "Azure", inst.Cloud)
	require.Equal(t, "centralus", inst.Region)
	require.Equal(t, 1.0, inst.Resources.Get(quota.Cores))
	require.Equal(t, 512.0, inst.Resources.Get(quota.RAM))

	remove(t, ad, inst.ExternalID)
	for _, typ := range []string{"Microsoft.Compute/virtualMachines", "Microsoft.Network/networkInterfaces", "Microsoft.Network/publicIPAddresses", "Microsoft.Compute/disks"} {
		require.Eventually(t, func() bool { return len(cloud.Resources(typ)) == 0 }, timeout, tick, typ)
	}
	require.NotContains(t, logsOf(t), fakeazure.ClientSecret)
}

// IPv6 pools: Standard static public addresses for both versions, NIC
// configurations for both.
func TestCreateDualStack(t *testing.T) {
	cloud, ad, cfg := openFake(t, "public-ipv6: true\nuse-internal-ip: true")
	inst, err := create(t, ad, spec(cfg, "bionic", "0000000002"))
	require.NoError(t, err)
	pips := cloud.Resources("Microsoft.Network/publicIPAddresses")
	require.Len(t, pips, 2)
	for _, p := range pips {
		require.Equal(t, "Standard", dig(p.Body, "sku", "name"))
		require.Equal(t, "Static", dig(p.Body, "properties", "publicIPAllocationMethod"))
	}
	require.NotEmpty(t, inst.PublicIPv6)
	require.NotEmpty(t, inst.PrivateIPv6)
	require.True(t, cfg.Pools[0].UseInternalIP)
	remove(t, ad, inst.ExternalID)
	require.Empty(t, cloud.Resources("Microsoft.Network/publicIPAddresses"))
}

func TestErrorsAreClassified(t *testing.T) {
	cloud, ad, cfg := openFake(t, "")

	cloud.FailAllocations(1)
	_, err := create(t, ad, spec(cfg, "bionic", "0000000010"))
	require.True(t, driver.IsCapacity(err), "AllocationFailed: %v", err)
	require.Contains(t, err.Error(), "AllocationFailed")
	remove(t, ad, "np0000000010")

	s := spec(cfg, "bionic", "0000000011")
	lbl := *s.Label
	ls := *lbl.Settings.(*azure.LabelSettings)
	ls.VMSize = "Standard_Huge"
	lbl.Settings = &ls
	s.Label = &lbl
	_, err = create(t, ad, s)
	require.True(t, driver.IsCapacity(err), "SkuNotAvailable: %v", err)
	remove(t, ad, "np0000000011")

	cloud.SetFamilyQuota("standardBSFamily", 0)
	_, err = create(t, ad, spec(cfg, "bionic", "0000000012"))
	require.True(t, driver.IsQuota(err), "family quota: %v", err)
	require.Equal(t, "error.quota", driver.MetricOf(err))
	remove(t, ad, "np0000000012")
	cloud.SetFamilyQuota("standardBSFamily", -1)

	// More 5xx answers than the SDK retries: a transient error, after
	// which the machine resumes from the failed step.
	cloud.Inject(fakeazure.Fault{Method: "PUT", Path: "/virtualmachines/", Status: 503, Code: "ServiceUnavailable", Msg: "try later", Times: 4})
	m := ad.CreateMachine(spec(cfg, "bionic", "0000000013"))
	_, err = drivertest.AdvanceCreate(context.Background(), m, tick, timeout)
	require.True(t, driver.IsTransient(err), "%v", err)
	inst, err := drivertest.AdvanceCreate(context.Background(), m, tick, timeout)
	require.NoError(t, err)
	remove(t, ad, inst.ExternalID)

	// Throttling with Retry-After is ridden out by the SDK.
	cloud.Inject(fakeazure.Fault{Method: "PUT", Path: "/networkinterfaces/", Status: 429, Code: "TooManyRequests", Msg: "throttled", RetryAfter: 1})
	inst, err = create(t, ad, spec(cfg, "bionic", "0000000014"))
	require.NoError(t, err)
	remove(t, ad, inst.ExternalID)

	// Deleting what is gone completes.
	remove(t, ad, "np0000000099")
}

func TestQuota(t *testing.T) {
	cloud, ad, cfg := openFake(t, "")
	cloud.SetQuota(20, 5)
	cloud.SetFamilyQuota("standardBSFamily", 8)
	qr := ad.(driver.QuotaReporter)
	lim, err := qr.QuotaLimits(context.Background())
	require.NoError(t, err)
	require.Equal(t, 20.0, lim.Get(quota.Cores))
	require.Equal(t, 5.0, lim.Get(quota.Instances))
	require.Equal(t, 8.0, lim.Get(azure.FamilyPrefix+"standardBSFamily"))
	need, err := qr.QuotaForLabel(context.Background(), cfg.Pools[0].Label("tagged"))
	require.NoError(t, err)
	require.Equal(t, 2.0, need.Get(quota.Cores))
	require.Equal(t, 4096.0, need.Get(quota.RAM))
	require.Equal(t, 1.0, need.Get(quota.Instances))
	require.Equal(t, 2.0, need.Get(azure.FamilyPrefix+"standardBSFamily"))
}

// Image filters pick the newest matching image; diskimage uploads are
// page blobs turned into images that labels boot.
func TestImages(t *testing.T) {
	cloud, ad, cfg := openFake(t, "")
	lc := ad.(driver.LabelChecker)
	require.False(t, lc.LabelReady(context.Background(), cfg.Pools[0].Label("tagged")))
	cloud.AddGroup("nodepool", "centralus")
	cloud.CreateTagged("Microsoft.Compute/images", "nodepool", "a-image", map[string]string{"foo": "bar"})
	id := cloud.CreateTagged("Microsoft.Compute/images", "nodepool", "b-image", map[string]string{"foo": "bar"})
	cloud.CreateTagged("Microsoft.Compute/images", "nodepool", "c-image", map[string]string{"foo": "baz"})
	require.Eventually(t, func() bool { return lc.LabelReady(context.Background(), cfg.Pools[0].Label("tagged")) }, timeout, tick)
	inst, err := create(t, ad, spec(cfg, "tagged", "0000000020"))
	require.NoError(t, err)
	vm := one(t, cloud, "Microsoft.Compute/virtualMachines")
	require.Equal(t, id, dig(vm.Body, "properties", "storageProfile", "imageReference", "id"))
	remove(t, ad, inst.ExternalID)

	data := bytes.Repeat([]byte("vhd!"), 1500000) // 6 MB: two page writes, the last padded
	file := filepath.Join(t.TempDir(), "img.vhd")
	require.NoError(t, os.WriteFile(file, data, 0o644))
	md := map[string]string{driver.MetaProviderName: "az", driver.MetaBuildID: "b1", driver.MetaUploadID: "0000000001", "provider_metadata": "provider"}
	im := ad.(driver.ImageManager)
	ext, err := im.UploadImage(context.Background(), driver.UploadSpec{ImageName: "img-1700000000", Filename: file, Format: "vhd", Metadata: md})
	require.NoError(t, err)
	require.Equal(t, "img-1700000000", ext)
	var img fakeazure.Resource
	for _, r := range cloud.Resources("Microsoft.Compute/images") {
		if r.Name == ext {
			img = r
		}
	}
	require.Equal(t, md, img.Tags)
	require.Equal(t, "Generalized", dig(img.Body, "properties", "storageProfile", "osDisk", "osState"))
	require.Equal(t, "V2", dig(img.Body, "properties", "hyperVGeneration"))
	require.EqualValues(t, 6000128, dig(img.Body, "properties", "sourceBlob"), "the file padded to whole pages")
	require.Empty(t, cloud.Resources("Microsoft.Compute/disks"), "the upload disk is deleted")

	s := spec(cfg, "disk", "0000000021")
	s.ImageExternalID = ext
	inst, err = create(t, ad, s)
	require.NoError(t, err)
	vm = one(t, cloud, "Microsoft.Compute/virtualMachines")
	require.Equal(t, img.ID, dig(vm.Body, "properties", "storageProfile", "imageReference", "id"))
	require.Equal(t, "zuul", dig(vm.Body, "properties", "osProfile", "adminUsername"))
	remove(t, ad, inst.ExternalID)
	require.NoError(t, im.DeleteImage(context.Background(), ext))
	require.NoError(t, im.DeleteImage(context.Background(), ext), "already deleted")
}

// Leaked NICs and public IPs carrying our tags are listed and deleted.
func TestLeakedResources(t *testing.T) {
	cloud, ad, _ := openFake(t, "")
	cloud.AddGroup("nodepool", "centralus")
	md := map[string]string{driver.MetaNodeID: "0000000030", driver.MetaPoolName: "main", driver.MetaProviderName: "az"}
	cloud.CreateTagged("Microsoft.Network/publicIPAddresses", "nodepool", "np0000000030-pip-IPv4", md)
	cloud.CreateTagged("Microsoft.Network/networkInterfaces", "nodepool", "np0000000030-nic", md)
	cloud.CreateTagged("Microsoft.Network/networkInterfaces", "nodepool", "someone-else", map[string]string{"owner": "me"})
	lc := ad.(driver.LeakCleaner)
	list, err := lc.ListResources(context.Background())
	require.NoError(t, err)
	var types []string
	for _, r := range list {
		types = append(types, r.Type+":"+r.ID)
		require.Equal(t, md, r.Metadata)
		require.NoError(t, lc.DeleteResource(context.Background(), r))
	}
	require.ElementsMatch(t, []string{"nic:np0000000030-nic", "pip:np0000000030-pip-IPv4"}, types)
	require.Eventually(t, func() bool {
		return len(cloud.Resources("Microsoft.Network/publicIPAddresses")) == 0 && len(cloud.Resources("Microsoft.Network/networkInterfaces")) == 1
	}, timeout, tick)
}

func TestOpenErrors(t *testing.T) {
	cfg := parse(t, fmt.Sprintf(providerYAML, filepath.Join(t.TempDir(), "missing.json"), ""))
	_, err := azure.Driver{}.Open(context.Background(), cfg, driver.Env{})
	require.ErrorContains(t, err, "reading auth-path")

	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"clientSecret": "s3cr3t", `), 0o600))
	cfg = parse(t, fmt.Sprintf(providerYAML, bad, ""))
	_, err = azure.Driver{}.Open(context.Background(), cfg, driver.Env{})
	require.ErrorContains(t, err, "not valid JSON")
	require.NotContains(t, err.Error(), "s3cr3t")
}

// A leaked VM is deleted with everything a node deletion removes,
// including its untagged OS disk.
func TestLeakedInstanceTakesItsDisk(t *testing.T) {
	cloud, ad, cfg := openFake(t, "")
	_, err := create(t, ad, spec(cfg, "bionic", "0000000040"))
	require.NoError(t, err)
	require.Len(t, cloud.Resources("Microsoft.Compute/disks"), 1)
	lc := ad.(driver.LeakCleaner)
	require.NoError(t, lc.DeleteResource(context.Background(), driver.Resource{Type: azure.TypeInstance, ID: "np0000000040"}))
	for _, typ := range []string{"Microsoft.Compute/virtualMachines", "Microsoft.Network/networkInterfaces", "Microsoft.Network/publicIPAddresses", "Microsoft.Compute/disks"} {
		require.Eventually(t, func() bool { return len(cloud.Resources(typ)) == 0 }, timeout, tick, typ)
	}
}

// generate-password gives each VM a fresh strong password that is never
// logged.
func TestGeneratedPassword(t *testing.T) {
	cloud, ad, cfg := openFake(t, "")
	inst, err := create(t, ad, spec(cfg, "windows", "0000000050"))
	require.NoError(t, err)
	vm := one(t, cloud, "Microsoft.Compute/virtualMachines")
	pw, _ := dig(vm.Body, "properties", "osProfile", "adminPassword").(string)
	require.Len(t, pw, 64)
	require.Regexp(t, `[a-z]`, pw)
	require.Regexp(t, `[A-Z]`, pw)
	require.Regexp(t, `[0-9]`, pw)
	require.Equal(t, "foobar", dig(vm.Body, "properties", "osProfile", "adminUsername"))
	require.Nil(t, dig(vm.Body, "properties", "osProfile", "linuxConfiguration"), "no key")
	require.Equal(t, base64.StdEncoding.EncodeToString([]byte("custom")), dig(vm.Body, "properties", "osProfile", "customData"))
	require.Equal(t, "winrm", cfg.Pools[0].Label("windows").ConnectionType)
	require.Equal(t, 5986, cfg.Pools[0].Label("windows").ConnectionPort)
	remove(t, ad, inst.ExternalID)
	require.NotContains(t, logsOf(t), pw)
}
