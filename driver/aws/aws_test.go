package aws_test

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/aws"
	"github.com/nodepool-go/nodepool/driver/drivertest"
	"github.com/nodepool-go/nodepool/internal/fakeaws"
)

// useFake points the SDK at the fake through the environment, as an
// operator would with AWS_ENDPOINT_URL, with static credentials and no
// shared configuration files.
func useFake(t *testing.T, opts fakeaws.Options) *fakeaws.Cloud {
	t.Helper()
	cloud := fakeaws.Setup(t, opts)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL":            cloud.URL,
		"AWS_ACCESS_KEY_ID":           "AKIAFAKEFAKEFAKE",
		"AWS_SECRET_ACCESS_KEY":       "fake-secret-never-logged",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_PROFILE":                 "",
		"AWS_REGION":                  "",
	} {
		t.Setenv(k, v)
	}
	t.Cleanup(aws.SetTimings(20*time.Millisecond, 10*time.Millisecond))
	return cloud
}

const baseProvider = `
name: ec2
driver: aws
region-name: us-west-2
rate: 0
object-storage:
  bucket-name: nodepool
cloud-images:
  - name: ubuntu
    image-id: ami-1e749f67
    username: ubuntu
  - name: ubuntu-filtered
    image-filters:
      - Name: name
        Values: ['ubuntu-*']
    username: ubuntu
diskimages:
  - name: fedora
    tags: {team: ci}
    volume-type: gp3
    iops: 1000
    throughput: 100
pools:
  - name: main
    subnet-id: subnet-0a1b2c3d
    security-group-id: sg-0a1b2c3d
    public-ipv6: true
    labels:
      - name: small
        cloud-image: ubuntu
        instance-type: t3.medium
        key-name: zuul
        volume-size: 20
        volume-type: gp3
        iops: 2000
        throughput: 200
        userdata: "#cloud-config\n"
        iam-instance-profile: {name: builder}
        tags: {has-tags: true}
        dynamic-tags: {tenant: "Tenant is {request.tenant_name}"}
      - name: filtered
        cloud-image: ubuntu-filtered
        instance-type: t3.large
        key-name: zuul
      - name: spot
        cloud-image: ubuntu
        instance-type: m6i.32xlarge
        key-name: zuul
        use-spot: true
      - name: fedora
        diskimage: fedora
        instance-type: t3.medium
        key-name: zuul
`

func parse(t testing.TB, src string) *driver.ProviderConfig {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	probs := &driver.Problems{File: "nodepool.yaml"}
	p := aws.Driver{}.ParseProvider(driver.NewSection(doc.Content[0], "providers[0]", probs))
	require.NoError(t, probs.Err())
	return p
}

func open(t testing.TB, src string) (driver.Adapter, *driver.ProviderConfig) {
	t.Helper()
	cfg := parse(t, src)
	ad, err := aws.Driver{}.Open(context.Background(), cfg, driver.Env{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ad.Close() })
	return ad, cfg
}

func spec(cfg *driver.ProviderConfig, label, nodeID string) driver.CreateSpec {
	pool := cfg.Pools[0]
	return driver.CreateSpec{
		Hostname: "np" + nodeID,
		Label:    pool.Label(label),
		Pool:     pool,
		Metadata: map[string]string{driver.MetaNodeID: nodeID, driver.MetaPoolName: pool.Name, driver.MetaProviderName: cfg.Name},
		Request:  driver.RequestInfo{ID: "200-0000000001", Labels: []string{label}, Requestor: "zuul", TenantName: "tenant-one"},
	}
}

func create(t testing.TB, ad driver.Adapter, s driver.CreateSpec) (*driver.Instance, string, error) {
	t.Helper()
	m := ad.CreateMachine(s)
	inst, err := drivertest.AdvanceCreate(context.Background(), m, 2*time.Millisecond, 20*time.Second)
	return inst, m.ExternalID(), err
}

func TestConformance(t *testing.T) {
	cloud := useFake(t, fakeaws.Options{PendingTime: 30 * time.Millisecond, ShutdownTime: 20 * time.Millisecond,
		TerminatedLinger: 50 * time.Millisecond, Invisible: 20 * time.Millisecond, ImportTime: 30 * time.Millisecond})
	drivertest.Run(t, drivertest.Harness{
		Open:         func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) { return open(t, baseProvider) },
		ProvokeQuota: func(t *testing.T) { cloud.FailNext(1, "RunInstances", "VcpuLimitExceeded") },
		InjectLeak: func(t *testing.T, md map[string]string) string {
			return cloud.AddInstance(fakeaws.Instance{Tags: md})
		},
	})
}

