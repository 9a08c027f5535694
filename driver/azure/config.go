// Package azure is the Microsoft Azure driver on the Azure SDK for Go
// (azcore, azidentity, armcompute, armnetwork, armresources, azblob).
// Credentials come from the provider's auth-path file, the JSON the Azure
// CLI writes with --sdk-auth (client id, secret, tenant, subscription).
// A provider works in one resource group and one location: per node it
// creates public IP addresses (optional), a network interface and a
// virtual machine, all tagged with the node's ownership metadata, and
// deletes them again (with the OS disk). Long operations are Azure
// asynchronous operations polled by the SDK's pollers on a small worker
// pool; create and delete machines poll shared, cached listings. Diskimage
// builds are uploaded as managed disks (createOption Upload, written as a
// page blob through the disk's SAS URL) and turned into images. The
// module's tests run the driver against internal/fakeazure, an in-process
// fake of Azure Resource Manager.
package azure

import (
	"encoding/base64"
	"fmt"
	"os"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
)

// Name is the driver's registered name.
const Name = "azure"

// Defaults of the provider keys.
const (
	DefaultLaunchTimeout = 3600
	DefaultBootTimeout   = 120
	DefaultRate          = 1.0
	// ImageFormat is the only upload format Azure takes.
	ImageFormat = "vhd"
	// ImageNameFormat is the cloud name of uploads (not configurable).
	ImageNameFormat = "{image_name}-{timestamp}"
	// AuthLocationEnv names the environment variable holding the auth
	// file's path when a provider gives no auth-path (loading only; the
	// validator requires the key).
	AuthLocationEnv = "AZURE_AUTH_LOCATION"
)

// Driver parses Azure providers and opens their adapters.
type Driver struct{}

func init() { driver.Register(Name, Driver{}) }

// Network is the provider's network key: the virtual network by name,
// optionally in another resource group and with a subnet other than
// "default".
type Network struct {
	ResourceGroup string // "" = the provider's resource group
	Network       string // the virtual network's name
	Subnet        string // "" = "default"
}

