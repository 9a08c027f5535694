package builder

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/internal/status"
	"github.com/nodepool-go/nodepool/zkclient"
)

type uploadKey struct{ build, upload string }

type imageProvider struct{ image, provider string }

// cleanupPass runs one cleanup-worker pass: old and failed
// uploads and builds, images removed from the config, local files of
// deleted builds, and leaked cloud images.
func (b *Builder) cleanupPass(ctx context.Context) error {
	cfg, err := b.opts.Config(ctx)
	if err != nil {
		return err
	}
	b.providers.configure(ctx, cfg)
	images, err := b.zk.ImageNames(ctx)
	if err != nil {
		return err
	}
	recent, err := b.recentUploads(ctx, images)
	if err != nil {
		return err
	}
	for _, image := range images {
		if ctx.Err() != nil {
			return nil
		}
		if err := b.cleanImage(ctx, cfg, image, recent); err != nil {
			b.log.Error("Exception cleaning up image "+image, "image", image, "error", err)
		}
	}
	if err := b.cleanLocal(ctx, cfg); err != nil {
		b.log.Error("cleaning local builds failed", "error", err)
	}
	b.cleanLeakedImages(ctx, cfg)
	b.buildRequestStats(ctx)
	return nil
}

// buildRequestStats sets nodepool.image_build_requests to the number of
// images with a pending build request, as image-status
// reports them.
func (b *Builder) buildRequestStats(ctx context.Context) {
	t, err := (&status.Source{ZK: b.zk, Now: b.now}).ImageStatus(ctx)
	if err != nil {
		b.log.Warn("unable to count build requests", "error", err)
		return
	}
	pending := 0
	for _, row := range t.Rows {
		if row[2] == "pending" {
			pending++
		}
	}
	b.stats.Gauge("nodepool.image_build_requests", float64(pending))
}

// recentUploads builds the upload recency table.
func (b *Builder) recentUploads(ctx context.Context, images []string) (map[imageProvider]map[uploadKey]bool, error) {
	all := map[imageProvider][]*zkclient.ImageUpload{}
	for _, image := range images {
		builds, err := b.zk.Builds(ctx, image, zkclient.ImageReady)
		if err != nil {
			return nil, err
		}
		for _, build := range builds {
			providers, err := b.zk.BuildProviders(ctx, image, build.ID)
			if err != nil {
				return nil, err
			}
			for _, p := range providers {
				ups, err := b.zk.Uploads(ctx, image, build.ID, p, zkclient.ImageReady)
				if err != nil {
					return nil, err
				}
				sortUploads(ups)
				if len(ups) > keepUploads {
					ups = ups[:keepUploads]
				}
				k := imageProvider{image, p}
				all[k] = append(all[k], ups...)
			}
		}
	}
	out := map[imageProvider]map[uploadKey]bool{}
	for k, ups := range all {
		sortUploads(ups)
		if len(ups) > keepUploads {
			ups = ups[:keepUploads]
		}
		set := map[uploadKey]bool{}
		for _, u := range ups {
			set[uploadKey{u.BuildID, u.ID}] = true
		}
		out[k] = set
	}
	return out, nil
}

func sortUploads(ups []*zkclient.ImageUpload) {
	sort.SliceStable(ups, func(i, j int) bool { return ups[i].StateTime > ups[j].StateTime })
}