func TestConformanceDiskimageLabel(t *testing.T) {
	cloud := useFake(t, fakeaws.Options{PendingTime: 20 * time.Millisecond, Latency: 2 * time.Millisecond})
	img := cloud.AddImage(fakeaws.Image{Name: "fedora-1700000000", BlockDevices: []fakeaws.BlockDevice{{DeviceName: "/dev/sda1", SnapshotID: "snap-x", VolumeSize: 4, VolumeType: "gp3"}}})
	drivertest.Run(t, drivertest.Harness{
		Open:            func(t *testing.T) (driver.Adapter, *driver.ProviderConfig) { return open(t, baseProvider) },
		Label:           "fedora",
		ImageExternalID: img,
		Concurrency:     3,
		SkipImages:      true,
	})
}

func TestCreateMapsConfigOntoRunInstances(t *testing.T) {
	cloud := useFake(t, fakeaws.Options{PendingTime: 20 * time.Millisecond, Invisible: 30 * time.Millisecond})
	ad, cfg := open(t, baseProvider)
	inst, id, err := create(t, ad, spec(cfg, "small", "0000000042"))
	require.NoError(t, err)
	require.Equal(t, id, inst.ExternalID)
	in, ok := cloud.Instance(id)
	require.True(t, ok)
	require.Equal(t, "ami-1e749f67", in.ImageID)
	require.Equal(t, "t3.medium", in.InstanceType)
	require.Equal(t, "zuul", in.KeyName)
	require.Equal(t, "subnet-0a1b2c3d", in.SubnetID)
	require.Equal(t, []string{"sg-0a1b2c3d"}, in.SecurityGroups)
	require.True(t, in.PublicIPv4)
	require.Equal(t, 1, in.IPv6Count)
	require.Equal(t, "builder", in.IAMProfileName)
	ud, err := base64.StdEncoding.DecodeString(in.UserData)
	require.NoError(t, err)
	require.Equal(t, "#cloud-config\n", string(ud))
	want := map[string]string{"has-tags": "True", "tenant": "Tenant is tenant-one", "Name": "np0000000042",
		driver.MetaNodeID: "0000000042", driver.MetaPoolName: "main", driver.MetaProviderName: "ec2"}
	require.Equal(t, want, in.Tags)
	require.Equal(t, want, in.VolumeTags)
	require.Equal(t, []fakeaws.BlockDevice{{DeviceName: "/dev/sda1", SnapshotID: "snap-public", VolumeSize: 20, VolumeType: "gp3",
		IOPS: 2000, Throughput: 200, DeleteOnTermination: true}}, in.BlockDevices)
	require.False(t, in.Spot)

	require.Equal(t, in.PublicIP, inst.PublicIPv4)
	require.Equal(t, in.PublicIP, inst.InterfaceIP)
	require.Equal(t, in.PrivateIP, inst.PrivateIPv4)
	require.Equal(t, in.IPv6, inst.PublicIPv6)
	require.Equal(t, "AWS", inst.Cloud)
	require.Equal(t, "us-west-2", inst.Region)
	require.Equal(t, "us-west-2b", inst.AZ)
	require.Equal(t, map[string]float64{"cores": 1, "instances": 1, "ram": 4096, "L-1216C47A": 2}, inst.Resources.Map())

	require.NoError(t, drivertest.AdvanceDelete(context.Background(), ad.DeleteMachine(id), 2*time.Millisecond, 10*time.Second))
	require.Empty(t, cloud.Alive())
}