// ProviderSettings are the Azure provider keys (ProviderConfig.Settings).
type ProviderSettings struct {
	Location              string        // location of every resource
	ResourceGroup         string        // resource-group we work in
	ResourceGroupLocation string        // resource-group-location (creating the group)
	AuthPath              string        // auth-path: the --sdk-auth JSON file
	SubnetID              string        // subnet-id (wins over network)
	Network               *Network      // network (nil when not given)
	Rate                  float64       // API calls per second
	PostUploadHookPath    string        // post-upload-hook executable
	ZuulPublicKey         string        // zuul-public-key: default key of cloud images
	CloudImages           []*CloudImage // cloud-images entries
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

// UploadHook returns the post-upload-hook executable ("" for none);
// the builder runs it after each upload.
func (s *ProviderSettings) UploadHook() string { return s.PostUploadHookPath }

// ImageReference is a marketplace image.
type ImageReference struct {
	SKU       string // sku
	Publisher string // publisher
	Version   string // version
	Offer     string // offer
}

// ImageFilter selects the newest (by name) of the resource group's images.
type ImageFilter struct {
	Location string            // location ("" = any)
	Name     string            // name ("" = any)
	Tags     map[string]string // tags the image must carry
}

// CloudImage is a cloud-images entry: exactly one of ImageReference,
// ImageID and ImageFilter is set.
type CloudImage struct {
	Name             string          // the name labels refer to
	Username         string          // admin user of its VMs
	Password         string          // password of the admin user
	GeneratePassword bool            // generate-password: a random one per VM
	Key              string          // key: SSH public key of the admin user
	ImageReference   *ImageReference // image-reference
	ImageID          string          // image-id
	ImageFilter      *ImageFilter    // image-filter
	PythonPath       string          // python-path of its nodes
	ShellType        string          // shell-type of its nodes
	ConnectionType   string          // connection-type of its nodes
	ConnectionPort   int             // connection-port of its nodes
}

// DiskimageSettings are the Azure keys of a provider diskimage
// (ProviderDiskimage.Settings); tags are ProviderDiskimage.Meta.
type DiskimageSettings struct {
	Username         string // admin user ("" = the top-level diskimage's)
	Password         string // password of the admin user
	GeneratePassword bool   // generate-password
	Key              string // key: SSH public key of the admin user
	PythonPath       string // python-path of its nodes
	ShellType        string // shell-type of its nodes
}

// PoolSettings are the Azure pool keys (PoolConfig.Settings), with the
// provider's defaults applied.
type PoolSettings struct {
	IPv4       bool // private IPv4 configuration on the NIC
	IPv6       bool // private IPv6 configuration on the NIC
	PublicIPv4 bool // a public IPv4 address per node
	PublicIPv6 bool // a public IPv6 address per node
}

// LabelSettings are the Azure label keys (LabelConfig.Settings).
type LabelSettings struct {
	VMSize      string            // hardware-profile.vm-size
	Tags        map[string]string // tags
	DynamicTags map[string]string // dynamic-tags (templates of request fields)
	UserData    string            // user-data, base64-encoded ("" for none)
	CustomData  string            // custom-data, base64-encoded ("" for none)
}

// ParseProvider parses an Azure provider.
func (Driver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	strict := s.Problems().Strict
	p := driver.ParseProviderCommon(s)
	p.Driver = Name
	p.ManageImages = true
	p.ImageFormat = ImageFormat
	driver.ParseTimeouts(s, p, DefaultLaunchTimeout, DefaultBootTimeout)
	st := &ProviderSettings{
		Location:              s.RequiredString("location"),
		ResourceGroup:         s.RequiredString("resource-group"),
		ResourceGroupLocation: s.RequiredString("resource-group-location"),
		SubnetID:              s.String("subnet-id", ""),
		Rate:                  s.Float("rate", DefaultRate),
		PostUploadHookPath:    s.String("post-upload-hook", ""),
		ZuulPublicKey:         s.String("zuul-public-key", ""),
	}
	if strict {
		st.AuthPath = s.RequiredString("auth-path")
	} else {
		st.AuthPath = s.String("auth-path", os.Getenv(AuthLocationEnv))
	}
	if n := s.Node("network"); n != nil && n.Kind == yaml.ScalarNode {
		st.Network = &Network{Network: s.String("network", "")}
	} else if s.Has("network") {
		ns := s.Map("network")
		st.Network = &Network{
			ResourceGroup: ns.String("resource-group", ""),
			Network:       ns.String("network", ""),
			Subnet:        ns.String("subnet", ""),
		}
		ns.Finish()
	} else {
		s.Ignore("network")
	}
	defV4 := optBool(s, "ipv4")
	defV6 := optBool(s, "ipv6")
	defPub4 := s.Bool("public-ipv4", true)
	defPub6 := s.Bool("public-ipv6", false)
	defInternal := s.Bool("use-internal-ip", false)
	defHKC := s.Bool("host-key-checking", true)
	p.Settings = st

	for _, cs := range s.List("cloud-images") {
		if ci := parseCloudImage(cs, st.ZuulPublicKey); ci != nil {
			st.CloudImages = append(st.CloudImages, ci)
		}
	}
	for _, ds := range s.List("diskimages") {
		if d := parseDiskimage(ds, strict); d != nil {
			p.Diskimages = append(p.Diskimages, d)
		}
	}

	if !s.Has("pools") {
		s.Errorf("pools", "required key not provided")
	}
	for _, ps := range s.List("pools") {
		if !ps.Exists() {
			continue
		}
		pool := driver.ParsePoolCommon(ps)
		if !strict && !ps.Has("max-servers") {
			// The loader reads max-servers unconditionally.
			ps.Errorf("max-servers", "required key not provided")
		}
		pst := &PoolSettings{
			PublicIPv4: ps.Bool("public-ipv4", defPub4),
			PublicIPv6: ps.Bool("public-ipv6", defPub6),
		}
		v4, v6 := optBool(ps, "ipv4"), optBool(ps, "ipv6")
		if v4 == nil {
			v4 = defV4
		}
		if v6 == nil {
			v6 = defV6
		}
		pst.IPv4 = (v4 != nil && *v4) || pst.PublicIPv4
		pst.IPv6 = (v6 != nil && *v6) || pst.PublicIPv6
		if !pst.IPv4 && !pst.IPv6 {
			pst.IPv4 = true
		}
		pool.UseInternalIP = ps.Bool("use-internal-ip", defInternal)
		pool.HostKeyChecking = ps.Bool("host-key-checking", defHKC)
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
		p.Pools = append(p.Pools, pool)
	}
	s.Finish()
	return p
}

// optBool reads a boolean that may be absent (nil).
func optBool(s *driver.Section, key string) *bool {
	if !s.Has(key) {
		s.Bool(key, false) // marks it read; reports a null in strict mode
		return nil
	}
	v := s.Bool(key, false)
	return &v
}

// tagMap reads a tags mapping; values of any scalar type are accepted
// and kept in their text form, as Azure tags are strings.
func tagMap(s *driver.Section, key string) map[string]string {
	v := s.Any(key)
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		s.Errorf(key, "expected a dictionary")
		return nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		if x == nil {
			out[k] = ""
			continue
		}
		out[k] = fmt.Sprint(x)
	}
	return out
}