// cleanImage removes what one diskimage no longer needs: builds other than
// the newest ready ones (all of them when the diskimage left the
// configuration), with their uploads, and stale uploads of kept builds.
func (b *Builder) cleanImage(ctx context.Context, cfg *config.Config, image string, recent map[imageProvider]map[uploadKey]bool) error {
	log := b.logFor(ctx).With("image", image)
	all, err := b.zk.Builds(ctx, image)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	if cfg.Diskimage(image) != nil {
		ready, err := mostRecentBuilds(ctx, b.zk, image, keepBuilds, zkclient.ImageReady)
		if err != nil {
			return err
		}
		for _, r := range ready {
			keep[r.ID] = true
		}
	}
	var managing []*driver.ProviderConfig
	for _, p := range cfg.Providers {
		if p.ManageImages {
			managing = append(managing, p)
		}
	}
	for _, build := range all {
		blog := log.With("build", build.ID)
		// 1. Obsolete uploads and cruft of kept builds.
		for _, p := range managing {
			if err := b.cleanProviderCruft(ctx, p, build, keep[build.ID]); err != nil {
				blog.Error("cleaning uploads failed", "provider", p.Name, "error", err)
			}
		}
		// 2. Kept and in-progress builds stay.
		if build.State != zkclient.ImageDeleting {
			if keep[build.ID] {
				continue
			}
			if build.State == zkclient.ImageBuilding {
				inProgress, err := b.buildInProgress(ctx, build)
				if err != nil {
					blog.Error("checking build lock failed", "error", err)
					continue
				}
				if inProgress {
					continue
				}
			}
		}
		// 3. Uploads that are not recent.
		for _, p := range managing {
			ups, err := b.zk.Uploads(ctx, image, build.ID, p.Name)
			if err != nil {
				blog.Error("listing uploads failed", "provider", p.Name, "error", err)
				continue
			}
			for _, u := range ups {
				if recent[imageProvider{image, p.Name}][uploadKey{u.BuildID, u.ID}] {
					continue
				}
				if err := b.deleteUpload(ctx, u); err != nil {
					blog.Error("deleting upload failed", "provider", p.Name, "upload", u.ID, "error", err)
				}
			}
		}
		// 4. Mark the build deleting once all uploads are (being) deleted.
		remaining, err := b.allUploads(ctx, image, build.ID)
		if err != nil {
			blog.Error("listing uploads failed", "error", err)
			continue
		}
		allDeleting := true
		for _, u := range remaining {
			if u.State != zkclient.ImageDeleting {
				allDeleting = false
			}
		}
		if allDeleting && build.State != zkclient.ImageDeleting {
			lock := b.zk.NewLock(zkclient.BuildIDLockPath(image, build.ID))
			got, err := lock.TryAcquire(ctx)
			if err != nil || !got {
				continue
			}
			build.State = zkclient.ImageDeleting
			build.StateTime = b.stateTime()
			err = b.zk.StoreBuild(ctx, build)
			_ = lock.Release(ctx)
			if err != nil {
				blog.Error("marking build deleting failed", "error", err)
				continue
			}
		}
		// 5. Delete the record once no uploads are left.
		if len(remaining) == 0 {
			again, err := b.allUploads(ctx, image, build.ID)
			if err != nil {
				continue
			}
			if len(again) > 0 {
				blog.Error(fmt.Sprintf("Unable to delete build %s because uploads still remain.", build.ID))
				continue
			}
			blog.Info("Deleting build record")
			if err := b.zk.DeleteRecursive(ctx, zkclient.BuildPath(image, build.ID)); err != nil && !errors.Is(err, zkclient.ErrNoNode) {
				blog.Error("deleting build failed", "error", err)
			}
		}
	}
	return nil
}

// buildInProgress reports whether a building record belongs to a live
// build (the image build lock is held and the record is still building).
func (b *Builder) buildInProgress(ctx context.Context, build *zkclient.ImageBuild) (bool, error) {
	lock := b.zk.NewLock(zkclient.BuildLockPath(build.ImageName))
	got, err := lock.TryAcquire(ctx)
	if err != nil {
		return true, err
	}
	if !got {
		return true, nil
	}
	defer lock.Release(ctx)
	again, err := b.zk.GetBuild(ctx, build.ImageName, build.ID)
	if err != nil {
		if errors.Is(err, zkclient.ErrNoNode) {
			return true, nil
		}
		return true, err
	}
	return again.State != zkclient.ImageBuilding, nil
}

