package simcloud

import (
	"time"
)

// FailNextCreates makes the next n create calls fail with a generic error
// before any server exists.
func (c *Cloud) FailNextCreates(n int) { c.FailNextCreatesWith(n, nil) }

// FailNextCreatesWith makes the next n create calls fail with err (e.g. a
// driver.TransientError) before any server exists; nil means a generic
// error.
func (c *Cloud) FailNextCreatesWith(n int, err error) {
	c.mu.Lock()
	c.failCreate, c.failErr = n, err
	c.mu.Unlock()
}

// FailNextCreatesWithID makes the next n created servers go to ERROR: the
// machine learns the server's id, then fails with metric "error.status".
func (c *Cloud) FailNextCreatesWithID(n int) { c.mu.Lock(); c.failWithID = n; c.mu.Unlock() }

// FailNextDeletes makes the next n server delete calls fail.
func (c *Cloud) FailNextDeletes(n int) { c.mu.Lock(); c.failDelete = n; c.mu.Unlock() }

// FailNextUploads makes the next n image uploads fail.
func (c *Cloud) FailNextUploads(n int) { c.mu.Lock(); c.failUpload = n; c.mu.Unlock() }

// FailNextImageDeletes makes the next n image deletes fail.
func (c *Cloud) FailNextImageDeletes(n int) { c.mu.Lock(); c.failImgDel = n; c.mu.Unlock() }

// SetCreateHang holds new servers in BUILD while on; turning it off
// releases every held server.
func (c *Cloud) SetCreateHang(on bool) {
	c.lock()
	defer c.unlock()
	c.hang = on
	if !on {
		for _, s := range c.servers {
			s.Held = false
		}
		c.saveLocked()
	}
}

// SetQuota sets the cloud's limits; a negative value is unlimited.
func (c *Cloud) SetQuota(instances, cores, ram int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.knobs.Quota = Quota{Instances: instances, Cores: cores, RAM: ram}
}

// SetListError makes ListInstances and ListResources fail with err (nil
// clears it).
func (c *Cloud) SetListError(err error) { c.mu.Lock(); c.listErr = err; c.mu.Unlock() }

// SetLatency sets the time every API call takes.
func (c *Cloud) SetLatency(d time.Duration) { c.mu.Lock(); c.knobs.APILatency = d; c.mu.Unlock() }

// SetBootTime sets the BUILD→ACTIVE time range of new servers.
func (c *Cloud) SetBootTime(lo, hi time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hi < lo {
		hi = lo
	}
	c.knobs.BootTimeMin, c.knobs.BootTimeMax = lo, hi
}

// SetFailureRates sets the probabilities (0..1) of a create or delete
// call failing.
func (c *Cloud) SetFailureRates(create, del float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.knobs.CreateFailureRate, c.knobs.DeleteFailureRate = create, del
}

// SetAZs sets the availability zones (none: any requested zone is
// accepted).
func (c *Cloud) SetAZs(azs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.knobs.AZs = append([]string(nil), azs...)
}

// AZs returns the availability zones.
func (c *Cloud) AZs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.knobs.AZs...)
}

// Quota returns the cloud's limits.
func (c *Cloud) Quota() Quota {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.knobs.Quota
}

// Counters returns the call counters.
func (c *Cloud) Counters() Counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counters
}

// SaveError returns the error of the last state-file write, if any.
func (c *Cloud) SaveError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.saveErr
}

// SetHostKey makes servers created from now on report key as their SSH
// host key ("" restores fresh keys), e.g. to play a hostile server.
func (c *Cloud) SetHostKey(key string) { c.mu.Lock(); c.hostKey = key; c.mu.Unlock() }

func (c *Cloud) hostKeyOverride() string { c.mu.Lock(); defer c.mu.Unlock(); return c.hostKey }

// SetImageLookupError makes image lookups (a label's cloud image) fail
// with err, as a cloud refusing authentication does (nil restores them).
func (c *Cloud) SetImageLookupError(err error) { c.mu.Lock(); c.imageErr = err; c.mu.Unlock() }

func (c *Cloud) imageLookupError() error { c.mu.Lock(); defer c.mu.Unlock(); return c.imageErr }