func parseCloudImage(cs *driver.Section, zuulKey string) *CloudImage {
	if !cs.Exists() {
		return nil
	}
	ci := &CloudImage{
		Name:             cs.RequiredString("name"),
		Username:         cs.RequiredString("username"),
		Password:         cs.String("password", ""),
		GeneratePassword: cs.Bool("generate-password", false),
		Key:              cs.String("key", zuulKey),
		ImageID:          cs.String("image-id", ""),
		PythonPath:       cs.String("python-path", "auto"),
		ShellType:        cs.String("shell-type", ""),
		ConnectionType:   cs.String("connection-type", "ssh"),
	}
	ci.ConnectionPort = cs.Int("connection-port", driver.DefaultPort(ci.ConnectionType))
	if cs.Has("image-reference") {
		rs := cs.Map("image-reference")
		ci.ImageReference = &ImageReference{
			SKU:       rs.RequiredString("sku"),
			Publisher: rs.RequiredString("publisher"),
			Version:   rs.RequiredString("version"),
			Offer:     rs.RequiredString("offer"),
		}
		rs.Finish()
	} else {
		cs.Ignore("image-reference")
	}
	if cs.Has("image-filter") {
		fs := cs.Map("image-filter")
		ci.ImageFilter = &ImageFilter{
			Location: fs.String("location", ""),
			Name:     fs.String("name", ""),
			Tags:     tagMap(fs, "tags"),
		}
		fs.Finish()
	} else {
		cs.Ignore("image-filter")
	}
	var given []string
	for _, k := range []string{"image-reference", "image-id", "image-filter"} {
		if cs.Has(k) {
			given = append(given, k)
		}
	}
	switch {
	case len(given) > 1:
		cs.Errorf(given[1], "two or more values in the same group of exclusion 'spec'")
	case len(given) == 0:
		cs.Errorf("", `Provide either "image-reference", "image-filter", or "image-id" keys`)
	}
	cs.Finish()
	return ci
}

func parseDiskimage(ds *driver.Section, strict bool) *driver.ProviderDiskimage {
	if !ds.Exists() {
		return nil
	}
	d := &driver.ProviderDiskimage{
		Name:           ds.RequiredString("name"),
		Pause:          ds.Bool("pause", false),
		ConnectionType: ds.String("connection-type", "ssh"),
		Meta:           tagMap(ds, "tags"),
	}
	d.ConnectionPort = ds.Int("connection-port", driver.DefaultPort(d.ConnectionType))
	dst := &DiskimageSettings{
		Username:   ds.String("username", ""),
		Key:        ds.String("key", ""),
		PythonPath: ds.String("python-path", "auto"),
		ShellType:  ds.String("shell-type", ""),
	}
	if !strict {
		// Read by the loader although the validator's schema lacks them.
		dst.Password = ds.String("password", "")
		dst.GeneratePassword = ds.Bool("generate-password", false)
	}
	d.Settings = dst
	ds.Finish()
	return d
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
		Tags:        tagMap(ls, "tags"),
		DynamicTags: tagMap(ls, "dynamic-tags"),
		UserData:    encodeData(ls.String("user-data", "")),
		CustomData:  encodeData(ls.String("custom-data", "")),
	}
	if !ls.Has("hardware-profile") {
		ls.Errorf("hardware-profile", "required key not provided")
		ls.Ignore("hardware-profile")
	} else {
		hs := ls.Map("hardware-profile")
		lst.VMSize = hs.RequiredString("vm-size")
		hs.Finish()
	}
	l.Settings = lst
	if !strict {
		if l.CloudImage != "" && st.CloudImage(l.CloudImage) == nil {
			ls.Errorf("cloud-image", "cloud-image %s does not exist in provider %s but is referenced in label %s", l.CloudImage, p.Name, l.Name)
		}
		if l.Diskimage != "" && p.Diskimage(l.Diskimage) == nil {
			ls.Errorf("diskimage", "diskimage %s does not exist in provider %s but is referenced in label %s", l.Diskimage, p.Name, l.Name)
		}
	}
	switch {
	case l.Diskimage != "":
		if d := p.Diskimage(l.Diskimage); d != nil {
			dst := d.Settings.(*DiskimageSettings)
			// An empty username is filled from the top-level diskimage by
			// the loader.
			l.Username, l.PythonPath, l.ShellType = dst.Username, dst.PythonPath, dst.ShellType
			l.ConnectionType, l.ConnectionPort = d.ConnectionType, d.ConnectionPort
		}
	case l.CloudImage != "":
		if ci := st.CloudImage(l.CloudImage); ci != nil {
			l.Username, l.PythonPath, l.ShellType = ci.Username, ci.PythonPath, ci.ShellType
			l.ConnectionType, l.ConnectionPort = ci.ConnectionType, ci.ConnectionPort
		}
	}
	ls.Finish()
	return l
}

// encodeData base64-encodes user-data and custom-data as the API wants.
func encodeData(s string) string {
	if s == "" {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(s))
}

// sortedKeys returns a map's keys in order.
func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
