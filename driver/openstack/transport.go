package openstack

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
)

// rateTransport spaces API calls to each service (scheme, host and first
// path segment) at least interval apart, as openstacksdk's per-service
// rate limit does; the first call is immediate.
type rateTransport struct {
	base     http.RoundTripper
	interval time.Duration

	mu   sync.Mutex
	next map[string]time.Time
}

func newRateTransport(base http.RoundTripper, interval time.Duration) *rateTransport {
	return &rateTransport{base: base, interval: interval, next: map[string]time.Time{}}
}

func serviceKey(r *http.Request) string {
	p := strings.TrimPrefix(r.URL.Path, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		p = p[:i]
	}
	return r.URL.Scheme + "://" + r.URL.Host + "/" + p
}

// RoundTrip waits for the service's turn, then sends the request.
func (t *rateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.interval > 0 {
		if err := t.wait(r.Context(), serviceKey(r)); err != nil {
			return nil, err
		}
	}
	return t.base.RoundTrip(r)
}

func (t *rateTransport) wait(ctx context.Context, key string) error {
	t.mu.Lock()
	now := time.Now()
	at := t.next[key]
	if at.Before(now) {
		at = now
	}
	t.next[key] = at.Add(t.interval)
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
