// Package gce is the Google Compute Engine driver, built on the official
// Go client google.golang.org/api/compute/v1.
//
// A provider lives in one project, region and zone. Each node is one
// instance booted from a cloud image (an image id, or the newest image of
// an image family in an image project) with the label's machine type and
// a boot disk of the label's volume type and size; the cloud image's
// username and SSH key go into the instance metadata as "ssh-keys", next
// to the nodepool ownership keys. Create and delete machines submit the
// call, then wait on the zone operation and the instance's status through
// two listings shared by every machine of the provider (pending zone
// operations and instances), each fetched at most once every 5 seconds.
// Quota comes from the region's CPUS and INSTANCES quotas and the machine
// types' guest CPUs and memory (cached). Instances carrying this
// provider's metadata without a node are removed by leak cleanup. There
// is no diskimage upload.
//
// Credentials are Application Default Credentials, found by the client
// library (GOOGLE_APPLICATION_CREDENTIALS, gcloud's
// application_default_credentials.json, or the metadata server). The
// client library neither retries failed calls nor rate limits them: a
// throttled or 5xx answer is returned as a transient error, which the
// launcher retries with backoff, and every request, pages of listings
// included, is spaced by the provider's rate.
package gce

import (
	"time"

	"github.com/nodepool-go/nodepool/driver"
)

// Name is the driver's registered name.
const Name = "gce"

// Defaults of the provider's keys.
const (
	DefaultLaunchTimeout = 3600
	DefaultBootTimeout   = 60
	// DefaultRate is the rate key's default: API requests per second.
	DefaultRate = 2.0
	// DefaultRateLimit is the rate-limit key's default.
	DefaultRateLimit  = 1
	DefaultVolumeType = "pd-standard"
	DefaultVolumeSize = 10
)

// Driver parses and opens GCE providers.
type Driver struct{}

func init() { driver.Register(Name, Driver{}) }

// ProviderSettings are the GCE provider keys (ProviderConfig.Settings).
type ProviderSettings struct {
	Project string // project: the project instances are created in
	Region  string // region: whose quotas apply
	Zone    string // zone: where instances are created
	// Rate is the rate key (requests per second; 0 = unlimited). It is
	// read when loading only: config-validate refuses the key, as
	// upstream's schema does.
	Rate    float64
	RateSet bool // the rate key was given
	// RateLimit is the rate-limit key (requests per second; 0 =
	// unlimited); it applies when rate is not given.
	RateLimit    int
	RateLimitSet bool          // the rate-limit key was given
	CloudImages  []*CloudImage // cloud-images entries
}

// RequestsPerSecond returns the effective API rate: rate when given, else
// rate-limit when given, else DefaultRate. Zero means unlimited.
func (s *ProviderSettings) RequestsPerSecond() float64 {
	switch {
	case s.RateSet:
		return s.Rate
	case s.RateLimitSet:
		return float64(s.RateLimit)
	}
	return DefaultRate
}

