// Package openstack is the OpenStack driver on
// gophercloud v2: credentials come from clouds.yaml by the provider's
// cloud name and region; servers are created and deleted by resumable
// machines whose API calls run on a small worker pool, and whose polling
// shares one cached server listing. The module's tests run it against
// internal/fakeopenstack, an in-process fake of the OpenStack APIs.
package openstack

import (
	"time"

	"github.com/nodepool-go/nodepool/driver"
)

// Name is the driver's registered name.
const Name = "openstack"

// Defaults of the OpenStack provider keys.
const (
	DefaultLaunchTimeout       = 3600
	DefaultBootTimeout         = 60
	DefaultRate                = 1.0
	DefaultHostnameFormat      = "{label.name}-{provider.name}-{node.id}"
	DefaultImageNameFormat     = "{image_name}-{timestamp}"
	DefaultPortCleanupInterval = 600 * time.Second
	DefaultVolumeSize          = 50
	// DefaultImageFormat is the upload format of a cloud whose clouds.yaml
	// entry sets no image_format.
	DefaultImageFormat = "qcow2"
)

// Driver parses OpenStack providers.
type Driver struct{}

func init() { driver.Register(Name, Driver{}) }

// ProviderSettings are the OpenStack-only provider keys
// (ProviderConfig.Settings).
type ProviderSettings struct {
	Cloud               string        // cloud: the clouds.yaml entry
	RegionName          string        // region-name
	Rate                float64       // seconds between API calls
	HostnameFormat      string        // hostname-format
	ImageNameFormat     string        // image-name-format
	PostUploadHook      string        // post-upload-hook executable
	CleanFloatingIPs    bool          // clean-floating-ips: delete unattached ones
	PortCleanupInterval time.Duration // 0 disables
	CloudImages         []*CloudImage // cloud-images entries
}

// UploadNameFormat returns image-name-format, the template of uploaded
// images' names (the builder's ImageNameFormatter).
func (s *ProviderSettings) UploadNameFormat() string { return s.ImageNameFormat }

// UploadHook returns post-upload-hook, the executable the builder runs
// after each upload (its PostUploadHooker).
func (s *ProviderSettings) UploadHook() string { return s.PostUploadHook }

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
	ImageID        string // image-id: use this image id
	ImageName      string // "" = look up by Name unless ImageID is set
	ConfigDrive    *bool  // config-drive (nil = unset)
	Username       string // login user of its nodes
	PythonPath     string // python-path of its nodes
	ShellType      string // shell-type of its nodes
	ConnectionType string // connection-type of its nodes
	ConnectionPort int    // connection-port of its nodes
}

// LookupName returns the name to search the cloud's images for.
func (c *CloudImage) LookupName() string {
	if c.ImageName != "" {
		return c.ImageName
	}
	return c.Name
}

// DiskimageSettings are the OpenStack keys of a provider diskimage
// (ProviderDiskimage.Settings); meta is ProviderDiskimage.Meta.
type DiskimageSettings struct {
	ConfigDrive *bool // config-drive (nil = unset)
}

// PoolSettings are the OpenStack pool keys (PoolConfig.Settings).
type PoolSettings struct {
	Networks       []string // networks to attach
	SecurityGroups []string // security-groups
	AutoFloatingIP bool     // auto-floating-ip
}

// LabelSettings are the OpenStack label keys (LabelConfig.Settings).
type LabelSettings struct {
	FlavorName                string            // flavor-name: name or id (with MinRAM: part of the name)
	MinRAM                    int               // min-ram (MiB): the first flavor with as much
	KeyName                   string            // key-name
	ConsoleLog                bool              // console-log (parsed; this driver logs no console output)
	BootFromVolume            bool              // boot-from-volume
	VolumeSize                int               // GB
	InstanceProperties        map[string]string // instance-properties (server metadata)
	DynamicInstanceProperties map[string]string // dynamic-instance-properties (templates)
	Userdata                  string            // userdata
	Networks                  []string          // overrides the pool's when non-nil
}

