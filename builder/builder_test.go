package builder

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/zktest"
	"github.com/nodepool-go/nodepool/zkclient"
)

// --- test cloud driver -------------------------------------------------

type testImage struct {
	id   string
	spec driver.UploadSpec
}

type testCloud struct {
	mu          sync.Mutex
	next        int
	images      map[string]testImage
	failUploads int
	deleted     []string
}

var (
	cloudsMu sync.Mutex
	clouds   = map[string]*testCloud{}
)

func newCloud(t *testing.T) string {
	key := t.Name() + "-" + uuid.NewString()[:8]
	cloudsMu.Lock()
	clouds[key] = &testCloud{images: map[string]testImage{}}
	cloudsMu.Unlock()
	return key
}

func cloudOf(key string) *testCloud {
	cloudsMu.Lock()
	defer cloudsMu.Unlock()
	return clouds[key]
}

type testSettings struct {
	Cloud      string
	NameFormat string
	Hook       string
}

func (s testSettings) UploadNameFormat() string { return s.NameFormat }

func (s testSettings) UploadHook() string { return s.Hook }

type testDriver struct{}

func (testDriver) ParseProvider(s *driver.Section) *driver.ProviderConfig { return nil }

func (testDriver) Open(ctx context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	return &testAdapter{c: cloudOf(cfg.Settings.(testSettings).Cloud)}, nil
}

type testAdapter struct{ c *testCloud }

var (
	_ driver.ImageManager = (*testAdapter)(nil)
	_ driver.LeakCleaner  = (*testAdapter)(nil)
)

func (a *testAdapter) CreateMachine(driver.CreateSpec) driver.CreateMachine { return nil }
func (a *testAdapter) DeleteMachine(string) driver.DeleteMachine            { return nil }
func (a *testAdapter) ListInstances(context.Context) ([]driver.Instance, error) {
	return nil, nil
}
func (a *testAdapter) Close() error { return nil }

func (a *testAdapter) UploadImage(ctx context.Context, spec driver.UploadSpec) (string, error) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	if a.c.failUploads > 0 {
		a.c.failUploads--
		return "", fmt.Errorf("injected upload failure")
	}
	if _, err := os.Stat(spec.Filename); err != nil {
		return "", err
	}
	a.c.next++
	id := fmt.Sprintf("img-%d", a.c.next)
	a.c.images[id] = testImage{id: id, spec: spec}
	return id, nil
}

func (a *testAdapter) DeleteImage(ctx context.Context, id string) error {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	if _, ok := a.c.images[id]; !ok {
		return driver.NotFoundError("image %s", id)
	}
	delete(a.c.images, id)
	a.c.deleted = append(a.c.deleted, id)
	return nil
}

func (a *testAdapter) ListResources(ctx context.Context) ([]driver.Resource, error) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	var out []driver.Resource
	for id, img := range a.c.images {
		out = append(out, driver.Resource{Type: "image", ID: id, Metadata: img.spec.Metadata})
	}
	return out, nil
}

func (a *testAdapter) DeleteResource(ctx context.Context, r driver.Resource) error {
	return a.DeleteImage(ctx, r.ID)
}

func (c *testCloud) imageIDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for id := range c.images {
		out = append(out, id)
	}
	return out
}

func init() { driver.Register("buildertest", testDriver{}) }

// --- harness -------------------------------------------------------------

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	dir   string
	zk    *zkclient.Client
	cfg   atomic.Pointer[config.Config]
	clock *fakeClock
	cloud string
	b     *Builder
}

func dibPath(t *testing.T) string {
	p, err := filepath.Abs("testdata/disk-image-create")
	require.NoError(t, err)
	return p
}

