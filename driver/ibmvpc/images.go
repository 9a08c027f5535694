package ibmvpc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/IBM/go-sdk-core/v5/core"
	"github.com/IBM/ibm-cos-sdk-go/aws"
	"github.com/IBM/ibm-cos-sdk-go/aws/awserr"
	"github.com/IBM/ibm-cos-sdk-go/aws/credentials/ibmiam"
	"github.com/IBM/ibm-cos-sdk-go/aws/request"
	"github.com/IBM/ibm-cos-sdk-go/aws/session"
	"github.com/IBM/ibm-cos-sdk-go/service/s3"
	"github.com/IBM/ibm-cos-sdk-go/service/s3/s3manager"
	"github.com/IBM/platform-services-go-sdk/resourcecontrollerv2"
	"github.com/IBM/vpc-go-sdk/vpcv1"

	"github.com/nodepool-go/nodepool/driver"
)

// defaultIAMURL is where IAM tokens are issued when the credentials name
// no other place.
const defaultIAMURL = "https://iam.cloud.ibm.com"

// cosClient is the Cloud Object Storage client of the object-storage key.
type cosClient struct {
	s3       *s3.S3
	uploader *s3manager.Uploader
	bucket   string
}

// objectStorage returns the COS client, built on first use: it finds the
// COS instance by its name through the resource controller and signs
// requests with IAM tokens obtained with the provider's API key (only API
// key credentials can be used for object storage, as upstream).
func (a *Adapter) objectStorage(ctx context.Context) (*cosClient, error) {
	a.cosMu.Lock()
	defer a.cosMu.Unlock()
	if a.cos != nil {
		return a.cos, nil
	}
	os := a.st.ObjectStorage
	if os == nil {
		return nil, fmt.Errorf("ibmvpc: provider %s has no object-storage", a.cfg.Name)
	}
	iam, ok := a.auth.(*core.IamAuthenticator)
	if !ok {
		return nil, fmt.Errorf("ibmvpc: object storage needs API key (iam) credentials, provider %s has %s", a.cfg.Name, a.auth.AuthenticationType())
	}
	res, _, err := a.rc.ListResourceInstancesWithContext(ctx, &resourcecontrollerv2.ListResourceInstancesOptions{
		Name: core.StringPtr(os.InstanceName),
		Type: core.StringPtr("service_instance"),
	})
	if err != nil {
		return nil, classify(err, "ibmvpc: looking up object storage instance %s", os.InstanceName)
	}
	crn := ""
	for _, r := range res.Resources {
		parts := strings.Split(deref(r.CRN), ":")
		if len(parts) > 4 && parts[4] == "cloud-object-storage" {
			crn = deref(r.CRN)
		}
	}
	if crn == "" {
		return nil, fmt.Errorf("ibmvpc: unable to find object storage instance %s", os.InstanceName)
	}
	iamURL := iam.URL
	if iamURL == "" {
		iamURL = defaultIAMURL
	}
	conf := aws.NewConfig().
		WithEndpoint(os.Endpoint).
		WithS3ForcePathStyle(true).
		WithHTTPClient(&http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: apiTimeout}).
		WithMaxRetries(sdkRetries)
	conf = conf.WithCredentials(ibmiam.NewStaticCredentials(aws.NewConfig(), strings.TrimRight(iamURL, "/")+"/identity/token", iam.ApiKey, crn))
	sess, err := session.NewSession(conf)
	if err != nil {
		return nil, fmt.Errorf("ibmvpc: object storage session: %w", err)
	}
	// Object storage calls count against the provider's rate like every
	// other call (a send handler, so that the SDK keeps its own transport
	// for custom CA bundles).
	sess.Handlers.Send.PushFront(func(r *request.Request) {
		if err := a.rate.wait(r.Context()); err != nil {
			r.Error = err
		}
	})
	a.cos = &cosClient{s3: s3.New(sess), uploader: s3manager.NewUploader(sess), bucket: os.BucketName}
	return a.cos, nil
}

// listObjects returns the keys of the bucket's objects starting with prefix.
func (a *Adapter) listObjects(ctx context.Context, prefix string) ([]string, error) {
	c, err := a.objectStorage(ctx)
	if err != nil {
		return nil, err
	}
	var keys []string
	err = c.s3.ListObjectsPagesWithContext(ctx, &s3.ListObjectsInput{Bucket: aws.String(c.bucket), Prefix: aws.String(prefix)},
		func(page *s3.ListObjectsOutput, last bool) bool {
			for _, o := range page.Contents {
				keys = append(keys, aws.StringValue(o.Key))
			}
			return true
		})
	if err != nil {
		return nil, classifyCOS(err, "ibmvpc: listing bucket %s", c.bucket)
	}
	return keys, nil
}

func (a *Adapter) deleteObject(ctx context.Context, key string) error {
	c, err := a.objectStorage(ctx)
	if err != nil {
		return err
	}
	_, err = c.s3.DeleteObjectWithContext(ctx, &s3.DeleteObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)})
	return classifyCOS(err, "ibmvpc: deleting object %s", key)
}

