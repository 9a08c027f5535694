// Package aws is the AWS driver: nodes are EC2 instances (on demand or
// spot) launched from AMIs found by id or by image filters, or from
// diskimages the builder uploads to an S3 bucket and imports as a
// snapshot (then registered as an AMI) or as an image. Quota comes from
// Service Quotas by instance family, costs from DescribeInstanceTypes.
// Leaked instances, volumes, AMIs, snapshots and S3 objects are found by
// their nodepool tags.
//
// It talks to AWS only through aws-sdk-go-v2 (ec2, s3, servicequotas,
// with the s3 upload manager for image files): credentials, region
// resolution, endpoints, signing, retries with backoff and pagination are
// the SDK's. What the SDK offers no waiter for (an import task that can
// end deleted) is polled.
package aws

import (
	"fmt"
	"math"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
)

// Name is the driver's registered name.
const Name = "aws"

// Defaults of the provider keys.
const (
	DefaultLaunchTimeout = 3600
	DefaultBootTimeout   = 180
	DefaultRate          = 2.0
	DefaultImageFormat   = "raw"
	DefaultArchitecture  = "x86_64"
	DefaultVolumeType    = "gp2"
)

// ImageFormats are the accepted image-format values.
var ImageFormats = []string{"ova", "vhd", "vhdx", "vmdk", "raw"}

// Driver parses AWS providers.
type Driver struct{}

func init() { driver.Register(Name, Driver{}) }

