package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/nodepool-go/nodepool/driver"
)

// apiError is a Resource Manager error reduced to its code and message
// (the SDK's own message carries the whole request and response); it
// unwraps to the SDK's *azcore.ResponseError.
type apiError struct {
	re  *azcore.ResponseError
	msg string
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.re }

// capacityCodes are the error codes of a cloud without room for the VM.
var capacityCodes = map[string]bool{
	"SkuNotAvailable":                       true,
	"AllocationFailed":                      true,
	"ZonalAllocationFailed":                 true,
	"OverconstrainedAllocationRequest":      true,
	"OverconstrainedZonalAllocationRequest": true,
}

// quotaCodes are error codes that always mean a quota refusal; an
// OperationNotAllowed is one when its message speaks of quota.
var quotaCodes = map[string]bool{
	"QuotaExceeded":              true,
	"PublicIPCountLimitReached":  true,
	"NetworkInterfaceCountLimit": true,
}

// classify turns an SDK error into a driver error: quota refusals are
// quota errors, missing capacity a capacity error, throttling, 5xx and
// network failures transient, 404 not found; anything else keeps the
// cloud's code and message.
func classify(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf(format, args...)
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		msg := errorMessage(re)
		where := fmt.Sprintf("HTTP %d", re.StatusCode)
		if re.StatusCode < 400 {
			// A failed asynchronous operation, reported by its poll.
			where = "operation failed"
		}
		ae := &apiError{re: re, msg: fmt.Sprintf("%s: %s (%s): %s", what, re.ErrorCode, where, msg)}
		switch {
		case quotaCodes[re.ErrorCode] || (re.ErrorCode == "OperationNotAllowed" && strings.Contains(strings.ToLower(msg), "quota")):
			return driver.QuotaError("azure: %w", ae)
		case capacityCodes[re.ErrorCode]:
			return driver.CapacityError("azure: %w", ae)
		case re.StatusCode == http.StatusNotFound || re.ErrorCode == "ResourceNotFound" || re.ErrorCode == "NotFound":
			return driver.NotFoundError("azure: %w", ae)
		case re.StatusCode == http.StatusTooManyRequests || re.StatusCode == http.StatusRequestTimeout || re.StatusCode >= 500:
			return driver.TransientError("azure: %w", ae)
		}
		return fmt.Errorf("azure: %w", ae)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return driver.TransientError("azure: %s: %w", what, err)
	}
	return fmt.Errorf("azure: %s: %w", what, err)
}

// errorMessage returns error.message of the response body.
func errorMessage(re *azcore.ResponseError) string {
	if re.RawResponse == nil {
		return http.StatusText(re.StatusCode)
	}
	body, err := runtime.Payload(re.RawResponse)
	if err != nil || len(body) == 0 {
		return http.StatusText(re.StatusCode)
	}
	var v struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &v) == nil && v.Error.Message != "" {
		return v.Error.Message
	}
	return http.StatusText(re.StatusCode)
}

// isNotFound reports a 404 answer.
func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}