// CloudImage returns the cloud image with the given name.
func (s *ProviderSettings) CloudImage(name string) *CloudImage {
	for _, c := range s.CloudImages {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// CloudImage is a cloud-images entry.
type CloudImage struct {
	Name           string // the name labels refer to
	ImageID        string // image-id: used as the boot disk's source image
	ImageProject   string // image-project of image-family
	ImageFamily    string // image-family: its newest image is used
	Username       string // username of its nodes (and of the ssh key)
	Key            string // key: an SSH public key added to the instance
	PythonPath     string // python-path of its nodes
	ShellType      string // shell-type of its nodes
	ConnectionType string // connection-type of its nodes
	ConnectionPort int    // connection-port of its nodes
}

// PoolSettings are the GCE pool keys (PoolConfig.Settings); the pool's
// use-internal-ip and host-key-checking are PoolConfig fields.
type PoolSettings struct{}

// LabelSettings are the GCE label keys (LabelConfig.Settings).
type LabelSettings struct {
	InstanceType string // instance-type: the machine type
	VolumeType   string // volume-type: the boot disk's type
	VolumeSize   int    // volume-size: the boot disk's size in GiB
}

// ParseProvider parses a GCE provider entry. Under config-validate
// (strict) it accepts exactly the keys of upstream's schema; when loading
// it also reads the keys upstream's loader reads beyond it (rate,
// launch-timeout, a pool's host-key-checking).
func (Driver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	strict := s.Problems().Strict
	p := driver.ParseProviderCommon(s)
	p.Driver = Name
	p.LaunchRetries = s.Int("launch-retries", 3)
	p.BootTimeout = time.Duration(s.Int("boot-timeout", DefaultBootTimeout)) * time.Second
	p.LaunchTimeout = DefaultLaunchTimeout * time.Second
	st := &ProviderSettings{
		Project:      s.RequiredString("project"),
		Region:       s.RequiredString("region"),
		Zone:         s.RequiredString("zone"),
		Rate:         DefaultRate,
		RateLimitSet: s.Has("rate-limit"),
		RateLimit:    s.Int("rate-limit", DefaultRateLimit),
	}
	if !strict {
		st.RateSet = s.Has("rate")
		st.Rate = s.Float("rate", DefaultRate)
		p.LaunchTimeout = time.Duration(s.Int("launch-timeout", DefaultLaunchTimeout)) * time.Second
	}
	if !strict && st.Rate < 0 {
		s.Errorf("rate", "must not be negative")
	}
	if !strict && st.RateLimit < 0 {
		s.Errorf("rate-limit", "must not be negative")
	}
	p.Settings = st

	for _, cs := range s.List("cloud-images") {
		if ci := parseCloudImage(cs, strict); ci != nil {
			st.CloudImages = append(st.CloudImages, ci)
		}
	}

	if strict && !s.Has("pools") {
		s.Errorf("pools", "required key not provided")
	}
	for _, ps := range s.List("pools") {
		if !ps.Exists() {
			continue
		}
		pool := driver.ParsePoolCommon(ps)
		pool.UseInternalIP = ps.Bool("use-internal-ip", false)
		pool.HostKeyChecking = true
		if !strict {
			pool.HostKeyChecking = ps.Bool("host-key-checking", true)
		}
		pool.Settings = &PoolSettings{}
		if strict && !ps.Has("labels") {
			ps.Errorf("labels", "required key not provided")
		}
		for _, ls := range ps.List("labels") {
			if l := parseLabel(ls, p, st, pool, strict); l != nil {
				pool.Labels = append(pool.Labels, l)
			}
		}
		ps.Finish()
		p.Pools = append(p.Pools, pool)
	}
	s.Finish()
	return p
}

func parseCloudImage(cs *driver.Section, strict bool) *CloudImage {
	if !cs.Exists() {
		return nil
	}
	ci := &CloudImage{
		ImageID:        cs.String("image-id", ""),
		ImageProject:   cs.String("image-project", ""),
		ImageFamily:    cs.String("image-family", ""),
		Username:       cs.String("username", ""),
		Key:            cs.String("key", ""),
		PythonPath:     cs.String("python-path", "auto"),
		ShellType:      cs.String("shell-type", ""),
		ConnectionType: cs.String("connection-type", "ssh"),
	}
	// Upstream's schema does not require a cloud image's name, but its
	// loader cannot do without one.
	if strict {
		ci.Name = cs.String("name", "")
	} else {
		ci.Name = cs.RequiredString("name")
	}
	ci.ConnectionPort = cs.Int("connection-port", driver.DefaultPort(ci.ConnectionType))
	cs.Finish()
	return ci
}

func parseLabel(ls *driver.Section, p *driver.ProviderConfig, st *ProviderSettings, pool *driver.PoolConfig, strict bool) *driver.LabelConfig {
	if !ls.Exists() {
		return nil
	}
	l := &driver.LabelConfig{
		Name:            ls.RequiredString("name"),
		CloudImage:      ls.RequiredString("cloud-image"),
		HostKeyChecking: pool.HostKeyChecking,
	}
	l.Settings = &LabelSettings{
		InstanceType: ls.RequiredString("instance-type"),
		VolumeType:   ls.String("volume-type", DefaultVolumeType),
		VolumeSize:   ls.Int("volume-size", DefaultVolumeSize),
	}
	if ci := st.CloudImage(l.CloudImage); ci != nil {
		l.Username = ci.Username
		l.PythonPath = ci.PythonPath
		l.ShellType = ci.ShellType
		l.ConnectionType = ci.ConnectionType
		l.ConnectionPort = ci.ConnectionPort
	} else if !strict && l.CloudImage != "" {
		ls.Errorf("cloud-image", "cloud-image %s does not exist in provider %s but is referenced in label %s", l.CloudImage, p.Name, l.Name)
	}
	ls.Finish()
	return l
}
