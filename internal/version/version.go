// Package version holds the release written into component registrations
// and printed by the binaries' --version.
package version

import (
	"runtime/debug"
	"strings"
)

// Version is the release this source tree is, used when the build carries
// no better information.
const Version = "0.1.0"

// stamp is set at link time by release builds:
//
//	go build -ldflags "-X github.com/nodepool-go/nodepool/internal/version.stamp=v1.2.3"
var stamp string

// String returns the version of the running binary: the value stamped at
// link time; else the module version Go recorded when the binary was built
// as a dependency or with `go install module@version`; else Version with
// the VCS revision of the source tree (and "-dirty" when it had
// uncommitted changes) when Go recorded one; else Version.
func String() string {
	if stamp != "" {
		return strings.TrimPrefix(stamp, "v")
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" && !strings.Contains(v, "+dirty") && !strings.HasPrefix(v, "v0.0.0-") {
		return strings.TrimPrefix(v, "v")
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return Version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return Version + "+g" + rev + dirty
}