func TestCloudImageByFiltersAndSpot(t *testing.T) {
	cloud := useFake(t, fakeaws.Options{})
	cloud.AddImage(fakeaws.Image{Name: "ubuntu-old", CreationDate: "2023-01-01T00:00:00.000Z", Owner: "099720109477"})
	newest := cloud.AddImage(fakeaws.Image{Name: "ubuntu-new", CreationDate: "2024-01-01T00:00:00.000Z", Owner: "099720109477"})
	cloud.AddImage(fakeaws.Image{Name: "debian-newer", CreationDate: "2025-01-01T00:00:00.000Z"})
	ad, cfg := open(t, baseProvider)
	_, id, err := create(t, ad, spec(cfg, "filtered", "0000000001"))
	require.NoError(t, err)
	in, _ := cloud.Instance(id)
	require.Equal(t, newest, in.ImageID, "the newest image the filters match")
	require.Nil(t, in.BlockDevices, "an image without block-device mappings gets none")

	inst, id, err := create(t, ad, spec(cfg, "spot", "0000000002"))
	require.NoError(t, err)
	in, _ = cloud.Instance(id)
	require.True(t, in.Spot)
	require.Equal(t, 128.0, inst.Resources.Get("L-34B43A08"), "spot vCPUs count against the spot quota")
}

func TestCreateErrorsAreClassified(t *testing.T) {
	cloud := useFake(t, fakeaws.Options{})
	ad, cfg := open(t, baseProvider)
	for _, tt := range []struct {
		code string
		is   func(error) bool
	}{
		{"VcpuLimitExceeded", driver.IsQuota},
		{"InstanceLimitExceeded", driver.IsQuota},
		{"MaxSpotInstanceCountExceeded", driver.IsQuota},
		{"InsufficientInstanceCapacity", driver.IsCapacity},
		{"InvalidKeyPair.NotFound", func(err error) bool { return driver.KindOf(err) == driver.KindUnknown }},
	} {
		t.Run(tt.code, func(t *testing.T) {
			n := 1
			if tt.code == "InsufficientInstanceCapacity" {
				n = 3 // a 5xx answer: the SDK makes three attempts
			}
			cloud.FailNext(n, "RunInstances", tt.code)
			_, _, err := create(t, ad, spec(cfg, "small", "0000000009"))
			require.Error(t, err)
			require.True(t, tt.is(err), "%s classified as %v: %v", tt.code, driver.KindOf(err), err)
			require.Contains(t, err.Error(), tt.code)
			require.NotContains(t, err.Error(), "fake-secret")
		})
	}
	_, _, err := create(t, ad, spec(cfg, "small", "0000000010"))
	require.NoError(t, err, "every injected fault was used up")
}

func TestQuotaFromServiceQuotas(t *testing.T) {
	cloud := useFake(t, fakeaws.Options{})
	cloud.SetQuota("L-1216C47A", 8)
	ad, cfg := open(t, baseProvider)
	qr := ad.(driver.QuotaReporter)
	lim, err := qr.QuotaLimits(context.Background())
	require.NoError(t, err)
	require.Equal(t, 8.0, lim.Get("L-1216C47A"))
	require.Equal(t, 640.0, lim.Get("L-34B43A08"), "the spot label's code")
	require.True(t, lim.Get("cores") > 1e300, "cores unlimited")
	need, err := qr.QuotaForLabel(context.Background(), cfg.Pools[0].Label("spot"))
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"cores": 64, "instances": 1, "ram": 524288, "L-34B43A08": 128}, need.Map())
	calls := cloud.Calls()["DescribeInstanceTypes"]
	_, err = qr.QuotaForLabel(context.Background(), cfg.Pools[0].Label("spot"))
	require.NoError(t, err)
	require.Equal(t, calls, cloud.Calls()["DescribeInstanceTypes"], "instance types are cached")

	// Over the limit the cloud refuses with a quota error.
	for i := 0; i < 4; i++ {
		_, _, err := create(t, ad, spec(cfg, "small", "000000010"+string(rune('0'+i))))
		require.NoError(t, err)
	}
	_, _, err = create(t, ad, spec(cfg, "small", "0000000200"))
	require.True(t, driver.IsQuota(err), "%v", err)
	list, err := ad.ListInstances(context.Background())
	require.NoError(t, err)
	require.Len(t, list, 4)
	require.Equal(t, 2.0, list[0].Resources.Get("L-1216C47A"))
}

