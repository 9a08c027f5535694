package simcloud

import (
	"os"
	"path/filepath"
)

// A state file may be opened by several processes at once (two launcher
// processes serving one provider, a test reading what a launcher made).
// Every call touching servers or images then holds an exclusive lock on
// "<state-file>.lock" and first re-reads the file when another process
// wrote it since, so the processes see one cloud and never overwrite each
// other's servers. A process killed while holding the lock loses it with
// its file descriptors.

// lock takes the cloud's mutex and, with a state file, the file lock.
func (c *Cloud) lock() {
	c.mu.Lock()
	_ = c.lockFileLocked()
}

// unlock releases what lock took.
func (c *Cloud) unlock() {
	c.unlockFileLocked()
	c.mu.Unlock()
}

// lockFileLocked locks the state file shared with other processes and
// reloads it when it changed; it returns the error of that reload.
func (c *Cloud) lockFileLocked() error {
	path := c.knobs.StateFile
	if path == "" {
		return nil
	}
	if c.flock == nil || c.flockPath != path {
		if c.flock != nil {
			_ = c.flock.Close()
			c.flock = nil
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return err
		}
		c.flock, c.flockPath = f, path
	}
	if err := lockFile(c.flock); err != nil {
		return err
	}
	c.flocked = true
	fi, err := os.Stat(path)
	if err != nil || !c.changedSince(fi) {
		return nil
	}
	return c.loadLocked(path)
}

func (c *Cloud) unlockFileLocked() {
	if c.flocked {
		c.flocked = false
		_ = unlockFile(c.flock)
	}
}

// changedSince reports whether the state file is not the one this cloud
// last read or wrote.
func (c *Cloud) changedSince(fi os.FileInfo) bool {
	s := c.seen
	return s == nil || !os.SameFile(fi, s) || fi.Size() != s.Size() || !fi.ModTime().Equal(s.ModTime())
}

// noteFile remembers the state file as this cloud last read or wrote it.
func (c *Cloud) noteFile(path string) {
	if fi, err := os.Stat(path); err == nil {
		c.seen = fi
	}
}
