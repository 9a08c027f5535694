package cloudutil

import (
	"context"
	"sync"
	"time"
)

// Limiter spaces calls at least 1/rate seconds apart; the first call is
// immediate. A rate of 0 (or less) is unlimited.
type Limiter struct {
	interval time.Duration

	mu   sync.Mutex
	next time.Time
}

// NewLimiter returns a limiter allowing rate calls per second.
func NewLimiter(rate float64) *Limiter {
	l := &Limiter{}
	if rate > 0 {
		l.interval = time.Duration(float64(time.Second) / rate)
	}
	return l
}

// Wait blocks until the caller's turn, or until ctx ends.
func (l *Limiter) Wait(ctx context.Context) error {
	if l == nil || l.interval <= 0 {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	at := l.next
	if at.Before(now) {
		at = now
	}
	l.next = at.Add(l.interval)
	l.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
