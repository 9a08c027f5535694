package aws

import (
	"errors"
	"fmt"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/nodepool-go/nodepool/driver"
)

// Error codes AWS answers with, by what the launcher should do about them.
var (
	quotaCodes = map[string]bool{
		"InstanceLimitExceeded":        true,
		"VcpuLimitExceeded":            true,
		"MaxSpotInstanceCountExceeded": true,
	}
	capacityCodes = map[string]bool{
		"InsufficientInstanceCapacity":         true,
		"InsufficientHostCapacity":             true,
		"InsufficientCapacity":                 true,
		"InsufficientReservedInstanceCapacity": true,
		"SpotMaxPriceTooLow":                   true,
	}
	transientCodes = map[string]bool{
		"RequestLimitExceeded": true,
		"Throttling":           true,
		"ThrottlingException":  true,
		"SlowDown":             true,
		"InternalError":        true,
		"InternalFailure":      true,
		"ServiceUnavailable":   true,
		"Unavailable":          true,
	}
	notFoundCodes = map[string]bool{
		"InvalidInstanceID.NotFound": true,
		"InvalidAMIID.NotFound":      true,
		"InvalidAMIID.Unavailable":   true,
		"InvalidSnapshot.NotFound":   true,
		"InvalidVolume.NotFound":     true,
		"NoSuchKey":                  true,
	}
)

// classify wraps an SDK error (after the SDK's own retries) in the driver
// error kind its AWS error code calls for; notFound says whether a
// missing object means success to the caller (deletes). The message is
// the SDK's: operation, HTTP status, request id and AWS's message, never
// credentials.
func classify(err error, notFound bool, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	var ae smithy.APIError
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	switch {
	case quotaCodes[code]:
		return driver.QuotaError("%s: %w", msg, err)
	case capacityCodes[code]:
		return driver.CapacityError("%s: %w", msg, err)
	case notFound && notFoundCodes[code]:
		return driver.NotFoundError("%s: %w", msg, err)
	case transientCodes[code] || status >= 500:
		return driver.TransientError("%s: %w", msg, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}