func testLogger() *slog.Logger {
	if os.Getenv("BUILDER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newConfig(t *testing.T, dir, cloud string) *config.Config {
	return &config.Config{
		ImagesDir:         filepath.Join(dir, "images"),
		ElementsDir:       "/etc/nodepool/elements",
		BuildLogDir:       filepath.Join(dir, "logs"),
		BuildLogRetention: 1,
		Diskimages: []*config.DiskimageConfig{{
			Name:         "fake-image",
			Elements:     []string{"vm", "simple-init", "ubuntu-minimal"},
			EnvVars:      map[string]string{"FAKE_CUSTOM": "custom-value"},
			Formats:      []string{"raw"},
			Release:      "21",
			RebuildAge:   24 * time.Hour,
			BuildTimeout: time.Minute,
			DibCmd:       dibPath(t),
			Username:     "zuul",
			PythonPath:   "auto",
			Metadata:     map[string]string{"image-key": "image-value", "both": "image"},
		}},
		Providers: []*driver.ProviderConfig{{
			Name:         "cloud1",
			Driver:       "buildertest",
			ManageImages: true,
			ImageFormat:  "qcow2",
			Diskimages: []*driver.ProviderDiskimage{{
				Name: "fake-image",
				Meta: map[string]string{"provider-key": "provider-value", "both": "provider"},
			}},
			Settings: testSettings{Cloud: cloud},
		}},
	}
}

func newEnv(t *testing.T) *env {
	zc, _ := zktest.Connect(t)
	return newEnvOn(t, zc, newCloud(t))
}

func newEnvOn(t *testing.T, zc *zkclient.Client, cloud string) *env {
	e := &env{t: t, dir: t.TempDir(), zk: zc, cloud: cloud,
		clock: &fakeClock{t: time.Unix(1690000000, 0)}}
	e.cfg.Store(newConfig(t, e.dir, cloud))
	e.b = e.newBuilder("nb01.example.org")
	return e
}

func (e *env) newBuilder(fqdn string, mods ...func(*settings)) *Builder {
	o := settings{
		Config:          func(context.Context) (*config.Config, error) { return e.cfg.Load(), nil },
		ZooKeeper:       e.zk,
		Now:             e.clock.Now,
		Logger:          testLogger(),
		Hostname:        "nb01",
		FQDN:            fqdn,
		BuildInterval:   50 * time.Millisecond,
		UploadInterval:  50 * time.Millisecond,
		CleanupInterval: 100 * time.Millisecond,
		MinFreeSpace:    -1, // a test machine's disk may be small; TestFreeSpaceCheck sets it
	}
	for _, m := range mods {
		m(&o)
	}
	b, err := newBuilder(o)
	require.NoError(e.t, err)
	require.NoError(e.t, b.loadIdentity(context.Background()))
	return b
}

func (e *env) config() *config.Config { return e.cfg.Load() }

// update applies fn to a deep-enough copy of the config and stores it.
func (e *env) update(fn func(c *config.Config)) {
	c := *e.cfg.Load()
	var ds []*config.DiskimageConfig
	for _, d := range c.Diskimages {
		dd := *d
		dd.EnvVars = map[string]string{}
		for k, v := range d.EnvVars {
			dd.EnvVars[k] = v
		}
		ds = append(ds, &dd)
	}
	c.Diskimages = ds
	var ps []*driver.ProviderConfig
	for _, p := range c.Providers {
		pp := *p
		ps = append(ps, &pp)
	}
	c.Providers = ps
	fn(&c)
	e.cfg.Store(&c)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) builds(state zkclient.ImageState) []*zkclient.ImageBuild {
	bs, err := mostRecentBuilds(context.Background(), e.zk, "fake-image", -1, state)
	require.NoError(e.t, err)
	return bs
}

func (e *env) buildOnce() *zkclient.ImageBuild {
	e.t.Helper()
	before := map[string]bool{}
	for _, b := range e.builds("") {
		before[b.ID] = true
	}
	require.NoError(e.t, e.b.buildPass(ctxT(e.t)))
	for _, b := range e.builds("") {
		if !before[b.ID] {
			return b
		}
	}
	return nil
}

func (e *env) uploadAll() {
	e.t.Helper()
	for i := 0; i < 10; i++ {
		attempted, err := e.b.uploadPass(ctxT(e.t))
		require.NoError(e.t, err)
		if !attempted {
			return
		}
	}
	e.t.Fatal("uploads never settled")
}

func (e *env) imageFiles() []string {
	entries, err := os.ReadDir(e.config().ImagesDir)
	require.NoError(e.t, err)
	var out []string
	for _, en := range entries {
		out = append(out, en.Name())
	}
	return out
}

func filesOf(files []string, id string) []string {
	var out []string
	for _, f := range files {
		if strings.Contains(f, id) {
			out = append(out, f)
		}
	}
	return out
}

var (
	uuidHexRe = regexp.MustCompile(`^[0-9a-f]{32}$`)
	uuid4Re   = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
)

// --- tests ---------------------------------------------------------------

func TestBuildAndUpload(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	cfg := e.config()

	idFile, err := os.ReadFile(filepath.Join(cfg.ImagesDir, BuilderIDFile))
	require.NoError(t, err)
	require.Regexp(t, uuid4Re, string(idFile))
	require.Equal(t, string(idFile), e.b.BuilderID())

	// A second provider needs vhd.
	e.update(func(c *config.Config) {
		c.Providers = append(c.Providers, &driver.ProviderConfig{
			Name: "cloud2", Driver: "buildertest", ManageImages: true, ImageFormat: "vhd",
			Diskimages: []*driver.ProviderDiskimage{{Name: "fake-image"}},
			Settings:   testSettings{Cloud: e.cloud, NameFormat: "np-{image_name}-{upload_id}"},
		})
	})
	cfg = e.config()

	build := e.buildOnce()
	require.NotNil(t, build)
	require.Regexp(t, uuidHexRe, build.ID)
	require.Equal(t, zkclient.ImageReady, build.State)
	require.Equal(t, []string{"qcow2", "raw", "vhd"}, build.Formats)
	require.Equal(t, "nb01.example.org", build.Builder)
	require.Equal(t, string(idFile), build.BuilderID)
	require.Equal(t, "zuul", build.Username)
	require.Equal(t, "auto", build.PythonPath)
	require.Equal(t, float64(1690000000), build.StateTime)

	raw, _, err := e.zk.Get(ctx, zkclient.BuildPath("fake-image", build.ID))
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf(`{"state": "ready", "state_time": 1690000000.0, "builder": "nb01.example.org", "builder_id": "%s", "formats": "qcow2,raw,vhd", "username": "zuul", "python_path": "auto", "shell_type": null}`, idFile), string(raw))

	// Real image files in each format.
	prefix := filepath.Join(cfg.ImagesDir, "fake-image-"+build.ID)
	magic := map[string]string{"qcow2": "QFI\xfb", "vhd": "conectix"}
	for _, f := range []string{"qcow2", "raw", "vhd"} {
		data, err := os.ReadFile(prefix + "." + f)
		require.NoError(t, err, f)
		if m := magic[f]; m != "" {
			require.True(t, strings.HasPrefix(string(data), m), "%s magic", f)
		}
		require.FileExists(t, prefix+"."+f+".md5")
	}
	require.DirExists(t, prefix+".d")

	// The command line and environment, as the fake DIB logged them.
	logData, err := os.ReadFile(filepath.Join(cfg.BuildLogDir, "fake-image-"+build.ID+".log"))
	require.NoError(t, err)
	logText := string(logData)
	require.Contains(t, logText, "ARGV: -x -t qcow2,raw,vhd --checksum --no-tmpfs --qemu-img-options compat=0.10 -o "+prefix+" vm simple-init ubuntu-minimal\n")
	require.Contains(t, logText, "ENV DIB_RELEASE=21\n")
	require.Contains(t, logText, "ENV DIB_IMAGE_NAME=fake-image\n")
	require.Contains(t, logText, "ENV DIB_IMAGE_FILENAME="+prefix+"\n")
	require.Contains(t, logText, "ENV ELEMENTS_PATH=/etc/nodepool/elements\n")
	require.Contains(t, logText, "ENV FAKE_CUSTOM=custom-value\n")
	require.True(t, strings.HasSuffix(logText, "Exit code: 0\n"), logText)

	// No rebuild while the build is fresh.
	require.Nil(t, e.buildOnce())

	// Uploads: one per provider.
	e.clock.Advance(10 * time.Second)
	e.uploadAll()
	up1, err := e.zk.Uploads(ctx, "fake-image", build.ID, "cloud1")
	require.NoError(t, err)
	require.Len(t, up1, 1)
	u := up1[0]
	require.Equal(t, "0000000001", u.ID)
	require.Equal(t, zkclient.ImageReady, u.State)
	require.Equal(t, "fake-image-1690000010", u.ExternalName)
	require.Equal(t, "qcow2", u.Format)
	require.Equal(t, "zuul", u.Username)
	img := cloudOf(e.cloud).images[u.ExternalID]
	require.Equal(t, prefix+".qcow2", img.spec.Filename)
	require.Equal(t, map[string]string{
		"image-key": "image-value", "provider-key": "provider-value", "both": "provider",
		"nodepool_build_id": build.ID, "nodepool_upload_id": "0000000001", "nodepool_provider_name": "cloud1",
	}, img.spec.Metadata)
	require.Len(t, img.spec.MD5, 32)
	require.Len(t, img.spec.SHA256, 64)

	up2, err := e.zk.Uploads(ctx, "fake-image", build.ID, "cloud2")
	require.NoError(t, err)
	require.Len(t, up2, 1)
	require.Equal(t, "np-fake-image-0000000001", up2[0].ExternalName)
	require.Equal(t, "vhd", up2[0].Format)

	latest, err := e.zk.MostRecentUpload(ctx, "fake-image", "cloud1", zkclient.ImageReady)
	require.NoError(t, err)
	require.Equal(t, u.Path(), latest.Path())

	// Another builder without the files does not upload.
	other := newEnvOn(t, e.zk, e.cloud)
	other.update(func(c *config.Config) { c.Providers[0].Name = "cloud3" })
	attempted, err := other.b.uploadPass(ctx)
	require.NoError(t, err)
	require.False(t, attempted)
}