// ProviderSettings are the AWS provider keys (ProviderConfig.Settings).
type ProviderSettings struct {
	RegionName         string        // region-name (required)
	ProfileName        string        // profile-name of the AWS credentials
	Rate               float64       // mutating calls per second
	PostUploadHookPath string        // post-upload-hook executable
	HostnameFormat     string        // hostname-format (parsed, unused: instances are named np<id>)
	BucketName         string        // object-storage.bucket-name
	CloudImages        []*CloudImage // cloud-images entries
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

// ImageFilter is one image-filters entry.
type ImageFilter struct {
	Name   string   // the EC2 filter name
	Values []string // values it may take
}

// CloudImage is a cloud-images entry.
type CloudImage struct {
	Name           string        // the name labels refer to
	ImageID        string        // image-id ("" when filters are used)
	ImageFilters   []ImageFilter // image-filters
	Username       string        // login user of its nodes
	PythonPath     string        // python-path of its nodes
	ShellType      string        // shell-type of its nodes
	ConnectionType string        // connection-type of its nodes
	ConnectionPort int           // connection-port of its nodes
}

// DiskimageSettings are the AWS keys of a provider diskimage
// (ProviderDiskimage.Settings); tags are ProviderDiskimage.Meta.
type DiskimageSettings struct {
	Username     string // "" = the top-level diskimage's
	PythonPath   string // "" = the top-level diskimage's
	ShellType    string // "" = the top-level diskimage's
	Architecture string // architecture (default x86_64)
	ENASupport   bool   // ena-support
	VolumeType   string // volume-type (default gp2)
	VolumeSize   int    // GB, 0 = unset
	ImportMethod string // import-method ("snapshot", "image", "ebs-direct")
	IOPS         int    // iops of the volume (0 = unset)
	Throughput   int    // throughput of the volume (0 = unset)
}

// PoolSettings are the AWS pool keys (PoolConfig.Settings).
type PoolSettings struct {
	SubnetID        string // subnet-id
	SecurityGroupID string // security-group-id
	PublicIPv4      bool   // public-ipv4: attach a public IPv4 address
	PublicIPv6      bool   // public-ipv6: attach a public IPv6 address
}

// IAMInstanceProfile is a label's iam-instance-profile (name XOR arn).
type IAMInstanceProfile struct {
	Name string // profile name
	ARN  string // profile ARN
}

// LabelSettings are the AWS label keys (LabelConfig.Settings).
type LabelSettings struct {
	InstanceType       string              // instance-type
	KeyName            string              // key-name
	EBSOptimized       bool                // ebs-optimized
	VolumeType         string              // volume-type
	VolumeSize         int                 // volume-size (GB)
	IOPS               int                 // iops
	Throughput         int                 // throughput
	Userdata           string              // userdata
	IAMInstanceProfile *IAMInstanceProfile // iam-instance-profile (nil for none)
	Tags               map[string]string   // tags
	DynamicTags        map[string]string   // dynamic-tags (templates)
	UseSpot            bool                // use-spot: request spot instances
}

// ParseProvider parses an AWS provider (drivers.md B6).
func (Driver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	strict := s.Problems().Strict
	p := driver.ParseProviderCommon(s)
	p.Driver = Name
	p.ManageImages = true
	driver.ParseTimeouts(s, p, DefaultLaunchTimeout, DefaultBootTimeout)
	st := &ProviderSettings{
		RegionName:  s.RequiredString("region-name"),
		ProfileName: s.String("profile-name", ""),
		Rate:        s.Float("rate", DefaultRate),
	}
	st.HostnameFormat = s.String("hostname-format", "")
	if !strict {
		// Read by the driver but absent from the validator's schema, so
		// config-validate refuses them (extra keys not allowed) while
		// loading honours them.
		st.PostUploadHookPath = s.String("post-upload-hook", "")
	}
	os := s.Map("object-storage")
	st.BucketName = os.String("bucket-name", "")
	os.Finish()
	p.ImageFormat = s.String("image-format", DefaultImageFormat)
	if !oneOf(p.ImageFormat, ImageFormats) {
		s.Errorf("image-format", "not a valid value: %s (expected one of ova, vhd, vhdx, vmdk, raw)", p.ImageFormat)
	}
	p.Settings = st

	// Provider-level pool defaults.
	defServers := s.Limit("max-servers")
	defCores := s.Limit("max-cores")
	defRAM := s.Limit("max-ram")
	defResources := intMap(s, "max-resources")
	defInternal := s.Bool("use-internal-ip", false)
	defHKC := s.Bool("host-key-checking", true)
	defV4 := s.Bool("public-ipv4", true)
	defV6 := s.Bool("public-ipv6", false)

	for _, cs := range s.List("cloud-images") {
		if !cs.Exists() {
			continue
		}
		ci := &CloudImage{
			Name:           cs.RequiredString("name"),
			Username:       cs.RequiredString("username"),
			ImageID:        cs.String("image-id", ""),
			PythonPath:     cs.String("python-path", "auto"),
			ShellType:      cs.String("shell-type", ""),
			ConnectionType: cs.String("connection-type", "ssh"),
		}
		ci.ConnectionPort = cs.Int("connection-port", driver.DefaultPort(ci.ConnectionType))
		for _, fs := range cs.List("image-filters") {
			ci.ImageFilters = append(ci.ImageFilters, parseImageFilter(fs))
		}
		if cs.Has("image-id") && cs.Has("image-filters") {
			cs.Errorf("image-filters", "two or more values in the same group of exclusion 'spec'")
		}
		if !cs.Has("image-id") && !cs.Has("image-filters") {
			cs.Errorf("", `Provide either "image-filters", or "image-id" keys`)
		}
		cs.Finish()
		st.CloudImages = append(st.CloudImages, ci)
	}

	for _, ds := range s.List("diskimages") {
		if !ds.Exists() {
			continue
		}
		d := &driver.ProviderDiskimage{
			Name:           ds.RequiredString("name"),
			Pause:          ds.Bool("pause", false),
			ConnectionType: ds.String("connection-type", "ssh"),
			Meta:           tagMap(ds, "tags"),
		}
		d.ConnectionPort = ds.Int("connection-port", driver.DefaultPort(d.ConnectionType))
		d.Settings = &DiskimageSettings{
			Username:     ds.String("username", ""),
			PythonPath:   ds.String("python-path", ""),
			ShellType:    ds.String("shell-type", ""),
			Architecture: ds.String("architecture", DefaultArchitecture),
			ENASupport:   ds.Bool("ena-support", true),
			VolumeType:   ds.String("volume-type", DefaultVolumeType),
			VolumeSize:   ds.Int("volume-size", 0),
			ImportMethod: ds.String("import-method", "snapshot"),
			IOPS:         ds.Int("iops", 0),
			Throughput:   ds.Int("throughput", 0),
		}
		if m := d.Settings.(*DiskimageSettings).ImportMethod; m != "snapshot" && m != "image" {
			ds.Errorf("import-method", "not a valid value: %s (expected snapshot or image)", m)
		}
		ds.Finish()
		p.Diskimages = append(p.Diskimages, d)
	}

	if !s.Has("pools") {
		s.Errorf("pools", "required key not provided")
	}
	for _, ps := range s.List("pools") {
		pool := driver.ParsePoolCommon(ps)
		if !ps.Has("max-servers") {
			pool.MaxServers = defServers
		}
		pool.MaxCores = defCores
		if ps.Has("max-cores") || ps.IsNull("max-cores") {
			pool.MaxCores = ps.Limit("max-cores")
		}
		pool.MaxRAM = defRAM
		if ps.Has("max-ram") || ps.IsNull("max-ram") {
			pool.MaxRAM = ps.Limit("max-ram")
		}
		// The pool's max-resources entries override the provider's one
		// by one; the others are inherited.
		if len(defResources) > 0 || ps.Has("max-resources") || ps.IsNull("max-resources") {
			pool.MaxResources = map[string]float64{}
			for k, v := range defResources {
				pool.MaxResources[k] = v
			}
			for k, v := range intMap(ps, "max-resources") {
				pool.MaxResources[k] = v
			}
		}
		pool.UseInternalIP = ps.Bool("use-internal-ip", defInternal)
		pool.HostKeyChecking = ps.Bool("host-key-checking", defHKC)
		pst := &PoolSettings{
			SubnetID:        ps.String("subnet-id", ""),
			SecurityGroupID: ps.String("security-group-id", ""),
			PublicIPv4:      ps.Bool("public-ipv4", ps.Bool("public-ip-address", defV4)),
			PublicIPv6:      ps.Bool("public-ipv6", defV6),
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
		HostKeyChecking: pool.HostKeyChecking,
	}
	lst := &LabelSettings{
		InstanceType: ls.RequiredString("instance-type"),
		KeyName:      ls.RequiredString("key-name"),
		EBSOptimized: ls.Bool("ebs-optimized", false),
		VolumeType:   ls.String("volume-type", ""),
		VolumeSize:   ls.Int("volume-size", 0),
		IOPS:         ls.Int("iops", 0),
		Throughput:   ls.Int("throughput", 0),
		Userdata:     ls.String("userdata", ""),
		Tags:         tagMap(ls, "tags"),
		DynamicTags:  tagMap(ls, "dynamic-tags"),
		UseSpot:      ls.Bool("use-spot", false),
	}
	if ls.Has("iam-instance-profile") || ls.IsNull("iam-instance-profile") {
		is := ls.Map("iam-instance-profile")
		prof := &IAMInstanceProfile{Name: is.String("name", ""), ARN: is.String("arn", "")}
		if is.Has("name") && is.Has("arn") {
			is.Errorf("arn", "two or more values in the same group of exclusion 'iam_instance_profile_id'")
		}
		is.Finish()
		lst.IAMInstanceProfile = prof
	}
	l.Settings = lst
	if l.Diskimage != "" && l.CloudImage != "" {
		ls.Errorf("cloud-image", "two or more values in the same group of exclusion 'image': diskimage and cloud-image")
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
		l.Username, l.PythonPath, l.ShellType = ci.Username, ci.PythonPath, ci.ShellType
		l.ConnectionType, l.ConnectionPort = ci.ConnectionType, ci.ConnectionPort
	case l.Diskimage != "":
		// Provider diskimage overrides; the loader fills the rest from
		// the top-level diskimage.
		l.ConnectionType, l.ConnectionPort = "ssh", 22
		if d := p.Diskimage(l.Diskimage); d != nil {
			ds := d.Settings.(*DiskimageSettings)
			l.Username, l.PythonPath, l.ShellType = ds.Username, ds.PythonPath, ds.ShellType
			l.ConnectionType, l.ConnectionPort = d.ConnectionType, d.ConnectionPort
		}
	}
	ls.Finish()
	return l
}

func oneOf(v string, set []string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

// parseImageFilter reads one image-filters entry; the keys may be spelled
// name/values or Name/Values (the EC2 API's spelling).
func parseImageFilter(fs *driver.Section) ImageFilter {
	var f ImageFilter
	nameKey, valuesKey := "name", "values"
	if fs.Has("Name") || !fs.Has("name") && fs.IsNull("Name") {
		nameKey = "Name"
	}
	if fs.Has("Values") || !fs.Has("values") && fs.IsNull("Values") {
		valuesKey = "Values"
	}
	f.Name = fs.String(nameKey, "")
	f.Values = fs.StringList(valuesKey)
	fs.Finish()
	return f
}

// tagMap reads a mapping whose values may be any scalar (tags are strings
// in EC2: a YAML boolean true becomes "True", a number its decimal form,
// as the values are rendered when the tags are sent).
func tagMap(s *driver.Section, key string) map[string]string {
	if s.IsNull(key) {
		if s.Problems().Strict {
			s.Errorf(key, "expected a dictionary")
		}
		s.Any(key)
		return nil
	}
	n := s.Node(key)
	if n == nil {
		s.Any(key)
		return nil
	}
	v, ok := s.Any(key).(map[string]any)
	if !ok {
		s.Errorf(key, "expected a dictionary")
		return nil
	}
	out := make(map[string]string, len(v))
	for k, val := range v {
		out[k] = pyStr(val)
	}
	return out
}

// pyStr renders a decoded YAML value as its text form in tags.
func pyStr(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case bool:
		if t {
			return "True"
		}
		return "False"
	case string:
		return t
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1e16 {
			return strconv.FormatFloat(t, 'f', 1, 64)
		}
		return strconv.FormatFloat(t, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// UploadHook returns the post-upload-hook executable ("" for none).
func (s *ProviderSettings) UploadHook() string { return s.PostUploadHookPath }

// intMap reads max-resources: names to whole numbers (config-validate
// refuses a fractional value, as the schema wants integers).
func intMap(s *driver.Section, key string) map[string]float64 {
	m := s.NumberMap(key)
	if n := s.Node(key); n != nil && s.Problems().Strict && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i+1].Tag == "!!float" {
				s.Errorf(key+"."+n.Content[i].Value, "expected int")
			}
		}
	}
	return m
}