// ParseProvider parses an OpenStack provider.
func (Driver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	strict := s.Problems().Strict
	p := driver.ParseProviderCommon(s)
	p.Driver = Name
	p.ManageImages = true
	driver.ParseTimeouts(s, p, DefaultLaunchTimeout, DefaultBootTimeout)
	st := &ProviderSettings{
		Cloud:               s.RequiredString("cloud"),
		RegionName:          s.String("region-name", ""),
		Rate:                s.Float("rate", DefaultRate),
		HostnameFormat:      s.String("hostname-format", DefaultHostnameFormat),
		ImageNameFormat:     s.String("image-name-format", DefaultImageNameFormat),
		PostUploadHook:      s.String("post-upload-hook", ""),
		CleanFloatingIPs:    s.Bool("clean-floating-ips", false),
		PortCleanupInterval: time.Duration(s.Int("port-cleanup-interval", int(DefaultPortCleanupInterval/time.Second))) * time.Second,
	}
	s.Ignore("nodepool-id") // deprecated
	p.Settings = st
	// As upstream, the upload (and so the build) format comes from the
	// cloud's clouds.yaml entry.
	p.ImageFormat = cloudImageFormat(st.Cloud)

	for _, cs := range s.List("cloud-images") {
		ci := &CloudImage{
			Name:           cs.RequiredString("name"),
			ImageID:        cs.String("image-id", ""),
			ImageName:      cs.String("image-name", ""),
			Username:       cs.String("username", ""),
			PythonPath:     cs.String("python-path", "auto"),
			ShellType:      cs.String("shell-type", ""),
			ConnectionType: cs.String("connection-type", "ssh"),
		}
		if cs.Has("config-drive") {
			v := cs.Bool("config-drive", false)
			ci.ConfigDrive = &v
		}
		ci.ConnectionPort = cs.Int("connection-port", driver.DefaultPort(ci.ConnectionType))
		if cs.Has("image-id") && cs.Has("image-name") {
			cs.Errorf("image-name", "two or more values in the same group of exclusion 'cloud-image-name-or-id': image-id and image-name")
		}
		cs.Finish()
		st.CloudImages = append(st.CloudImages, ci)
	}

	for _, ds := range s.List("diskimages") {
		d := &driver.ProviderDiskimage{
			Name:           ds.RequiredString("name"),
			Pause:          ds.Bool("pause", false),
			ConnectionType: ds.String("connection-type", "ssh"),
			Meta:           ds.StringMap("meta"),
		}
		d.ConnectionPort = ds.Int("connection-port", driver.DefaultPort(d.ConnectionType))
		dst := &DiskimageSettings{}
		if ds.Has("config-drive") {
			v := ds.Bool("config-drive", false)
			dst.ConfigDrive = &v
		}
		d.Settings = dst
		ds.Finish()
		p.Diskimages = append(p.Diskimages, d)
	}

	for _, ps := range s.List("pools") {
		pool := driver.ParsePoolCommon(ps)
		pool.MaxCores = ps.Limit("max-cores")
		pool.MaxRAM = ps.Limit("max-ram")
		pool.MaxVolumes = ps.Limit("max-volumes")
		pool.MaxVolumeGB = ps.Limit("max-volume-gb")
		pool.IgnoreProviderQuota = ps.Bool("ignore-provider-quota", false)
		pool.AZs = ps.StringList("availability-zones")
		pool.HostKeyChecking = ps.Bool("host-key-checking", true)
		pst := &PoolSettings{
			Networks:       ps.StringList("networks"),
			SecurityGroups: ps.StringList("security-groups"),
			AutoFloatingIP: ps.Bool("auto-floating-ip", true),
		}
		pool.Settings = pst
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

func parseLabel(ls *driver.Section, p *driver.ProviderConfig, st *ProviderSettings, pool *driver.PoolConfig, strict bool) *driver.LabelConfig {
	if !ls.Exists() {
		return nil
	}
	l := &driver.LabelConfig{
		Name:            ls.RequiredString("name"),
		Diskimage:       ls.String("diskimage", ""),
		CloudImage:      ls.String("cloud-image", ""),
		HostKeyChecking: ls.Bool("host-key-checking", pool.HostKeyChecking),
	}
	lst := &LabelSettings{
		FlavorName:                ls.String("flavor-name", ""),
		MinRAM:                    ls.Int("min-ram", 0),
		KeyName:                   ls.String("key-name", ""),
		ConsoleLog:                ls.Bool("console-log", false),
		BootFromVolume:            ls.Bool("boot-from-volume", false),
		VolumeSize:                ls.Int("volume-size", DefaultVolumeSize),
		InstanceProperties:        ls.StringMap("instance-properties"),
		DynamicInstanceProperties: ls.StringMap("dynamic-instance-properties"),
		Userdata:                  ls.String("userdata", ""),
		Networks:                  ls.StringList("networks"),
	}
	l.Settings = lst
	if l.Diskimage != "" && l.CloudImage != "" {
		ls.Errorf("cloud-image", "two or more values in the same group of exclusion 'label-image': diskimage and cloud-image")
	}
	if !ls.Has("min-ram") && !ls.Has("flavor-name") {
		ls.Errorf("", "one of min-ram or flavor-name is required")
	}
	if !strict && l.Diskimage == "" && l.CloudImage == "" {
		ls.Errorf("", "one of diskimage or cloud-image is required")
	}
	switch {
	case l.CloudImage != "":
		ci := st.CloudImage(l.CloudImage)
		if ci == nil {
			if !strict {
				ls.Errorf("cloud-image", "cloud-image %s does not exist in provider %s but is referenced in label %s", l.CloudImage, p.Name, l.Name)
			}
			break
		}
		l.Username = ci.Username
		l.PythonPath = ci.PythonPath
		l.ShellType = ci.ShellType
		l.ConnectionType = ci.ConnectionType
		l.ConnectionPort = ci.ConnectionPort
	case l.Diskimage != "":
		// Username, python-path and shell-type come from the top-level
		// diskimage (filled in by the config loader).
		l.ConnectionType, l.ConnectionPort = "ssh", 22
		if d := p.Diskimage(l.Diskimage); d != nil {
			l.ConnectionType, l.ConnectionPort = d.ConnectionType, d.ConnectionPort
		}
	}
	ls.Finish()
	return l
}