func TestPauseAndManualBuild(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	require.NoError(t, e.zk.SetImagePaused(ctx, "fake-image", true))
	require.Nil(t, e.buildOnce())
	require.NoError(t, e.zk.SetImagePaused(ctx, "fake-image", false))
	e.update(func(c *config.Config) { c.Diskimages[0].Pause = true })
	require.Nil(t, e.buildOnce())
	e.update(func(c *config.Config) { c.Diskimages[0].Pause = false })

	first := e.buildOnce()
	require.NotNil(t, first)
	e.clock.Advance(time.Second)
	require.NoError(t, e.zk.RequestBuild(ctx, "fake-image"))
	second := e.buildOnce()
	require.NotNil(t, second)
	require.Equal(t, zkclient.ImageReady, second.State)
	req, _, err := e.zk.BuildRequested(ctx, "fake-image")
	require.NoError(t, err)
	require.False(t, req)

	// A provider needing a new format triggers a rebuild.
	e.clock.Advance(time.Second)
	e.update(func(c *config.Config) { c.Providers[0].ImageFormat = "vhd" })
	third := e.buildOnce()
	require.NotNil(t, third)
	require.Equal(t, []string{"raw", "vhd"}, third.Formats)

	// Failing DIB: failed record, files removed, request kept.
	e.update(func(c *config.Config) { c.Diskimages[0].EnvVars["FAKE_DIB_EXIT"] = "127" })
	require.NoError(t, e.zk.RequestBuild(ctx, "fake-image"))
	failed := e.buildOnce()
	require.NotNil(t, failed)
	require.Equal(t, zkclient.ImageFailed, failed.State)
	require.Empty(t, failed.Formats)
	require.Empty(t, filesOf(e.imageFiles(), failed.ID))
	req, _, err = e.zk.BuildRequested(ctx, "fake-image")
	require.NoError(t, err)
	require.True(t, req)
	logData, err := os.ReadFile(filepath.Join(e.config().BuildLogDir, "fake-image-"+failed.ID+".log"))
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(string(logData), "Exit code: 127\n"))
}

