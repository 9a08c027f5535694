package azure

import (
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// UseTestTransport sends every request of adapters opened from now on
// through c, with quick retries, listings and polls.
func UseTestTransport(c *http.Client) {
	testClient = c
	testRetry = &policy.RetryOptions{MaxRetries: 3, RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 2 * time.Second}
	listTTL = 50 * time.Millisecond
	pollFrequency = 20 * time.Millisecond
}

// SetListTTL sets the age after which shared listings are refreshed and
// returns a function restoring the previous value.
func SetListTTL(d time.Duration) (restore func()) {
	old := listTTL
	listTTL = d
	return func() { listTTL = old }
}