func TestThrottlingIsRiddenOut(t *testing.T) {
	cloud := useFake(t, fakeaws.Options{})
	ad, cfg := open(t, baseProvider)
	cloud.FailNext(2, "RunInstances", "RequestLimitExceeded")
	_, _, err := create(t, ad, spec(cfg, "small", "0000000001"))
	require.NoError(t, err, "the SDK retries a throttled call")
	require.Equal(t, 3, cloud.Calls()["RunInstances"])

	cloud.FailNext(3, "RunInstances", "RequestLimitExceeded")
	m := ad.CreateMachine(spec(cfg, "small", "0000000002"))
	var last error
	for i := 0; i < 2000 && last == nil; i++ {
		_, last = m.Advance(context.Background())
		time.Sleep(2 * time.Millisecond)
	}
	require.True(t, driver.IsTransient(last), "throttled beyond the SDK's retries: %v", last)
	inst, err := drivertest.AdvanceCreate(context.Background(), m, 2*time.Millisecond, 20*time.Second)
	require.NoError(t, err, "the machine submits again after a transient error")
	require.NotNil(t, inst)
}

func TestTerminatedWhileStartingFailsTheAttempt(t *testing.T) {
	cloud := useFake(t, fakeaws.Options{PendingTime: time.Hour, TerminatedLinger: time.Hour})
	ad, cfg := open(t, baseProvider)
	m := ad.CreateMachine(spec(cfg, "small", "0000000001"))
	for m.ExternalID() == "" {
		_, err := m.Advance(context.Background())
		require.NoError(t, err)
		time.Sleep(2 * time.Millisecond)
	}
	require.NoError(t, drivertest.AdvanceDelete(context.Background(), ad.DeleteMachine(m.ExternalID()), 2*time.Millisecond, 10*time.Second))
	_, err := drivertest.AdvanceCreate(context.Background(), m, 2*time.Millisecond, 10*time.Second)
	require.ErrorContains(t, err, "terminated state")
	require.Equal(t, "terminated", cloud.InstanceState(m.ExternalID()))
}

func TestUploadImageBothImportMethods(t *testing.T) {
	cloud := useFake(t, fakeaws.Options{ImportTime: 30 * time.Millisecond})
	file := filepath.Join(t.TempDir(), "fedora.raw")
	require.NoError(t, os.WriteFile(file, []byte("raw image bytes"), 0o600))
	md := map[string]string{driver.MetaProviderName: "ec2", driver.MetaBuildID: "0123456789abcdef0123456789abcdef", driver.MetaUploadID: "0000000001", "team": "ci"}
	for _, method := range []string{"snapshot", "image"} {
		t.Run(method, func(t *testing.T) {
			ad, _ := open(t, strings.Replace(baseProvider, "volume-type: gp3\n    iops: 1000", "volume-type: gp3\n    import-method: "+method+"\n    iops: 1000", 1))
			im := ad.(driver.ImageManager)
			id, err := im.UploadImage(context.Background(), driver.UploadSpec{ImageName: "fedora-" + method, Diskimage: "fedora", Filename: file, Format: "raw", Metadata: md})
			require.NoError(t, err)
			img := cloud.Images()[id]
			require.Equal(t, md, img.Tags, "the AMI carries the upload's metadata")
			require.Len(t, img.BlockDevices, 1)
			snap := cloud.Snapshots()[img.BlockDevices[0].SnapshotID]
			require.Equal(t, md, snap.Tags, "so does its snapshot")
			if method == "snapshot" {
				require.Equal(t, "fedora-snapshot", img.Name)
				require.Equal(t, fakeaws.BlockDevice{DeviceName: "/dev/sda1", SnapshotID: snap.ID, VolumeSize: 1, VolumeType: "gp3", IOPS: 1000, Throughput: 100, DeleteOnTermination: true}, img.BlockDevices[0])
				require.True(t, img.ENASupport)
			}
			require.Empty(t, cloud.Objects("nodepool"), "the uploaded object is removed")
			require.NoError(t, im.DeleteImage(context.Background(), id))
			require.NotContains(t, cloud.Images(), id)
			require.NotContains(t, cloud.Snapshots(), snap.ID)
			require.True(t, driver.IsNotFound(im.DeleteImage(context.Background(), id)))
		})
	}
	t.Run("failed import", func(t *testing.T) {
		ad, _ := open(t, baseProvider)
		cloud.FailNextImport()
		_, err := ad.(driver.ImageManager).UploadImage(context.Background(), driver.UploadSpec{ImageName: "fedora-bad", Diskimage: "fedora", Filename: file, Format: "raw", Metadata: md})
		require.ErrorContains(t, err, "Disk validation failed")
		require.Empty(t, cloud.Objects("nodepool"))
	})
}

