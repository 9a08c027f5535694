// Package version holds the release written into component registrations
// and printed by the binaries' --version.
package version

// Version is this release.
const Version = "0.1.0"
