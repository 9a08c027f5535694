package aws

import "time"

// SetTimings shortens the adapter's listing TTL and import polling for
// tests; the returned function restores them.
func SetTimings(list, poll time.Duration) func() {
	oldList, oldPoll := listTTL, importPoll
	listTTL, importPoll = list, poll
	return func() { listTTL, importPoll = oldList, oldPoll }
}