func TestListResourcesTagsImportsAndFindsLeaks(t *testing.T) {
	cloud := useFake(t, fakeaws.Options{})
	ours := map[string]string{driver.MetaProviderName: "ec2", driver.MetaNodeID: "0000000077", driver.MetaPoolName: "main"}
	leakedInstance := cloud.AddInstance(fakeaws.Instance{Tags: ours})
	foreign := cloud.AddInstance(fakeaws.Instance{Tags: map[string]string{"Name": "pet"}})
	vol := cloud.AddVolume(ours)
	cloud.AddVolume(nil)
	cloud.PutObject(fakeaws.Object{Bucket: "nodepool", Key: "fedora-1.raw", Tags: map[string]string{driver.MetaProviderName: "ec2", driver.MetaUploadID: "0000000003"}})
	cloud.PutObject(fakeaws.Object{Bucket: "nodepool", Key: "other.raw"})
	ad, _ := open(t, baseProvider)

	// An import whose tagging never happened (a crash after the import).
	file := filepath.Join(t.TempDir(), "x.raw")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	upload := map[string]string{driver.MetaProviderName: "ec2", driver.MetaBuildID: "b", driver.MetaUploadID: "0000000004"}
	id, err := ad.(driver.ImageManager).UploadImage(context.Background(), driver.UploadSpec{ImageName: "fedora-2", Diskimage: "fedora", Filename: file, Format: "raw", Metadata: upload})
	require.NoError(t, err)
	require.NoError(t, cloud.ClearTags(id))
	snap := cloud.Images()[id].BlockDevices[0].SnapshotID
	require.NoError(t, cloud.ClearTags(snap))

	lc := ad.(driver.LeakCleaner)
	res, err := lc.ListResources(context.Background())
	require.NoError(t, err)
	got := map[string]string{}
	for _, r := range res {
		got[r.ID] = r.Type
	}
	require.Equal(t, map[string]string{leakedInstance: "instance", vol: "volume", id: "image", snap: "snapshot", "fedora-1.raw": "object"}, got)
	require.Equal(t, upload, cloud.Images()[id].Tags, "tags copied from the import task")
	for _, r := range res {
		// Deleting the AMI deletes its snapshot too.
		if err := lc.DeleteResource(context.Background(), r); err != nil {
			require.True(t, driver.IsNotFound(err), "%v", err)
		}
	}
	require.Equal(t, []string{foreign}, cloud.Alive())
	require.Len(t, cloud.VolumeIDs(), 1)
	require.Equal(t, []string{"other.raw"}, cloud.Objects("nodepool"))
	require.NotContains(t, cloud.Images(), id)
}

func TestDeletesAreBatched(t *testing.T) {
	cloud := useFake(t, fakeaws.Options{})
	ad, _ := open(t, baseProvider)
	deleteAll := func(ids []string) {
		machines := make([]driver.DeleteMachine, len(ids))
		for i, id := range ids {
			machines[i] = ad.DeleteMachine(id)
			done, err := machines[i].Advance(context.Background())
			require.NoError(t, err)
			require.False(t, done)
		}
		for _, m := range machines {
			require.NoError(t, drivertest.AdvanceDelete(context.Background(), m, 2*time.Millisecond, 10*time.Second))
		}
	}
	var ids []string
	for i := 0; i < 40; i++ {
		ids = append(ids, cloud.AddInstance(fakeaws.Instance{}))
	}
	deleteAll(ids)
	require.Empty(t, cloud.Alive())
	calls := cloud.Calls()["TerminateInstances"]
	require.LessOrEqual(t, calls, 3, "40 queued deletes share calls of up to 50 ids")
	t.Logf("40 deletes took %d TerminateInstances calls", calls)

	// An unknown id makes EC2 refuse its batch: the others are
	// terminated one by one and the unknown one counts as deleted.
	ids = []string{cloud.AddInstance(fakeaws.Instance{}), "i-0000000000000dead", cloud.AddInstance(fakeaws.Instance{})}
	deleteAll(ids)
	require.Empty(t, cloud.Alive())
}
