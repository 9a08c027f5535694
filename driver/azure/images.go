package azure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/nodepool-go/nodepool/driver"
)

// pageChunk is the largest page-blob write (4 MiB).
const pageChunk = 4 << 20

func (a *Adapter) pollOpts() *runtime.PollUntilDoneOptions {
	return &runtime.PollUntilDoneOptions{Frequency: pollFrequency}
}

// UploadImage uploads a VHD: a managed disk created for upload, written
// as a page blob through its SAS URL, then turned into an image named
// spec.ImageName; the disk is deleted afterwards. Both carry the
// metadata as tags, so an upload that dies half-way is found as a leak.
func (a *Adapter) UploadImage(ctx context.Context, spec driver.UploadSpec) (string, error) {
	if _, err := a.ensureSetup().wait(ctx); err != nil {
		return "", err
	}
	f, err := os.Open(spec.Filename)
	if err != nil {
		return "", fmt.Errorf("azure: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("azure: %w", err)
	}
	// Page blobs are written in 512-byte pages; the last one is padded.
	size := (fi.Size() + 511) / 512 * 512
	rg, name := a.st.ResourceGroup, spec.ImageName
	tags := azTags(spec.Metadata)
	a.log.Debug("creating disk for image upload", "image", name, "bytes", size)
	dp, err := a.disks.BeginCreateOrUpdate(ctx, rg, name, armcompute.Disk{
		Location: &a.st.Location,
		Tags:     tags,
		Properties: &armcompute.DiskProperties{CreationData: &armcompute.CreationData{
			CreateOption: ptr(armcompute.DiskCreateOptionUpload), UploadSizeBytes: &size,
		}},
	}, nil)
	if err != nil {
		return "", classify(err, "creating disk %s for upload", name)
	}
	disk, err := dp.PollUntilDone(ctx, a.pollOpts())
	if err != nil {
		return "", classify(err, "creating disk %s for upload", name)
	}
	gp, err := a.disks.BeginGrantAccess(ctx, rg, name, armcompute.GrantAccessData{
		Access: ptr(armcompute.AccessLevelWrite), DurationInSeconds: ptr(int32(24 * 60 * 60)),
	}, nil)
	if err != nil {
		return "", classify(err, "granting write access to disk %s", name)
	}
	grant, err := gp.PollUntilDone(ctx, a.pollOpts())
	if err != nil {
		return "", classify(err, "granting write access to disk %s", name)
	}
	if deref(grant.AccessSAS) == "" {
		return "", fmt.Errorf("azure: no SAS URL granted for disk %s", name)
	}
	a.log.Debug("uploading image", "image", name)
	if err := a.writePages(ctx, deref(grant.AccessSAS), f, size); err != nil {
		return "", err
	}
	rp, err := a.disks.BeginRevokeAccess(ctx, rg, name, nil)
	if err == nil {
		_, err = rp.PollUntilDone(ctx, a.pollOpts())
	}
	if err != nil {
		return "", classify(err, "revoking access to disk %s", name)
	}
	ip, err := a.images.BeginCreateOrUpdate(ctx, rg, name, armcompute.Image{
		Location: &a.st.Location,
		Tags:     tags,
		Properties: &armcompute.ImageProperties{
			HyperVGeneration: ptr(armcompute.HyperVGenerationTypesV2),
			StorageProfile: &armcompute.ImageStorageProfile{
				OSDisk: &armcompute.ImageOSDisk{
					OSType:      ptr(armcompute.OperatingSystemTypesLinux),
					OSState:     ptr(armcompute.OperatingSystemStateTypesGeneralized),
					ManagedDisk: &armcompute.SubResource{ID: disk.ID},
				},
				ZoneResilient: ptr(true),
			},
		},
	}, nil)
	if err == nil {
		_, err = ip.PollUntilDone(ctx, a.pollOpts())
	}
	if err != nil {
		return "", classify(err, "creating image %s", name)
	}
	if dp, err := a.disks.BeginDelete(ctx, rg, name, nil); err != nil {
		return "", classify(err, "deleting upload disk %s", name)
	} else if _, err := dp.PollUntilDone(ctx, a.pollOpts()); err != nil {
		return "", classify(err, "deleting upload disk %s", name)
	}
	a.log.Info("uploaded image", "image", name)
	return name, nil
}

// writePages writes the file to the page blob in chunks, zero-padding
// the last page to size.
func (a *Adapter) writePages(ctx context.Context, sas string, r io.Reader, size int64) error {
	opts := &pageblob.ClientOptions{}
	if a.blobHTTP != nil {
		opts.Transport = a.blobHTTP
	}
	if testRetry != nil {
		opts.Retry = *testRetry
	}
	pb, err := pageblob.NewClientWithNoCredential(sas, opts)
	if err != nil {
		// The URL carries the signature: keep it out of the message.
		return errors.New("azure: the granted SAS URL is not usable")
	}
	buf := make([]byte, pageChunk)
	for off := int64(0); off < size; {
		want := int(min(int64(pageChunk), size-off)) // a multiple of 512
		n, err := io.ReadFull(r, buf[:want])
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return fmt.Errorf("azure: reading image: %w", err)
		}
		clear(buf[n:want])
		if _, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(buf[:want])), blob.HTTPRange{Offset: off, Count: int64(want)}, nil); err != nil {
			return blobError(err)
		}
		off += int64(want)
	}
	return nil
}

// blobError reports a failed page write without the SAS URL.
func blobError(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		e := fmt.Errorf("azure: writing image pages: %s (HTTP %d)", re.ErrorCode, re.StatusCode)
		if re.StatusCode == 429 || re.StatusCode >= 500 {
			return driver.TransientError("%w", e)
		}
		return e
	}
	return errors.New("azure: writing image pages failed")
}

// DeleteImage deletes an uploaded image (an image that does not exist is
// already deleted).
func (a *Adapter) DeleteImage(ctx context.Context, externalID string) error {
	p, err := a.images.BeginDelete(ctx, a.st.ResourceGroup, externalID, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, a.pollOpts())
	}
	if err != nil {
		return classify(err, "deleting image %s", externalID)
	}
	a.imageIDs.Delete(externalID)
	a.log.Info("deleted image", "image", externalID)
	return nil
}