// cleanProviderCruft removes one provider's uploads of a build: all of them
// when the provider no longer lists the diskimage, otherwise the failed
// and superseded ones of a kept build.
func (b *Builder) cleanProviderCruft(ctx context.Context, p *driver.ProviderConfig, build *zkclient.ImageBuild, kept bool) error {
	image := build.ImageName
	if p.Diskimage(image) == nil {
		ups, err := b.zk.Uploads(ctx, image, build.ID, p.Name)
		if err != nil {
			return err
		}
		var errs []error
		for _, u := range ups {
			errs = append(errs, b.deleteUpload(ctx, u))
		}
		return errors.Join(errs...)
	}
	if !kept {
		return nil
	}
	ups, err := b.zk.Uploads(ctx, image, build.ID, p.Name, zkclient.ImageUploading, zkclient.ImageDeleting, zkclient.ImageFailed)
	if err != nil {
		return err
	}
	var errs []error
	for _, u := range ups {
		if u.State != zkclient.ImageUploading {
			errs = append(errs, b.deleteUpload(ctx, u))
			continue
		}
		inProgress, err := b.uploadInProgress(ctx, u)
		if err != nil || inProgress {
			errs = append(errs, err)
			continue
		}
		again, err := b.zk.GetUpload(ctx, image, build.ID, p.Name, u.ID)
		if err != nil {
			b.log.Warn("unable to re-read upload", "image", image, "build", build.ID, "provider", p.Name, "upload", u.ID, "error", err)
			continue
		}
		if again.State == zkclient.ImageUploading && again.Version == u.Version {
			b.log.Info("Removing failed upload record", "image", image, "build", build.ID, "provider", p.Name, "upload", u.ID)
			if err := b.zk.DeleteRecursive(ctx, u.Path()); err != nil && !errors.Is(err, zkclient.ErrNoNode) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// uploadInProgress reports whether someone holds the upload lock of the
// upload's build×provider.
func (b *Builder) uploadInProgress(ctx context.Context, u *zkclient.ImageUpload) (bool, error) {
	lock := b.zk.NewLock(zkclient.UploadLockPath(u.ImageName, u.BuildID, u.ProviderName))
	got, err := lock.TryAcquire(ctx)
	if err != nil {
		return true, err
	}
	if !got {
		return true, nil
	}
	_ = lock.Release(ctx)
	return false, nil
}

// allUploads lists the uploads of a build under every provider znode.
func (b *Builder) allUploads(ctx context.Context, image, build string) ([]*zkclient.ImageUpload, error) {
	providers, err := b.zk.BuildProviders(ctx, image, build)
	if err != nil {
		return nil, err
	}
	var out []*zkclient.ImageUpload
	for _, p := range providers {
		ups, err := b.zk.Uploads(ctx, image, build, p)
		if err != nil {
			return nil, err
		}
		out = append(out, ups...)
	}
	return out, nil
}

// deleteUpload marks an upload deleting, deletes it in the cloud,
// then remove the record.
func (b *Builder) deleteUpload(ctx context.Context, u *zkclient.ImageUpload) error {
	log := b.logFor(ctx).With("image", u.ImageName, "build", u.BuildID, "provider", u.ProviderName, "upload", u.ID)
	if u.State == zkclient.ImageUploading {
		inProgress, err := b.uploadInProgress(ctx, u)
		if err != nil || inProgress {
			return err
		}
	}
	lock := b.zk.NewLock(zkclient.UploadIDLockPath(u.ImageName, u.BuildID, u.ProviderName, u.ID))
	got, err := lock.TryAcquire(ctx)
	if err != nil || !got {
		return err
	}
	locked := true
	defer func() {
		if locked {
			_ = lock.Release(ctx)
		}
	}()
	if u.State != zkclient.ImageDeleting {
		u.State = zkclient.ImageDeleting
		u.StateTime = b.stateTime()
		if err := b.zk.StoreUpload(ctx, u); err != nil {
			return err
		}
	}
	if u.ExternalID != "" {
		adapter := b.providers.get(u.ProviderName)
		im, ok := adapter.(driver.ImageManager)
		if !ok {
			return fmt.Errorf("no image-managing provider %s in this builder", u.ProviderName)
		}
		log.Info(fmt.Sprintf("Deleting image build %s-%s from %s", u.ImageName, u.BuildID, u.ProviderName))
		if err := im.DeleteImage(ctx, u.ExternalID); err != nil && !driver.IsNotFound(err) {
			log.Error(fmt.Sprintf("Unable to delete image %s from %s", u.ExternalName, u.ProviderName), "error", err)
			return nil
		}
	}
	if err := b.zk.DeleteRecursive(ctx, u.Path()); err != nil && !errors.Is(err, zkclient.ErrNoNode) {
		return err
	}
	lock.Forget()
	locked = false
	return nil
}

// cleanLocal removes the files of builds that are gone from
// ZooKeeper or deleting.
func (b *Builder) cleanLocal(ctx context.Context, cfg *config.Config) error {
	locals, err := localBuilds(cfg.ImagesDir)
	if err != nil {
		return err
	}
	for _, lb := range locals {
		build, err := b.zk.GetBuild(ctx, lb.Image, lb.ID)
		switch {
		case errors.Is(err, zkclient.ErrNoNode):
		case err != nil:
			b.log.Warn("unable to read build of local files", "image", lb.Image, "build", lb.ID, "error", err)
			continue
		case build.State != zkclient.ImageDeleting:
			continue
		}
		log := b.logFor(ctx).With("image", lb.Image, "build", lb.ID)
		log.Info(fmt.Sprintf("Deleting on-disk build: %s-%s", lb.Image, lb.ID))
		deleteLocalBuild(cfg.ImagesDir, lb.Image, lb.ID, log)
	}
	return nil
}

// cleanLeakedImages deletes cloud images that carry this provider's
// nodepool metadata but whose upload is not in ZooKeeper (seen twice).
func (b *Builder) cleanLeakedImages(ctx context.Context, cfg *config.Config) {
	var known map[uploadKey]bool
	for _, p := range cfg.Providers {
		if !p.ManageImages {
			continue
		}
		lc, ok := b.providers.get(p.Name).(driver.LeakCleaner)
		if !ok {
			continue
		}
		log := b.logFor(ctx).With("provider", p.Name)
		resources, err := lc.ListResources(ctx)
		if err != nil {
			log.Error("listing cloud resources failed", "error", err)
			continue
		}
		if known == nil {
			known, err = b.knownUploads(ctx)
			if err != nil {
				log.Error("listing uploads failed", "error", err)
				return
			}
		}
		pass := b.leaks.Begin(p.Name)
		for _, r := range resources {
			if !isLeakedImage(r, p.Name, known) || !pass.Leaked(r.ID) {
				continue
			}
			log.Info("Deleting leaked image", "external_id", r.ID, "build", r.Metadata[driver.MetaBuildID], "upload", r.Metadata[driver.MetaUploadID])
			if err := lc.DeleteResource(ctx, r); err != nil && !driver.IsNotFound(err) {
				log.Error("unable to delete leaked image", "external_id", r.ID, "error", err)
			}
		}
		pass.End()
	}
}

// knownUploads returns (build id, upload id) of every upload in ZooKeeper,
// plus ("", upload id) for matching resources without a build id.
func (b *Builder) knownUploads(ctx context.Context) (map[uploadKey]bool, error) {
	out := map[uploadKey]bool{}
	images, err := b.zk.ImageNames(ctx)
	if err != nil {
		return nil, err
	}
	for _, image := range images {
		ids, err := b.zk.BuildIDs(ctx, image)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			ups, err := b.allUploads(ctx, image, id)
			if err != nil {
				return nil, err
			}
			for _, u := range ups {
				out[uploadKey{u.BuildID, u.ID}] = true
				out[uploadKey{"", u.ID}] = true
			}
		}
	}
	return out, nil
}

// isLeakedImage reports whether a cloud resource is a nodepool image of
// provider whose upload record is not among known.
func isLeakedImage(r driver.Resource, provider string, known map[uploadKey]bool) bool {
	if r.Type != "image" || r.Metadata[driver.MetaProviderName] != provider {
		return false
	}
	up := r.Metadata[driver.MetaUploadID]
	if up == "" {
		return false
	}
	return !known[uploadKey{r.Metadata[driver.MetaBuildID], up}]
}
