// Package ibmvpc is the IBM Cloud VPC driver, built on IBM's VPC Go SDK
// (github.com/IBM/vpc-go-sdk) with the IBM Cloud Go SDK core for
// authentication (an API key exchanged for IAM tokens, or any other
// authenticator the core reads from a credentials file or the
// environment), IBM's platform-services SDK for resource groups and the
// Cloud Object Storage instance, and IBM's COS SDK for image uploads.
//
// IBM Cloud VPC has no atomic way to attach metadata to an instance, so
// ownership is recorded in resource groups: everything a pool creates
// lives in the resource group "np_<provider>_<pool>", images in
// "npimages_<provider>", and the node id is the instance's name
// ("np<node id>"; the instance name is also the node's external id). Images
// are named "npimage<upload id>-<build id>" (the build id lets leak cleanup
// tell two builds' uploads apart). Quota comes from instance profiles
// (vCPUs, and memory in MiB) and the provider's quota key, as the cloud
// reports no limits through its API.
//
// Tests run it against internal/fakeibmvpc, an in-process fake of the VPC,
// IAM, resource manager, resource controller and object storage APIs.
package ibmvpc

import (
	"strings"

	"github.com/nodepool-go/nodepool/driver"
)

// Name is the driver's registered name.
const Name = "ibmvpc"

// Defaults of the provider keys.
const (
	DefaultRate          = 1.0 // API calls per second
	DefaultLaunchTimeout = 3600
	DefaultBootTimeout   = 120
	DefaultImageFormat   = "qcow2"
	// ImageNameFormat is the fixed cloud name template of uploads.
	ImageNameFormat = "npimage{upload_id}"
)

// Driver parses IBM VPC providers and opens their adapters.
type Driver struct{}

func init() { driver.Register(Name, Driver{}) }

// ProviderSettings are the IBM VPC provider keys (ProviderConfig.Settings).
type ProviderSettings struct {
	VPC                string         // vpc: the VPC's name
	Region             string         // region, e.g. us-south
	Zone               string         // zone: default of the pools' zone
	Subnet             string         // subnet: default of the pools' subnet
	Quota              Quota          // quota: limits the cloud does not report
	PublicIPv4         bool           // public-ipv4: default of the pools'
	UseInternalIP      bool           // use-internal-ip: default of the pools'
	HostKeyChecking    bool           // host-key-checking: default of the pools'
	PostUploadHookPath string         // post-upload-hook executable
	Rate               float64        // rate: API calls per second (0 = unlimited)
	CredentialsFile    string         // credentials-file: IBM credentials file
	ObjectStorage      *ObjectStorage // object-storage (nil without)
	CloudImages        []*CloudImage  // cloud-images entries
}

// UploadNameFormat returns the cloud name template of uploads.
func (s *ProviderSettings) UploadNameFormat() string { return ImageNameFormat }

// UploadHook returns the post-upload-hook executable ("" for none).
func (s *ProviderSettings) UploadHook() string { return s.PostUploadHookPath }

