package gce

import (
	"time"

	"google.golang.org/api/option"
)

// Override makes adapters opened from now on use the client options opts
// and list every ttl, for tests that reach the in-process fake; the
// returned function restores the production behaviour.
func Override(opts []option.ClientOption, ttl time.Duration) (restore func()) {
	overrides.Lock()
	defer overrides.Unlock()
	overrides.opts, overrides.ttl = opts, ttl
	return func() {
		overrides.Lock()
		defer overrides.Unlock()
		overrides.opts, overrides.ttl = nil, 0
	}
}
