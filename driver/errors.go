package driver

import (
	"errors"
	"fmt"
)

// Kind classifies a driver error; the launcher branches on it.
type Kind int

// Error kinds.
const (
	// KindUnknown is any other failure: the launch attempt counts as failed.
	KindUnknown Kind = iota
	// KindQuota: the cloud refused for quota. The node is aborted without
	// using up a retry and the pool pauses.
	KindQuota
	// KindCapacity: the cloud has no capacity now (e.g. no hosts in an
	// AZ). The attempt counts as failed, as any error does, and is
	// reported under the result key "error.capacity" (as upstream).
	KindCapacity
	// KindNotFound: the object does not exist (a delete is then complete).
	KindNotFound
	// KindTransient: a temporary failure worth retrying as is. The
	// launcher calls the create machine's Advance again after a pause
	// (0.5 s, doubling) up to 5 times in a row within one attempt, so the
	// machine must resume from the step that failed; one more counts as a
	// failed attempt. A failed delete is retried later in any case.
	KindTransient
)

// String returns a short description of the kind ("quota exceeded", ...).
func (k Kind) String() string {
	switch k {
	case KindQuota:
		return "quota exceeded"
	case KindCapacity:
		return "capacity unavailable"
	case KindNotFound:
		return "not found"
	case KindTransient:
		return "transient"
	}
	return "error"
}

// Error is a classified driver error. Metric, when set, is the statsd
// result key of a failed launch (e.g. "error.status").
type Error struct {
	Kind   Kind   // what the launcher does about it
	Metric string // statsd result key, e.g. "error.status"; "" for the default
	Err    error  // the underlying error
}

// Error returns the underlying error's message, or the kind's description.
func (e *Error) Error() string {
	if e.Err == nil {
		return e.Kind.String()
	}
	return e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func newErr(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Err: fmt.Errorf(format, args...)}
}

// QuotaError returns an error of kind KindQuota.
func QuotaError(format string, args ...any) error { return newErr(KindQuota, format, args...) }

// CapacityError returns an error of kind KindCapacity.
func CapacityError(format string, args ...any) error { return newErr(KindCapacity, format, args...) }

// NotFoundError returns an error of kind KindNotFound.
func NotFoundError(format string, args ...any) error { return newErr(KindNotFound, format, args...) }

// TransientError returns an error of kind KindTransient.
func TransientError(format string, args ...any) error { return newErr(KindTransient, format, args...) }

// WithMetric returns err tagged with a statsd result key.
func WithMetric(err error, metric string) error {
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.Metric = metric
		return &c
	}
	return &Error{Kind: KindUnknown, Metric: metric, Err: err}
}

// KindOf returns the kind of err (KindUnknown for unclassified errors).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindUnknown
}

// MetricOf returns the statsd result key of a failed launch.
func MetricOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Metric != "" {
		return e.Metric
	}
	switch KindOf(err) {
	case KindQuota:
		return "error.quota"
	case KindCapacity:
		return "error.capacity"
	}
	return "error.unknown"
}

// IsQuota reports whether err is a quota error.
func IsQuota(err error) bool { return KindOf(err) == KindQuota }

// IsCapacity reports whether err is a capacity error.
func IsCapacity(err error) bool { return KindOf(err) == KindCapacity }

// IsNotFound reports whether err is a not-found error.
func IsNotFound(err error) bool { return KindOf(err) == KindNotFound }

// IsTransient reports whether err is a transient error.
func IsTransient(err error) bool { return KindOf(err) == KindTransient }
