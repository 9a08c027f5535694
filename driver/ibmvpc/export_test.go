package ibmvpc

import "time"

// SetTimings shortens the listing TTL and the image poll interval for the
// tests of this directory (the end-to-end test is an external package).
func SetTimings(list, imagePoll time.Duration) {
	listTTL, imagePollInterval = list, imagePoll
}