// classifyCOS classifies object storage errors.
func classifyCOS(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	var rf awserr.RequestFailure
	if errors.As(err, &rf) {
		switch {
		case rf.StatusCode() == http.StatusNotFound:
			return driver.NotFoundError("%s: %w", msg, err)
		case rf.StatusCode() == http.StatusTooManyRequests || rf.StatusCode() >= 500:
			return driver.TransientError("%s: %w", msg, err)
		}
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// UploadImage stages the image file in the bucket, imports it as a VPC
// image in the provider's image resource group, waits until it is
// available and removes the staged object. The image is named after the
// upload, "npimage<upload id>-<build id>" (from the upload's metadata;
// spec.ImageName when it has none): leak cleanup reads both ids back.
func (a *Adapter) UploadImage(ctx context.Context, spec driver.UploadSpec) (string, error) {
	if err := a.setupNow(ctx); err != nil {
		return "", err
	}
	pd := a.cfg.Diskimage(spec.Diskimage)
	if pd == nil {
		return "", fmt.Errorf("ibmvpc: diskimage %s is not configured for provider %s", spec.Diskimage, a.cfg.Name)
	}
	ds, _ := pd.Settings.(*DiskimageSettings)
	if ds == nil || ds.OperatingSystem == "" {
		return "", fmt.Errorf("ibmvpc: diskimage %s has no operating-system", spec.Diskimage)
	}
	c, err := a.objectStorage(ctx)
	if err != nil {
		return "", err
	}
	name := spec.ImageName
	if up := spec.Metadata[driver.MetaUploadID]; up != "" {
		name = "npimage" + up
		if b := spec.Metadata[driver.MetaBuildID]; b != "" {
			name += "-" + b
		}
	}
	loc, err := c.s3.GetBucketLocationWithContext(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(c.bucket)})
	if err != nil {
		return "", classifyCOS(err, "ibmvpc: locating bucket %s", c.bucket)
	}
	// The location constraint ends in the storage class ("us-south-standard").
	region := aws.StringValue(loc.LocationConstraint)
	if i := strings.LastIndex(region, "-"); i > 0 {
		region = region[:i]
	}
	key := name + "." + spec.Format
	f, err := os.Open(spec.Filename)
	if err != nil {
		return "", err
	}
	a.log.Debug("uploading image to object storage", "image", name, "bucket", c.bucket)
	_, err = c.uploader.UploadWithContext(ctx, &s3manager.UploadInput{Bucket: aws.String(c.bucket), Key: aws.String(key), Body: f})
	_ = f.Close()
	if err != nil {
		return "", classifyCOS(err, "ibmvpc: uploading %s to bucket %s", key, c.bucket)
	}
	rg, err := a.ensureResourceGroup(ctx, imageGroupName(a.cfg.Name))
	if err != nil {
		return "", err
	}
	im, _, err := a.vpc.CreateImageWithContext(ctx, &vpcv1.CreateImageOptions{ImagePrototype: &vpcv1.ImagePrototypeImageByFile{
		Name:            core.StringPtr(name),
		ResourceGroup:   &vpcv1.ResourceGroupIdentityByID{ID: core.StringPtr(rg)},
		File:            &vpcv1.ImageFilePrototype{Href: core.StringPtr(fmt.Sprintf("cos://%s/%s/%s", region, c.bucket, key))},
		OperatingSystem: &vpcv1.OperatingSystemIdentityByName{Name: core.StringPtr(ds.OperatingSystem)},
	}})
	if err != nil {
		return "", classify(err, "ibmvpc: creating image %s", name)
	}
	id := deref(im.ID)
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(imagePollInterval):
		}
		im, _, err = a.vpc.GetImageWithContext(ctx, &vpcv1.GetImageOptions{ID: &id})
		if err != nil {
			return "", classify(err, "ibmvpc: checking image %s", name)
		}
		st := deref(im.Status)
		if st == vpcv1.ImageStatusPendingConst {
			continue
		}
		if st != vpcv1.ImageStatusAvailableConst {
			return "", fmt.Errorf("ibmvpc: image status of %s is %s", name, st)
		}
		break
	}
	if err := a.deleteObject(ctx, key); err != nil && !driver.IsNotFound(err) {
		return "", err
	}
	a.log.Info("uploaded image", "image", name, "id", id)
	return id, nil
}

// DeleteImage deletes an uploaded image and any staged object of it.
func (a *Adapter) DeleteImage(ctx context.Context, externalID string) error {
	im, _, err := a.vpc.GetImageWithContext(ctx, &vpcv1.GetImageOptions{ID: &externalID})
	if err != nil {
		return classify(err, "ibmvpc: image %s", externalID)
	}
	if a.st.ObjectStorage != nil {
		keys, err := a.listObjects(ctx, deref(im.Name))
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := a.deleteObject(ctx, k); err != nil && !driver.IsNotFound(err) {
				return err
			}
		}
	}
	_, err = a.vpc.DeleteImageWithContext(ctx, &vpcv1.DeleteImageOptions{ID: &externalID})
	return classify(err, "ibmvpc: deleting image %s", externalID)
}