func TestThirdBuildPrunesFirst(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	cloud := cloudOf(e.cloud)
	var builds []*zkclient.ImageBuild
	var uploads []*zkclient.ImageUpload
	for i := 0; i < 3; i++ {
		if i > 0 {
			e.clock.Advance(24 * time.Hour)
		}
		b := e.buildOnce()
		require.NotNil(t, b, "build %d", i)
		require.Equal(t, zkclient.ImageReady, b.State)
		builds = append(builds, b)
		e.clock.Advance(time.Minute)
		e.uploadAll()
		ups, err := e.zk.Uploads(ctx, "fake-image", b.ID, "cloud1", zkclient.ImageReady)
		require.NoError(t, err)
		require.Len(t, ups, 1)
		uploads = append(uploads, ups[0])
		time.Sleep(10 * time.Millisecond) // distinct log mtimes
	}
	require.Len(t, cloud.imageIDs(), 3)

	// Log retention 1: pruned before each build, so the first is gone.
	logs := e.config().BuildLogDir
	require.NoFileExists(t, filepath.Join(logs, "fake-image-"+builds[0].ID+".log"))
	require.FileExists(t, filepath.Join(logs, "fake-image-"+builds[1].ID+".log"))
	require.FileExists(t, filepath.Join(logs, "fake-image-"+builds[2].ID+".log"))

	require.NoError(t, e.b.cleanupPass(ctx))

	// The first build is gone: cloud image, records and files.
	require.ElementsMatch(t, []string{uploads[1].ExternalID, uploads[2].ExternalID}, cloud.imageIDs())
	require.Equal(t, []string{uploads[0].ExternalID}, cloud.deleted)
	ok, _, err := e.zk.Exists(ctx, zkclient.BuildPath("fake-image", builds[0].ID))
	require.NoError(t, err)
	require.False(t, ok)
	files := e.imageFiles()
	require.Empty(t, filesOf(files, builds[0].ID))
	require.NotEmpty(t, filesOf(files, builds[1].ID))
	require.NotEmpty(t, filesOf(files, builds[2].ID))
	ready := e.builds(zkclient.ImageReady)
	require.Len(t, ready, 2)
	require.Equal(t, builds[2].ID, ready[0].ID)
	require.Equal(t, builds[1].ID, ready[1].ID)

	// A second pass changes nothing.
	require.NoError(t, e.b.cleanupPass(ctx))
	require.Len(t, e.builds(zkclient.ImageReady), 2)
	require.Len(t, cloud.imageIDs(), 2)

	// Removing the image from the provider deletes its uploads there;
	// removing it from the config deletes everything.
	e.update(func(c *config.Config) { c.Providers[0].Diskimages = nil })
	require.NoError(t, e.b.cleanupPass(ctx))
	require.Empty(t, cloud.imageIDs())
	require.Len(t, e.builds(zkclient.ImageReady), 2)
	e.update(func(c *config.Config) { c.Diskimages = nil })
	require.NoError(t, e.b.cleanupPass(ctx))
	require.Empty(t, e.builds(""))
	require.Equal(t, []string{BuilderIDFile}, e.imageFiles())
}

