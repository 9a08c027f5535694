package gce

import (
	"net/http"
	"sync"
	"time"
)

// rateTransport spaces requests at least interval apart (the provider's
// rate); the first request is immediate and 0 means unlimited.
type rateTransport struct {
	base     http.RoundTripper
	interval time.Duration

	mu   sync.Mutex
	next time.Time
}

func newRateTransport(base http.RoundTripper, interval time.Duration) *rateTransport {
	return &rateTransport{base: base, interval: interval}
}

// RoundTrip waits for the request's turn, then sends it.
func (t *rateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.interval > 0 {
		t.mu.Lock()
		now := time.Now()
		at := t.next
		if at.Before(now) {
			at = now
		}
		t.next = at.Add(t.interval)
		t.mu.Unlock()
		if d := time.Until(at); d > 0 {
			timer := time.NewTimer(d)
			select {
			case <-r.Context().Done():
				timer.Stop()
				if r.Body != nil {
					_ = r.Body.Close()
				}
				return nil, r.Context().Err()
			case <-timer.C:
			}
		}
	}
	return t.base.RoundTrip(r)
}
