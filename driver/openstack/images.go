package openstack

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/nodepool-go/nodepool/driver"
)

// UploadImage creates a private Glance image with the metadata as
// properties (plus openstacksdk's owner_specified checksums), uploads the
// file and waits until the image is active. A failed upload is deleted.
func (a *Adapter) UploadImage(ctx context.Context, spec driver.UploadSpec) (string, error) {
	cl, err := a.clients(ctx)
	if err != nil {
		return "", err
	}
	f, err := os.Open(spec.Filename)
	if err != nil {
		return "", fmt.Errorf("openstack: %w", err)
	}
	defer f.Close()
	format := spec.Format
	if format == "" {
		format = a.cfg.ImageFormat
	}
	props := map[string]string{}
	for k, v := range spec.Metadata {
		props[k] = v
	}
	if spec.MD5 != "" {
		props["owner_specified.openstack.md5"] = spec.MD5
	}
	if spec.SHA256 != "" {
		props["owner_specified.openstack.sha256"] = spec.SHA256
	}
	vis := images.ImageVisibilityPrivate
	im, err := images.Create(ctx, cl.image, images.CreateOpts{
		Name: spec.ImageName, DiskFormat: format, ContainerFormat: "bare", Visibility: &vis, Properties: props,
	}).Extract()
	if err != nil {
		return "", classify(err, "openstack: creating image %s", spec.ImageName)
	}
	fail := func(err error) (string, error) {
		if derr := images.Delete(context.WithoutCancel(ctx), cl.image, im.ID).ExtractErr(); derr != nil {
			a.log.Warn("deleting failed upload", "image", im.ID, "error", derr)
		}
		return "", err
	}
	if err := imagedata.Upload(ctx, cl.image, im.ID, f).ExtractErr(); err != nil {
		return fail(classify(err, "openstack: uploading image %s", spec.ImageName))
	}
	for {
		got, err := images.Get(ctx, cl.image, im.ID).Extract()
		if err != nil {
			return fail(classify(err, "openstack: waiting for image %s", im.ID))
		}
		switch got.Status {
		case images.ImageStatusActive:
			return im.ID, nil
		case images.ImageStatusKilled, images.ImageStatusDeleted:
			return fail(fmt.Errorf("openstack: image %s is %s after upload", im.ID, got.Status))
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// DeleteImage deletes an uploaded image; NotFound when it is gone.
func (a *Adapter) DeleteImage(ctx context.Context, externalID string) error {
	cl, err := a.clients(ctx)
	if err != nil {
		return err
	}
	return classify(images.Delete(ctx, cl.image, externalID).ExtractErr(), "openstack: deleting image %s", externalID)
}