func TestUploadFailureAndStaleRecords(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	cloud := cloudOf(e.cloud)
	build := e.buildOnce()
	require.NotNil(t, build)

	cloud.failUploads = 1
	attempted, err := e.b.uploadPass(ctx)
	require.NoError(t, err)
	require.True(t, attempted)
	e.uploadAll()
	ups, err := e.zk.Uploads(ctx, "fake-image", build.ID, "cloud1")
	require.NoError(t, err)
	require.Len(t, ups, 2)
	require.Equal(t, "0000000001", ups[0].ID)
	require.Equal(t, zkclient.ImageFailed, ups[0].State)
	require.Equal(t, "0000000002", ups[1].ID)
	require.Equal(t, zkclient.ImageReady, ups[1].State)

	// A dead upload (uploading, lock free) and a dead build (building,
	// lock free) are cleaned up; so is the failed upload.
	stale := &zkclient.ImageUpload{ImageName: "fake-image", BuildID: build.ID, ProviderName: "cloud1",
		State: zkclient.ImageUploading, StateTime: 1}
	require.NoError(t, e.zk.CreateUpload(ctx, stale))
	dead := &zkclient.ImageBuild{ImageName: "fake-image", State: zkclient.ImageBuilding, StateTime: 2}
	require.NoError(t, e.zk.CreateBuild(ctx, dead))

	require.NoError(t, e.b.cleanupPass(ctx))
	ups, err = e.zk.Uploads(ctx, "fake-image", build.ID, "cloud1")
	require.NoError(t, err)
	require.Len(t, ups, 1)
	require.Equal(t, "0000000002", ups[0].ID)
	_, err = e.zk.GetBuild(ctx, "fake-image", dead.ID)
	require.ErrorIs(t, err, zkclient.ErrNoNode)
	_, err = e.zk.GetBuild(ctx, "fake-image", build.ID)
	require.NoError(t, err)
}

