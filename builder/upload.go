package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/metrics"
	"github.com/nodepool-go/nodepool/zkclient"
)

// ImageNameFormatter is implemented by provider Settings that configure the
// cloud image name template (OpenStack image-name-format). The default is
// "{image_name}-{timestamp}".
type ImageNameFormatter interface {
	// UploadNameFormat returns the template, with {image_name},
	// {timestamp} (Unix seconds at the upload's start) and {upload_id}
	// fields; "" means the default.
	UploadNameFormat() string
}

// PostUploadHooker is implemented by provider Settings that configure a
// post-upload-hook executable (OpenStack post-upload-hook). It runs after
// each successful upload with the provider name, the image's external id
// and the uploaded file as arguments; a non-zero exit deletes the image
// and fails the upload.
type PostUploadHooker interface {
	// UploadHook returns the executable's path ("" for none).
	UploadHook() string
}

// DefaultImageNameFormat is the cloud name template of most drivers.
const DefaultImageNameFormat = "{image_name}-{timestamp}"

// formatImageName expands a Python str.format-style template with
// image_name, timestamp and upload_id ("{{"/"}}" are literal braces).
func formatImageName(tmpl, image, timestamp, uploadID string) string {
	r := strings.NewReplacer("{{", "{", "}}", "}",
		"{image_name}", image, "{timestamp}", timestamp, "{upload_id}", uploadID)
	return r.Replace(tmpl)
}

// services is what the builder offers drivers as driver.Env.Services:
// the timing of their API calls (driver.TaskRecorder).
type services struct{ stats *metrics.Reporter }

// TaskDone records one cloud API call as nodepool.task.<provider>.<call>.
func (s services) TaskDone(provider, call string, status int, d time.Duration) {
	s.stats.Task(provider, call, status, d)
}

type providerManager struct {
	cfg     *driver.ProviderConfig
	adapter driver.Adapter
}

// providerManagers holds one open adapter per image-managing provider.
type providerManagers struct {
	log      *slog.Logger
	services any // driver.Env.Services
	drivers  *driver.Registry
	mu       sync.Mutex
	m        map[string]*providerManager
}

func newProviderManagers(log *slog.Logger, drivers *driver.Registry) *providerManagers {
	return &providerManagers{log: log, drivers: drivers, m: map[string]*providerManager{}}
}

// configure starts, replaces and stops adapters to match cfg.
func (pm *providerManagers) configure(ctx context.Context, cfg *config.Config) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	want := map[string]*driver.ProviderConfig{}
	for _, p := range cfg.Providers {
		if p.ManageImages {
			want[p.Name] = p
		}
	}
	for name, m := range pm.m {
		if p, ok := want[name]; !ok || !reflect.DeepEqual(p, m.cfg) {
			_ = m.adapter.Close()
			delete(pm.m, name)
		}
	}
	for name, p := range want {
		if _, ok := pm.m[name]; ok {
			continue
		}
		a, err := pm.drivers.Open(ctx, p, driver.Env{Logger: pm.log.With("provider", name), Services: pm.services})
		if err != nil {
			pm.log.Error("unable to start provider manager", "provider", name, "error", err)
			continue
		}
		pm.m[name] = &providerManager{cfg: p, adapter: a}
	}
}

// get returns the adapter of a provider, or nil.
func (pm *providerManagers) get(name string) driver.Adapter {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if m := pm.m[name]; m != nil {
		return m.adapter
	}
	return nil
}

func (pm *providerManagers) closeAll() {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	for name, m := range pm.m {
		_ = m.adapter.Close()
		delete(pm.m, name)
	}
}

