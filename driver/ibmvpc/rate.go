package ibmvpc

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// rateTransport spaces the provider's API calls at least interval apart
// (the provider's rate is in calls per second); the first call is
// immediate. Every service of the provider shares one limit. A listing
// counts as one call: its further pages (requests with a start parameter)
// follow at once, as upstream limits a paginated listing as a whole.
type rateTransport struct {
	base     http.RoundTripper
	interval time.Duration

	mu    sync.Mutex
	next  time.Time
	calls int64 // requests sent, for measurements
}

func newRateTransport(base http.RoundTripper, interval time.Duration) *rateTransport {
	return &rateTransport{base: base, interval: interval}
}

// RoundTrip waits for the provider's turn, then sends the request.
func (t *rateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && r.URL.Query().Has("start") {
		t.count()
		return t.base.RoundTrip(r)
	}
	if err := t.wait(r.Context()); err != nil {
		return nil, err
	}
	return t.base.RoundTrip(r)
}

// Calls returns the number of requests sent so far.
func (t *rateTransport) Calls() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls
}

func (t *rateTransport) count() {
	t.mu.Lock()
	t.calls++
	t.mu.Unlock()
}

func (t *rateTransport) wait(ctx context.Context) error {
	t.mu.Lock()
	t.calls++
	now := time.Now()
	at := t.next
	if at.Before(now) {
		at = now
	}
	t.next = at.Add(t.interval)
	t.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