func TestLeakedImages(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	cloud := cloudOf(e.cloud)
	cloud.images["leaked"] = testImage{id: "leaked", spec: driver.UploadSpec{Metadata: map[string]string{
		"nodepool_provider_name": "cloud1", "nodepool_build_id": "0123456789abcdef0123456789abcdef", "nodepool_upload_id": "0000000001",
	}}}
	cloud.images["foreign"] = testImage{id: "foreign", spec: driver.UploadSpec{Metadata: map[string]string{
		"nodepool_provider_name": "other", "nodepool_upload_id": "0000000001",
	}}}
	build := e.buildOnce()
	require.NotNil(t, build)
	e.uploadAll()
	require.Len(t, cloud.imageIDs(), 3)
	require.NoError(t, e.b.cleanupPass(ctx))
	require.Len(t, cloud.imageIDs(), 3, "a leak is deleted only when seen twice")
	require.NoError(t, e.b.cleanupPass(ctx))
	ids := cloud.imageIDs()
	require.Len(t, ids, 2)
	require.NotContains(t, ids, "leaked")
	require.Contains(t, ids, "foreign")
}

func TestBuildTimeout(t *testing.T) {
	e := newEnv(t)
	e.update(func(c *config.Config) {
		c.Diskimages[0].BuildTimeout = time.Second
		c.Diskimages[0].EnvVars["FAKE_DIB_SLEEP"] = "30"
		c.Diskimages[0].EnvVars["FAKE_DIB_PIDFILE"] = filepath.Join(e.dir, "sleep.pid")
	})
	start := time.Now()
	build := e.buildOnce()
	require.Less(t, time.Since(start), 15*time.Second)
	require.NotNil(t, build)
	require.Equal(t, zkclient.ImageFailed, build.State)
	require.Empty(t, filesOf(e.imageFiles(), build.ID), "partial files are removed")
	logData, err := os.ReadFile(filepath.Join(e.config().BuildLogDir, "fake-image-"+build.ID+".log"))
	require.NoError(t, err)
	require.NotContains(t, string(logData), "Exit code")
	// The grandchild was killed with the process group.
	pidData, err := os.ReadFile(filepath.Join(e.dir, "sleep.pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidData)))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return err != nil || strings.Contains(string(stat), ") Z ")
	}, 30*time.Second, 50*time.Millisecond, "DIB child still running")

	// The failed build record is removed by cleanup once a good build exists.
	e.update(func(c *config.Config) {
		c.Diskimages[0].BuildTimeout = time.Minute
		delete(c.Diskimages[0].EnvVars, "FAKE_DIB_SLEEP")
	})
	good := e.buildOnce()
	require.Equal(t, zkclient.ImageReady, good.State)
	require.NoError(t, e.b.cleanupPass(ctxT(t)))
	all := e.builds("")
	require.Len(t, all, 1)
	require.Equal(t, good.ID, all[0].ID)
}

