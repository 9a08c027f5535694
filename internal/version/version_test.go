package version

import (
	"strings"
	"testing"
)

func TestStringPrefersTheStamp(t *testing.T) {
	if got := String(); !strings.HasPrefix(got, Version) {
		t.Errorf("unstamped test binary: %q does not start with %q", got, Version)
	}
	old := stamp
	defer func() { stamp = old }()
	stamp = "v9.8.7"
	if got := String(); got != "9.8.7" {
		t.Errorf("stamped: %q", got)
	}
}
