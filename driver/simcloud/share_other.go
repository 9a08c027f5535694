//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package simcloud

import "os"

// Without flock a state file is shared safely by one process only.
func lockFile(*os.File) error   { return nil }
func unlockFile(*os.File) error { return nil }
