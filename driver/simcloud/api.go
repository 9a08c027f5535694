package simcloud

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/nodepool-go/nodepool/driver"
)

// latency returns the configured API latency.
func (c *Cloud) latency() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.knobs.APILatency
}

// wait applies the API latency to a blocking call.
func (c *Cloud) wait(ctx context.Context) error {
	if d := c.latency(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return ctx.Err()
}

// refreshLocked resolves a BUILD server whose boot time has passed.
func (c *Cloud) refreshLocked(s *Server, now time.Time) {
	if s.Status == StatusBuild && !s.Held && !now.Before(s.ReadyAt) {
		s.Status = StatusActive
	}
}

func (c *Cloud) removeLocked(id string) bool {
	s, ok := c.servers[id]
	if !ok {
		return false
	}
	c.usedCores -= s.Cores
	c.usedRAM -= s.RAM
	delete(c.servers, id)
	return true
}

// createRequest is what a create machine asks the cloud for.
type createRequest struct {
	name   string
	flavor Flavor
	image  string // cloud image name or uploaded image id
	// diskimage is set for diskimage labels, which need an image id.
	diskimage string
	az        string
	region    string
	metadata  map[string]string
}

// create runs a server create call and returns the new server's id. An
// error without an id means no server was created.
func (c *Cloud) create(r createRequest) (string, error) {
	hostKey := newHostKey() // outside the lock: the costliest step
	if k := c.hostKeyOverride(); k != "" {
		hostKey = k
	}
	c.lock()
	defer c.unlock()
	c.counters.Creates++
	k := &c.knobs
	if c.failCreate > 0 {
		c.failCreate--
		if c.failErr != nil {
			return "", c.failErr
		}
		return "", errors.New("simcloud: injected create failure")
	}
	if r.image == "" && r.diskimage != "" {
		return "", fmt.Errorf("simcloud: no uploaded image given for diskimage %s", r.diskimage)
	}
	if r.image != "" && c.findImageLocked(r.image) == nil {
		return "", fmt.Errorf("simcloud: image %q not found", r.image)
	}
	q := k.Quota
	switch {
	case q.Instances >= 0 && len(c.servers)+1 > q.Instances:
		return "", driver.QuotaError("Quota exceeded for instances: Requested 1, but already used %d of %d instances", len(c.servers), q.Instances)
	case q.Cores >= 0 && c.usedCores+r.flavor.Cores > q.Cores:
		return "", driver.QuotaError("Quota exceeded for cores: Requested %d, but already used %d of %d cores", r.flavor.Cores, c.usedCores, q.Cores)
	case q.RAM >= 0 && c.usedRAM+r.flavor.RAM > q.RAM:
		return "", driver.QuotaError("Quota exceeded for ram: Requested %d, but already used %d of %d ram", r.flavor.RAM, c.usedRAM, q.RAM)
	}
	az := r.az
	if len(k.AZs) > 0 {
		if az == "" {
			az = k.AZs[int(c.seq)%len(k.AZs)]
		} else if !contains(k.AZs, az) {
			return "", driver.CapacityError("availability zone %q is not available", az)
		}
	}
	now := c.now()
	boot := k.BootTimeMin
	if k.BootTimeMax > k.BootTimeMin {
		boot += time.Duration(mrand.Int64N(int64(k.BootTimeMax-k.BootTimeMin) + 1))
	}
	s := &Server{
		ID:       uuid.NewString(),
		Name:     r.name,
		Status:   StatusBuild,
		Metadata: copyMap(r.metadata),
		Flavor:   r.flavor.Name,
		Cores:    r.flavor.Cores,
		RAM:      r.flavor.RAM,
		Image:    r.image,
		AZ:       az,
		Region:   r.region,
		Created:  now,
		ReadyAt:  now.Add(boot),
		Held:     c.hang,
		HostKey:  hostKey,
	}
	if c.failWithID > 0 {
		c.failWithID--
		s.Status, s.Fault, s.Held = StatusError, "injected failure", false
	} else if k.CreateFailureRate > 0 && mrand.Float64() < k.CreateFailureRate {
		s.Status, s.Fault, s.Held = StatusError, "random failure", false
	}
	c.fillAddressesLocked(s)
	c.servers[s.ID] = s
	c.usedCores += s.Cores
	c.usedRAM += s.RAM
	c.saveLocked()
	return s.ID, nil
}

// poll returns a copy of a server with its current status.
func (c *Cloud) poll(id string) (Server, bool) {
	c.lock()
	defer c.unlock()
	s, ok := c.servers[id]
	if !ok {
		return Server{}, false
	}
	c.refreshLocked(s, c.now())
	return *s, true
}

// deleteServer runs a server delete call.
func (c *Cloud) deleteServer(id string) error {
	c.lock()
	defer c.unlock()
	c.counters.Deletes++
	if _, ok := c.servers[id]; !ok {
		return driver.NotFoundError("server %s not found", id)
	}
	if c.failDelete > 0 {
		c.failDelete--
		return errors.New("simcloud: injected delete failure")
	}
	if r := c.knobs.DeleteFailureRate; r > 0 && mrand.Float64() < r {
		return errors.New("simcloud: random delete failure")
	}
	c.removeLocked(id)
	c.saveLocked()
	return nil
}

// upload stores an uploaded image.
func (c *Cloud) upload(spec driver.UploadSpec) (string, error) {
	c.lock()
	defer c.unlock()
	c.counters.Uploads++
	if spec.Metadata["SHOULD_FAIL"] == "true" {
		return "", errors.New("simcloud: image upload failed (SHOULD_FAIL)")
	}
	if c.failUpload > 0 {
		c.failUpload--
		return "", errors.New("simcloud: injected upload failure")
	}
	im := &Image{
		ID:        uuid.NewString(),
		Name:      spec.ImageName,
		Format:    spec.Format,
		Diskimage: spec.Diskimage,
		Metadata:  copyMap(spec.Metadata),
		Status:    "active",
		Created:   c.now(),
	}
	c.images[im.ID] = im
	c.saveLocked()
	return im.ID, nil
}

// deleteImage runs an image delete call.
func (c *Cloud) deleteImage(id string) error {
	c.lock()
	defer c.unlock()
	c.counters.ImageDeletes++
	if _, ok := c.images[id]; !ok {
		return driver.NotFoundError("image %s not found", id)
	}
	if c.failImgDel > 0 {
		c.failImgDel--
		return errors.New("simcloud: injected image delete failure")
	}
	delete(c.images, id)
	c.saveLocked()
	return nil
}

// seed adds leaked or foreign instances once per key.
func (c *Cloud) seed(key string, n int, mk func(i int) Server) {
	c.lock()
	done := c.seeded[key]
	c.seeded[key] = true
	c.saveLocked()
	c.unlock()
	if done {
		return
	}
	for i := 0; i < n; i++ {
		c.AddInstance(mk(i))
	}
}

// fillAddressesLocked gives a server addresses, a host id and a host key.
func (c *Cloud) fillAddressesLocked(s *Server) {
	c.seq++
	n := c.seq
	if s.PublicIPv4 == "" {
		s.PublicIPv4 = fmt.Sprintf("203.0.113.%d", (n-1)%254+1)
	}
	if s.PublicIPv6 == "" {
		s.PublicIPv6 = fmt.Sprintf("2001:db8::%x", n)
	}
	if s.PrivateIPv4 == "" {
		s.PrivateIPv4 = fmt.Sprintf("10.%d.%d.%d", (n>>16)&255, (n>>8)&255, n&255)
	}
	if s.HostID == "" {
		h := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/host%d", c.name, s.Region, n%16)))
		s.HostID = hex.EncodeToString(h[:28])
	}
	if s.HostKey == "" {
		s.HostKey = newHostKey()
	}
}

// newHostKey returns a fresh ed25519 public key in authorized_keys form
// ("ssh-ed25519 AAAA..."), encoded as RFC 8709 describes.
func newHostKey() string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	const algo = "ssh-ed25519"
	buf := make([]byte, 0, 4+len(algo)+4+len(pub))
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(algo)))
	buf = append(buf, algo...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(pub)))
	buf = append(buf, pub...)
	return algo + " " + base64.StdEncoding.EncodeToString(buf)
}