func TestTwoBuildersNeverBuildSameImageAtOnce(t *testing.T) {
	zc1, chroot := zktest.Connect(t)
	zc2 := zktest.ConnectChroot(t, chroot)
	cloud := newCloud(t)
	mark := t.TempDir()
	e1 := newEnvOn(t, zc1, cloud)
	e2 := newEnvOn(t, zc2, cloud)
	e2.b.fqdn = "nb02.example.org"
	for _, e := range []*env{e1, e2} {
		e.update(func(c *config.Config) { c.Diskimages[0].EnvVars["FAKE_DIB_MARK"] = mark })
	}
	const rounds = 3
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		for _, e := range []*env{e1, e2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				require.NoError(t, e.b.buildPass(ctxT(t)))
			}()
		}
		wg.Wait()
		e1.clock.Advance(25 * time.Hour)
		e2.clock.Advance(25 * time.Hour)
	}
	require.NoFileExists(t, filepath.Join(mark, "overlap"))
	data, err := os.ReadFile(filepath.Join(mark, "builds"))
	require.NoError(t, err)
	require.Len(t, strings.Fields(string(data)), rounds, "one build per round")
	require.Len(t, e1.builds(zkclient.ImageReady), rounds)
}

func TestLegacyBuildIDs(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	images := e.config().ImagesDir
	// A legacy build with a numerically high id but the oldest state_time.
	legacy := &zkclient.ImageBuild{ImageName: "fake-image", ID: "9999999999", State: zkclient.ImageReady,
		StateTime: 1600000000, Formats: []string{"qcow2", "raw"}, Username: "zuul", PythonPath: "auto"}
	require.NoError(t, e.zk.CreateBuild(ctx, legacy))
	for _, ext := range []string{"qcow2", "raw", "qcow2.md5"} {
		require.NoError(t, os.WriteFile(filepath.Join(images, "fake-image-9999999999."+ext), []byte("x"), 0o644))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(images, "fake-image-9999999999.d"), 0o755))
	lb, err := localBuilds(images)
	require.NoError(t, err)
	require.Equal(t, []localBuild{{"fake-image", "9999999999"}}, lb)

	all := e.builds("")
	require.Len(t, all, 1)
	require.Equal(t, "9999999999", all[0].ID)

	// It is old: a new build is made, and it is the newest despite its id.
	b1 := e.buildOnce()
	require.NotNil(t, b1)
	e.clock.Advance(25 * time.Hour)
	b2 := e.buildOnce()
	require.NotNil(t, b2)
	require.Equal(t, []string{b2.ID, b1.ID, "9999999999"}, idsOf(e.builds(zkclient.ImageReady)))

	require.NoError(t, e.b.cleanupPass(ctx))
	require.Equal(t, []string{b2.ID, b1.ID}, idsOf(e.builds("")))
	require.Empty(t, filesOf(e.imageFiles(), "9999999999"))
}

func idsOf(bs []*zkclient.ImageBuild) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func TestRunRegistersComponent(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.b.Run(ctx) }()
	require.Eventually(t, func() bool {
		comps, err := e.zk.Components(context.Background(), zkclient.KindBuilder)
		return err == nil && len(comps) == 1 && comps[0].State == zkclient.ComponentStopped && comps[0].Hostname == "nb01"
	}, 10*time.Second, 50*time.Millisecond)
	// The workers build and upload on their own.
	require.Eventually(t, func() bool {
		u, err := e.zk.MostRecentUpload(context.Background(), "fake-image", "cloud1", zkclient.ImageReady)
		return err == nil && u != nil
	}, 20*time.Second, 100*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	comps, err := e.zk.Components(context.Background(), zkclient.KindBuilder)
	require.NoError(t, err)
	require.Empty(t, comps)
}