// uploadPass runs one upload-worker iteration. It stops
// after the first upload attempt and reports whether one was made.
func (b *Builder) uploadPass(ctx context.Context) (bool, error) {
	cfg, err := b.opts.Config(ctx)
	if err != nil {
		return false, err
	}
	b.providers.configure(ctx, cfg)
	for _, p := range cfg.Providers {
		if !p.ManageImages || b.providers.get(p.Name) == nil {
			continue
		}
		for _, pd := range p.Diskimages {
			if ctx.Err() != nil || !b.zk.Connected() {
				return false, nil
			}
			attempted, err := b.checkUpload(ctx, cfg, p, pd)
			if err != nil {
				b.log.Error("upload check failed", "image", pd.Name, "provider", p.Name, "error", err)
			}
			if attempted {
				return true, nil
			}
		}
	}
	return false, nil
}

// checkUpload reports whether the newest build of a diskimage is to be
// uploaded to the provider now: not paused, built locally in the
// provider's format, not uploaded yet, and the upload lock taken.
func (b *Builder) checkUpload(ctx context.Context, cfg *config.Config, p *driver.ProviderConfig, pd *driver.ProviderDiskimage) (bool, error) {
	if pd.Pause {
		return false, nil
	}
	build, err := b.mostRecentBuild(ctx, pd.Name)
	if err != nil || build == nil {
		return false, err
	}
	if !hasLocalFile(cfg.ImagesDir, pd.Name, build.ID) {
		return false, nil
	}
	ready, err := b.zk.Uploads(ctx, pd.Name, build.ID, p.Name, zkclient.ImageReady)
	if err != nil || len(ready) > 0 {
		return false, err
	}
	if !contains(build.Formats, p.ImageFormat) {
		return false, nil
	}
	lock := b.zk.NewLock(zkclient.UploadLockPath(pd.Name, build.ID, p.Name))
	got, err := lock.TryAcquire(ctx)
	if err != nil || !got {
		return false, err
	}
	defer lock.Release(context.WithoutCancel(ctx))
	ready, err = b.zk.Uploads(ctx, pd.Name, build.ID, p.Name, zkclient.ImageReady)
	if err != nil || len(ready) > 0 {
		return false, err
	}
	build, err = b.zk.GetBuild(ctx, pd.Name, build.ID)
	if err != nil || build.State == zkclient.ImageDeleting {
		return false, nil
	}
	rec := &zkclient.ImageUpload{
		ImageName:    pd.Name,
		BuildID:      build.ID,
		ProviderName: p.Name,
		State:        zkclient.ImageUploading,
		StateTime:    b.stateTime(),
		Username:     build.Username,
		PythonPath:   build.PythonPath,
		ShellType:    build.ShellType,
	}
	if err := b.zk.CreateUpload(ctx, rec); err != nil {
		return false, err
	}
	result, err := b.upload(ctx, cfg, p, pd, build, rec.ID)
	if err != nil {
		// The record stays uploading; cleanup removes it (lock free).
		return true, err
	}
	if err := b.zk.StoreUpload(context.WithoutCancel(ctx), result); err != nil {
		return true, err
	}
	return true, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// upload uploads a build to the provider and returns the record to store.
func (b *Builder) upload(ctx context.Context, cfg *config.Config, p *driver.ProviderConfig, pd *driver.ProviderDiskimage, build *zkclient.ImageBuild, uploadID string) (*zkclient.ImageUpload, error) {
	log := b.logFor(ctx).With("image", pd.Name, "build", build.ID, "provider", p.Name, "upload", uploadID)
	start := b.now()
	started := time.Now()
	timestamp := strconv.FormatInt(start.Unix(), 10)
	file, ok := localImageFile(cfg.ImagesDir, pd.Name, build.ID, p.ImageFormat)
	if !ok {
		return nil, fmt.Errorf("Unable to find image file of type %s for id %s to upload", p.ImageFormat, build.ID)
	}
	failed := &zkclient.ImageUpload{
		ImageName: pd.Name, BuildID: build.ID, ProviderName: p.Name, ID: uploadID,
		State: zkclient.ImageFailed, StateTime: b.stateTime(),
	}
	adapter := b.providers.get(p.Name)
	im, ok := adapter.(driver.ImageManager)
	if !ok {
		log.Error(fmt.Sprintf("Failed to upload build %s of image %s to provider %s", build.ID, pd.Name, p.Name), "error", "provider does not manage images")
		return failed, nil
	}
	tmpl := DefaultImageNameFormat
	if f, ok := p.Settings.(ImageNameFormatter); ok && f.UploadNameFormat() != "" {
		tmpl = f.UploadNameFormat()
	}
	name := formatImageName(tmpl, pd.Name, timestamp, uploadID)
	meta := map[string]string{}
	if d := cfg.Diskimage(pd.Name); d != nil {
		maps.Copy(meta, d.Metadata)
	}
	maps.Copy(meta, pd.Meta)
	meta[driver.MetaBuildID] = build.ID
	meta[driver.MetaUploadID] = uploadID
	meta[driver.MetaProviderName] = p.Name
	spec := driver.UploadSpec{
		ImageName: name,
		Diskimage: pd.Name,
		Filename:  file,
		Format:    p.ImageFormat,
		Metadata:  meta,
		MD5:       readChecksum(file+".md5", 32),
		SHA256:    readChecksum(file+".sha256", 64),
	}
	log.Info(fmt.Sprintf("Uploading DIB image build %s from %s to %s", build.ID, file, p.Name))
	extID, err := im.UploadImage(ctx, spec)
	if err != nil {
		log.Error(fmt.Sprintf("Failed to upload build %s of image %s to provider %s", build.ID, pd.Name, p.Name), "error", err)
		failed.StateTime = b.stateTime()
		return failed, nil
	}
	if h, ok := p.Settings.(PostUploadHooker); ok && h.UploadHook() != "" {
		if err := runPostUploadHook(ctx, h.UploadHook(), p.Name, extID, file, log); err != nil {
			if derr := im.DeleteImage(context.WithoutCancel(ctx), extID); derr != nil {
				log.Error(fmt.Sprintf("Unable to delete image %q", name), "error", derr)
			}
			failed.StateTime = b.stateTime()
			return failed, nil
		}
	}
	log.Info(fmt.Sprintf("Image build %s-%s (external_id %s) in %s is ready", pd.Name, build.ID, extID, p.Name))
	key := "nodepool.image_update." + pd.Name + "." + p.Name
	batch := b.stats.Batch(true)
	batch.Timing(key, time.Since(started))
	batch.Incr(key)
	batch.Send()
	return &zkclient.ImageUpload{
		ImageName: pd.Name, BuildID: build.ID, ProviderName: p.Name, ID: uploadID,
		State:        zkclient.ImageReady,
		StateTime:    b.stateTime(),
		ExternalID:   extID,
		ExternalName: name,
		Format:       p.ImageFormat,
		Username:     build.Username,
		PythonPath:   build.PythonPath,
		ShellType:    build.ShellType,
	}, nil
}

func readChecksum(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(data) > n {
		data = data[:n]
	}
	return string(data)
}

func runPostUploadHook(ctx context.Context, hook, provider, extID, file string, log *slog.Logger) error {
	cmd := exec.CommandContext(ctx, hook, provider, extID, file)
	log.Info(fmt.Sprintf("Running post upload hook %s", pyList(hook, provider, extID, file)))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	rc := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			log.Error("Post upload hook failed", "error", err)
			return err
		}
		rc = ee.ExitCode()
		log.Error(fmt.Sprintf("Post upload hook failed with exit code %d\nstdout:\n%s\nstderr:\n%s", rc, stdout.String(), stderr.String()))
		return err
	}
	log.Info(fmt.Sprintf("Post upload hook success with exit code %d\nstdout:\n%s\nstderr:\n%s", rc, stdout.String(), stderr.String()))
	return nil
}

// pyList renders strings as a Python list literal, as upstream logs the
// hook's command.
func pyList(items ...string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = "'" + strings.ReplaceAll(s, "'", "\\'") + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}