// CloudImage returns the cloud image with the given name.
func (s *ProviderSettings) CloudImage(name string) *CloudImage {
	for _, c := range s.CloudImages {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Quota is the provider's quota key; nil fields are unlimited.
type Quota struct {
	Instances *int // instances
	Cores     *int // cores (vCPUs)
	RAM       *int // ram, in MiB
}

// ObjectStorage is the object-storage key: where diskimages are staged
// before they are imported.
type ObjectStorage struct {
	InstanceName string // instance-name: the Cloud Object Storage instance
	Endpoint     string // endpoint: the COS (S3) endpoint URL
	BucketName   string // bucket-name
}

// CloudImage is a cloud-images entry.
type CloudImage struct {
	Name           string       // the name labels refer to
	Username       string       // username of its nodes (required)
	Keys           []string     // keys: SSH key names to install
	ImageHref      string       // image-href
	ImageID        string       // image-id
	ImageName      string       // image-name
	ImageFilter    *ImageFilter // image-filter (nil without)
	PythonPath     string       // python-path of its nodes
	ShellType      string       // shell-type of its nodes
	ConnectionType string       // connection-type of its nodes
	ConnectionPort int          // connection-port of its nodes
}

// ImageFilter selects the first image whose listed attributes all match.
type ImageFilter struct {
	// OperatingSystem holds the operating-system keys, with the cloud's
	// attribute names (display_name, dedicated_host_only, ...) as keys and
	// the values as strings ("true"/"false" for dedicated-host-only).
	OperatingSystem map[string]string
	OwnerType       string // owner-type: "user" (private) or "provider" (public)
	Status          string // status, e.g. "available"
}

// DiskimageSettings are the IBM VPC keys of a provider diskimage
// (ProviderDiskimage.Settings).
type DiskimageSettings struct {
	OperatingSystem string // operating-system: the cloud's OS name for the import
	PythonPath      string // python-path ("" = the diskimage's)
	ShellType       string // shell-type ("" = the diskimage's)
}

// PoolSettings are the IBM VPC pool keys (PoolConfig.Settings).
type PoolSettings struct {
	Zone       string // zone instances are created in
	Subnet     string // subnet (name) of their primary interface
	PublicIPv4 bool   // public-ipv4: attach a floating IP
}

// LabelSettings are the IBM VPC label keys (LabelConfig.Settings).
type LabelSettings struct {
	Profile  string // profile: the instance profile, e.g. cx2-2x4
	UserData string // user-data
}

// ParseProvider parses an IBM VPC provider. Under config-validate (strict)
// only the schema is checked, as upstream's validator does; the checks that
// upstream makes while loading (zone and subnet known for each pool,
// max-servers present, labels naming existing images) apply when loading.
func (Driver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	strict := s.Problems().Strict
	p := driver.ParseProviderCommon(s)
	p.Driver = Name
	p.ManageImages = true
	driver.ParseTimeouts(s, p, DefaultLaunchTimeout, DefaultBootTimeout)
	if strings.Contains(p.Name, "_") {
		s.Warnf("name", "provider name %q contains an underscore; the provider cannot start (resource group names use underscores as separators)", p.Name)
	}
	st := &ProviderSettings{
		VPC:                s.RequiredString("vpc"),
		Region:             s.RequiredString("region"),
		Zone:               s.String("zone", ""),
		Subnet:             s.String("subnet", ""),
		PublicIPv4:         s.Bool("public-ipv4", false),
		UseInternalIP:      s.Bool("use-internal-ip", false),
		HostKeyChecking:    s.Bool("host-key-checking", true),
		PostUploadHookPath: s.String("post-upload-hook", ""),
		Rate:               s.Float("rate", DefaultRate),
		CredentialsFile:    s.String("credentials-file", ""),
	}
	// image-format is read when loading but is not part of the validator's
	// schema, so config-validate rejects it as an extra key.
	p.ImageFormat = DefaultImageFormat
	if !strict {
		p.ImageFormat = s.String("image-format", DefaultImageFormat)
	}
	if s.Has("quota") {
		qs := s.Map("quota")
		st.Quota = Quota{Instances: optInt(qs, "instances"), Cores: optInt(qs, "cores"), RAM: optInt(qs, "ram")}
		qs.Finish()
	}
	if s.Has("object-storage") {
		os := s.Map("object-storage")
		st.ObjectStorage = &ObjectStorage{
			InstanceName: os.RequiredString("instance-name"),
			Endpoint:     os.RequiredString("endpoint"),
			BucketName:   os.RequiredString("bucket-name"),
		}
		os.Finish()
	}
	p.Settings = st

	for _, cs := range s.List("cloud-images") {
		if ci := parseCloudImage(cs); ci != nil {
			st.CloudImages = append(st.CloudImages, ci)
		}
	}
	for _, ds := range s.List("diskimages") {
		d := &driver.ProviderDiskimage{
			Name:           ds.RequiredString("name"),
			Pause:          ds.Bool("pause", false),
			ConnectionType: ds.String("connection-type", "ssh"),
		}
		d.ConnectionPort = ds.Int("connection-port", driver.DefaultPort(d.ConnectionType))
		d.Settings = &DiskimageSettings{
			OperatingSystem: ds.RequiredString("operating-system"),
			PythonPath:      ds.String("python-path", ""),
			ShellType:       ds.String("shell-type", ""),
		}
		ds.Finish()
		p.Diskimages = append(p.Diskimages, d)
	}

	if !s.Has("pools") {
		s.Errorf("pools", "required key not provided")
	}
	for _, ps := range s.List("pools") {
		if pool := parsePool(ps, p, st, strict); pool != nil {
			p.Pools = append(p.Pools, pool)
		}
	}
	s.Finish()
	return p
}

func optInt(s *driver.Section, key string) *int {
	if !s.Has(key) {
		return nil
	}
	v := s.Int(key, 0)
	return &v
}

func parseCloudImage(cs *driver.Section) *CloudImage {
	if !cs.Exists() {
		return nil
	}
	ci := &CloudImage{
		Name:           cs.RequiredString("name"),
		Username:       cs.RequiredString("username"),
		Keys:           cs.StringList("keys"),
		ImageHref:      cs.String("image-href", ""),
		ImageID:        cs.String("image-id", ""),
		ImageName:      cs.String("image-name", ""),
		PythonPath:     cs.String("python-path", "auto"),
		ShellType:      cs.String("shell-type", ""),
		ConnectionType: cs.String("connection-type", "ssh"),
	}
	ci.ConnectionPort = cs.Int("connection-port", driver.DefaultPort(ci.ConnectionType))
	if cs.Has("image-filter") {
		ci.ImageFilter = parseImageFilter(cs.Map("image-filter"))
	}
	var given []string
	for _, k := range []string{"image-href", "image-id", "image-name", "image-filter"} {
		if cs.Has(k) {
			given = append(given, k)
		}
	}
	switch {
	case len(given) == 0:
		cs.Errorf("", `Provide either "image-filter", "image-href", "image-id", or "image-name" keys`)
	case len(given) > 1:
		cs.Errorf(given[1], "two or more values in the same group of exclusion 'spec': %s", strings.Join(given, " and "))
	}
	cs.Finish()
	return ci
}

func parseImageFilter(fs *driver.Section) *ImageFilter {
	f := &ImageFilter{
		OwnerType: fs.String("owner-type", ""),
		Status:    fs.String("status", ""),
	}
	if fs.Has("operating-system") {
		os := fs.Map("operating-system")
		f.OperatingSystem = map[string]string{}
		for _, k := range []string{"architecture", "display-name", "family", "href", "name", "vendor", "version"} {
			if os.Has(k) {
				f.OperatingSystem[strings.ReplaceAll(k, "-", "_")] = os.String(k, "")
			}
		}
		if os.Has("dedicated-host-only") {
			v := "false"
			if os.Bool("dedicated-host-only", false) {
				v = "true"
			}
			f.OperatingSystem["dedicated_host_only"] = v
		}
		os.Finish()
	}
	fs.Finish()
	return f
}

func parsePool(ps *driver.Section, p *driver.ProviderConfig, st *ProviderSettings, strict bool) *driver.PoolConfig {
	if !ps.Exists() {
		return nil
	}
	pool := driver.ParsePoolCommon(ps)
	if !strict && !ps.Has("max-servers") {
		ps.Errorf("max-servers", "required key not provided")
	}
	if strings.HasPrefix(pool.Name, "_") {
		ps.Errorf("name", "does not match regular expression [^_]+")
	} else if strings.Contains(pool.Name, "_") {
		ps.Warnf("name", "pool name %q contains an underscore; the provider cannot start (resource group names use underscores as separators)", pool.Name)
	}
	pool.UseInternalIP = ps.Bool("use-internal-ip", st.UseInternalIP)
	pool.HostKeyChecking = ps.Bool("host-key-checking", st.HostKeyChecking)
	pst := &PoolSettings{
		Zone:       ps.String("zone", st.Zone),
		Subnet:     ps.String("subnet", st.Subnet),
		PublicIPv4: ps.Bool("public-ipv4", st.PublicIPv4),
	}
	if !strict && pst.Zone == "" {
		ps.Errorf("zone", "Zone is required in provider or pool config")
	}
	if !strict && pst.Subnet == "" {
		ps.Errorf("subnet", "Subnet is required in provider or pool config")
	}
	if pst.Zone != "" {
		pool.AZs = []string{pst.Zone}
	}
	pool.Settings = pst
	if !ps.Has("labels") {
		ps.Errorf("labels", "required key not provided")
	}
	for _, ls := range ps.List("labels") {
		if l := parseLabel(ls, p, st, pool, strict); l != nil {
			pool.Labels = append(pool.Labels, l)
		}
	}
	ps.Finish()
	return pool
}

func parseLabel(ls *driver.Section, p *driver.ProviderConfig, st *ProviderSettings, pool *driver.PoolConfig, strict bool) *driver.LabelConfig {
	if !ls.Exists() {
		return nil
	}
	l := &driver.LabelConfig{
		Name:            ls.RequiredString("name"),
		CloudImage:      ls.String("cloud-image", ""),
		Diskimage:       ls.String("diskimage", ""),
		HostKeyChecking: pool.HostKeyChecking,
		Settings: &LabelSettings{
			Profile:  ls.RequiredString("profile"),
			UserData: ls.String("user-data", ""),
		},
	}
	if l.CloudImage != "" {
		if ci := st.CloudImage(l.CloudImage); ci != nil {
			l.Username = ci.Username
			l.PythonPath = ci.PythonPath
			l.ShellType = ci.ShellType
			l.ConnectionType = ci.ConnectionType
			l.ConnectionPort = ci.ConnectionPort
		} else if !strict {
			ls.Errorf("cloud-image", "cloud-image %s does not exist in provider %s but is referenced in label %s", l.CloudImage, p.Name, l.Name)
		}
	}
	if l.Diskimage != "" {
		// Username comes from the top-level diskimage (the loader fills
		// it, with python-path and shell-type); the provider entry's
		// python-path and shell-type override those on the nodes.
		if d := p.Diskimage(l.Diskimage); d != nil {
			l.ConnectionType, l.ConnectionPort = d.ConnectionType, d.ConnectionPort
		} else if !strict {
			ls.Errorf("diskimage", "diskimage %s does not exist in provider %s but is referenced in label %s", l.Diskimage, p.Name, l.Name)
		}
	}
	ls.Finish()
	return l
}