// --- unit tests ----------------------------------------------------------

func TestDIBCommand(t *testing.T) {
	d := &config.DiskimageConfig{Name: "img", Elements: []string{"vm", "ubuntu"}, DibCmd: "%p/dib --opt 'a b'"}
	argv, err := dibCommand(d, []string{"raw", "qcow2"}, "/opt/images/img-abc", "/usr/lib/np")
	require.NoError(t, err)
	require.Equal(t, []string{"/usr/lib/np/dib", "--opt", "a b", "-x", "-t", "qcow2,raw", "--checksum", "--no-tmpfs",
		"--qemu-img-options", "compat=0.10", "-o", "/opt/images/img-abc", "vm", "ubuntu"}, argv)
	d.DibCmd = ""
	argv, err = dibCommand(d, []string{"vhd"}, "/i/img-abc", "")
	require.NoError(t, err)
	require.Equal(t, []string{"disk-image-create", "-x", "-t", "vhd", "--checksum", "--no-tmpfs", "-o", "/i/img-abc", "vm", "ubuntu"}, argv)

	env := dibEnv([]string{"PATH=/bin", "DIB_RELEASE=old"}, &config.DiskimageConfig{Name: "img", Release: "",
		EnvVars: map[string]string{"DIB_IMAGE_NAME": "override", "X": "1"}}, "/i/img-abc", "")
	require.Equal(t, []string{"PATH=/bin", "DIB_RELEASE=", "DIB_IMAGE_FILENAME=/i/img-abc", "DIB_IMAGE_NAME=override", "X=1"}, env)
}

func TestSplitShell(t *testing.T) {
	for in, want := range map[string][]string{
		`a b  c`:            {"a", "b", "c"},
		`a 'b c' "d \"e\""`: {"a", "b c", `d "e"`},
		`a\ b c`:            {"a b", "c"},
		`x''y`:              {"xy"},
	} {
		got, err := splitShell(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := splitShell(`a 'b`)
	require.Error(t, err)
}

func TestFormatImageName(t *testing.T) {
	require.Equal(t, "img-123", formatImageName(DefaultImageNameFormat, "img", "123", "0000000001"))
	require.Equal(t, "{x}-img-0000000001", formatImageName("{{x}}-{image_name}-{upload_id}", "img", "123", "0000000001"))
}

func TestLocalBuildsPattern(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"ubuntu-jammy-5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b.qcow2", "ubuntu-jammy-5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b.qcow2.md5",
		"builder_id.txt", "ubuntu-jammy-0000000042.raw", "UPPER-ABC.raw"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), nil, 0o644))
	}
	lb, err := localBuilds(dir)
	require.NoError(t, err)
	require.Equal(t, []localBuild{{"ubuntu-jammy", "0000000042"}, {"ubuntu-jammy", "5f0c6e1c2b7d4e3f9a1b2c3d4e5f6a7b"}}, lb)
	require.True(t, hasLocalFile(dir, "ubuntu-jammy", "0000000042"))
	require.False(t, hasLocalFile(dir, "ubuntu", "0000000042"))
}

func TestPruneBuildLogs(t *testing.T) {
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour)
	names := []string{"img-bbbb.log", "img-aaaa.log", "img-cccc.log", "img-x-0001.log", "other.log"}
	for i, n := range names {
		p := filepath.Join(dir, n)
		require.NoError(t, os.WriteFile(p, nil, 0o644))
		ts := base.Add(time.Duration(i) * time.Minute)
		require.NoError(t, os.Chtimes(p, ts, ts))
	}
	pruneBuildLogs(dir, "img", 2, testLogger())
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		left = append(left, en.Name())
	}
	require.ElementsMatch(t, []string{"img-aaaa.log", "img-cccc.log", "img-x-0001.log", "other.log"}, left)
}
