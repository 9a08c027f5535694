package simcloud

import (
	"fmt"
	"math"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
)

// Settings is the simcloud part of a provider configuration
// (driver.ProviderConfig.Settings).
type Settings struct {
	// Cloud names the in-process cloud; providers naming the same cloud
	// share it. Defaults to the provider name.
	Cloud  string
	Region string // region reported on instances
	// Knobs are the cloud-wide behaviours the provider configures.
	Knobs       Knobs
	Flavors     []Flavor     // flavors; labels pick one, the first is the default
	CloudImages []CloudImage // cloud images labels may boot
	// LeakedInstances is the number of instances with this provider's
	// metadata and unknown node ids seeded into the cloud on first open.
	LeakedInstances int
	// ForeignInstances is the number of instances without nodepool
	// metadata seeded into the cloud on first open.
	ForeignInstances int
}

// Knobs are the configurable behaviours of a cloud.
type Knobs struct {
	BootTimeMin       time.Duration // shortest BUILD → ACTIVE time
	BootTimeMax       time.Duration // longest BUILD → ACTIVE time
	APILatency        time.Duration // time every API call takes
	CreateFailureRate float64       // probability (0..1) that a create fails
	DeleteFailureRate float64       // probability (0..1) that a delete fails
	Quota             Quota         // the cloud's limits
	AZs               []string      // availability zones (none: any zone asked for)
	// StateFile, when set, persists the cloud's servers and images.
	StateFile string
	// Images are the cloud images that exist in the cloud from the start.
	Images []string
}

// Quota is a cloud's limits; a negative value is unlimited.
type Quota struct {
	Instances int // servers (negative: unlimited)
	Cores     int // cores (negative: unlimited)
	RAM       int // RAM in MiB (negative: unlimited)
}

// UnlimitedQuota returns a quota without limits.
func UnlimitedQuota() Quota { return Quota{Instances: -1, Cores: -1, RAM: -1} }

// Flavor is a server size.
type Flavor struct {
	Name  string // flavor name
	Cores int    // cores per server
	RAM   int    // RAM per server (MiB)
}

// CloudImage is an image that exists in the cloud, with the connection
// settings of nodes booted from it.
type CloudImage struct {
	Name           string // image name
	Username       string // login user of its nodes
	PythonPath     string // python-path of its nodes
	ShellType      string // shell-type of its nodes
	ConnectionType string // connection-type of its nodes
	ConnectionPort int    // connection-port of its nodes
}

// LabelSettings is the simcloud part of a label (driver.LabelConfig.Settings).
type LabelSettings struct {
	Flavor Flavor // the server size of the label
}

var defaultFlavor = Flavor{Name: "small", Cores: 2, RAM: 2048}

var defaultImage = CloudImage{Name: "default", Username: "zuul", PythonPath: "auto", ConnectionType: "ssh", ConnectionPort: 22}

// DefaultSettings returns the settings of a provider entry that gives no
// simcloud keys.
func DefaultSettings(provider string) *Settings {
	return &Settings{
		Cloud:       provider,
		Knobs:       Knobs{Quota: UnlimitedQuota(), Images: []string{defaultImage.Name}},
		Flavors:     []Flavor{defaultFlavor},
		CloudImages: []CloudImage{defaultImage},
	}
}

// NewProviderConfig returns the configuration of a default simcloud
// provider with one pool "main" offering the labels, for programs that
// build their configuration in code.
func NewProviderConfig(name string, labels ...string) (*driver.ProviderConfig, error) {
	if name == "" {
		return nil, fmt.Errorf("simcloud: provider name is empty")
	}
	node := &yaml.Node{Kind: yaml.MappingNode}
	add := func(m *yaml.Node, k string, v *yaml.Node) {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, v)
	}
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
	add(node, "name", str(name))
	add(node, "driver", str("simcloud"))
	lbls := &yaml.Node{Kind: yaml.SequenceNode}
	for _, l := range labels {
		m := &yaml.Node{Kind: yaml.MappingNode}
		add(m, "name", str(l))
		lbls.Content = append(lbls.Content, m)
	}
	pool := &yaml.Node{Kind: yaml.MappingNode}
	add(pool, "name", str("main"))
	add(pool, "labels", lbls)
	add(node, "pools", &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{pool}})
	probs := &driver.Problems{}
	p := simDriver{}.ParseProvider(driver.NewSection(node, "provider", probs))
	return p, probs.Err()
}

// ParseProvider decodes a simcloud provider entry.
func (simDriver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	p := driver.ParseProviderCommon(s)
	driver.ParseTimeouts(s, p, 3600, 60)
	p.ManageImages = true
	p.ImageFormat = s.String("image-format", "qcow2")

	st := &Settings{
		Cloud:            s.String("cloud", p.Name),
		Region:           s.String("region", ""),
		LeakedInstances:  nonNegInt(s, "leaked-instances"),
		ForeignInstances: nonNegInt(s, "foreign-instances"),
	}
	if st.Cloud == "" {
		st.Cloud = p.Name
	}
	k := &st.Knobs
	k.BootTimeMin, k.BootTimeMax = parseBootTime(s, "boot-time")
	k.APILatency = seconds(s, "api-latency")
	k.CreateFailureRate = rate(s, "create-failure-rate")
	k.DeleteFailureRate = rate(s, "delete-failure-rate")
	k.AZs = s.StringList("availability-zones")
	k.StateFile = s.String("state-file", "")
	k.Quota = UnlimitedQuota()
	if s.Has("quota") {
		q := s.Map("quota")
		k.Quota.Instances = q.Int("instances", -1)
		k.Quota.Cores = q.Int("cores", -1)
		k.Quota.RAM = q.Int("ram", -1)
		q.Finish()
	}

	for _, fs := range s.List("flavors") {
		f := Flavor{Name: fs.RequiredString("name"), Cores: fs.Int("cores", defaultFlavor.Cores), RAM: fs.Int("ram", defaultFlavor.RAM)}
		if f.Cores < 0 {
			fs.Errorf("cores", "must not be negative")
		}
		if f.RAM < 0 {
			fs.Errorf("ram", "must not be negative")
		}
		for _, o := range st.Flavors {
			if o.Name == f.Name && f.Name != "" {
				fs.Errorf("name", "duplicate flavor %q", f.Name)
			}
		}
		st.Flavors = append(st.Flavors, f)
		fs.Finish()
	}
	if !s.Has("flavors") {
		st.Flavors = []Flavor{defaultFlavor}
	}

	for _, is := range s.List("cloud-images") {
		ci := CloudImage{
			Name:           is.RequiredString("name"),
			Username:       is.String("username", "zuul"),
			PythonPath:     is.String("python-path", "auto"),
			ShellType:      is.String("shell-type", ""),
			ConnectionType: is.String("connection-type", "ssh"),
		}
		ci.ConnectionPort = is.Int("connection-port", driver.DefaultPort(ci.ConnectionType))
		for _, o := range st.CloudImages {
			if o.Name == ci.Name && ci.Name != "" {
				is.Errorf("name", "duplicate cloud image %q", ci.Name)
			}
		}
		st.CloudImages = append(st.CloudImages, ci)
		is.Finish()
	}
	if !s.Has("cloud-images") {
		st.CloudImages = []CloudImage{defaultImage}
	}
	for _, ci := range st.CloudImages {
		k.Images = append(k.Images, ci.Name)
	}

	for _, ds := range s.List("diskimages") {
		d := &driver.ProviderDiskimage{
			Name:           ds.RequiredString("name"),
			Pause:          ds.Bool("pause", false),
			ConnectionType: ds.String("connection-type", "ssh"),
			Meta:           ds.StringMap("meta"),
		}
		d.ConnectionPort = ds.Int("connection-port", driver.DefaultPort(d.ConnectionType))
		if d.Name != "" && p.Diskimage(d.Name) != nil {
			ds.Errorf("name", "duplicate diskimage %q", d.Name)
		}
		p.Diskimages = append(p.Diskimages, d)
		ds.Finish()
	}

	for _, ps := range s.List("pools") {
		pool := parsePool(ps, p, st)
		if pool.Name != "" && p.Pool(pool.Name) != nil {
			ps.Errorf("name", "duplicate pool %q", pool.Name)
		}
		p.Pools = append(p.Pools, pool)
		ps.Finish()
	}
	p.Settings = st
	s.Finish()
	return p
}

func parsePool(ps *driver.Section, p *driver.ProviderConfig, st *Settings) *driver.PoolConfig {
	pool := driver.ParsePoolCommon(ps)
	pool.MaxCores = ps.Limit("max-cores")
	pool.MaxRAM = ps.Limit("max-ram")
	pool.AZs = ps.StringList("availability-zones")
	pool.HostKeyChecking = ps.Bool("host-key-checking", true)
	pool.UseInternalIP = ps.Bool("use-internal-ip", false)
	pool.IgnoreProviderQuota = ps.Bool("ignore-provider-quota", false)
	names := map[string]bool{}
	for _, ls := range ps.List("labels") {
		l := parseLabel(ls, p, pool, st)
		if l.Name != "" && names[l.Name] {
			ls.Errorf("name", "duplicate label %q", l.Name)
		}
		names[l.Name] = true
		pool.Labels = append(pool.Labels, l)
		ls.Finish()
	}
	return pool
}

func parseLabel(ls *driver.Section, p *driver.ProviderConfig, pool *driver.PoolConfig, st *Settings) *driver.LabelConfig {
	l := &driver.LabelConfig{
		Name:            ls.RequiredString("name"),
		HostKeyChecking: ls.Bool("host-key-checking", pool.HostKeyChecking),
	}
	ci := ls.String("cloud-image", "")
	di := ls.String("diskimage", "")
	switch {
	case ci != "" && di != "":
		ls.Errorf("diskimage", "cloud-image and diskimage are mutually exclusive")
	case di != "":
		d := p.Diskimage(di)
		if d == nil {
			ls.Errorf("diskimage", "diskimage %q is not in the provider's diskimages", di)
			break
		}
		l.Diskimage = di
		// Username, python-path and shell-type come from the top-level
		// diskimage (the configuration loader fills them in).
		l.ConnectionType = d.ConnectionType
		l.ConnectionPort = d.ConnectionPort
	default:
		var img *CloudImage
		if ci == "" {
			if len(st.CloudImages) == 0 {
				ls.Errorf("cloud-image", "the provider has no cloud images")
				break
			}
			img = &st.CloudImages[0]
		} else {
			for i := range st.CloudImages {
				if st.CloudImages[i].Name == ci {
					img = &st.CloudImages[i]
				}
			}
			if img == nil {
				ls.Errorf("cloud-image", "cloud image %q is not in the provider's cloud-images", ci)
				break
			}
		}
		l.CloudImage = img.Name
		l.Username = img.Username
		l.PythonPath = img.PythonPath
		l.ShellType = img.ShellType
		l.ConnectionType = img.ConnectionType
		l.ConnectionPort = img.ConnectionPort
	}

	fl, hasFlavor := ls.String("flavor-name", ""), ls.Has("flavor-name")
	minRAM, hasMinRAM := ls.Int("min-ram", 0), ls.Has("min-ram")
	var flavor *Flavor
	switch {
	case hasFlavor && hasMinRAM:
		ls.Errorf("min-ram", "flavor-name and min-ram are mutually exclusive")
	case hasFlavor:
		for i := range st.Flavors {
			if st.Flavors[i].Name == fl {
				flavor = &st.Flavors[i]
			}
		}
		if flavor == nil {
			ls.Errorf("flavor-name", "flavor %q is not in the provider's flavors", fl)
		}
	case hasMinRAM:
		for i := range st.Flavors {
			f := &st.Flavors[i]
			if f.RAM >= minRAM && (flavor == nil || f.RAM < flavor.RAM) {
				flavor = f
			}
		}
		if flavor == nil {
			ls.Errorf("min-ram", "no flavor has at least %d MiB of ram", minRAM)
		}
	default:
		if len(st.Flavors) == 0 {
			ls.Errorf("flavor-name", "the provider has no flavors")
		} else {
			flavor = &st.Flavors[0]
		}
	}
	if flavor == nil {
		flavor = &defaultFlavor
	}
	l.Settings = &LabelSettings{Flavor: *flavor}
	l.Resources = map[string]float64{"cores": float64(flavor.Cores), "instances": 1, "ram": float64(flavor.RAM)}
	return l
}

func nonNegInt(s *driver.Section, key string) int {
	v := s.Int(key, 0)
	if v < 0 {
		s.Errorf(key, "must not be negative")
		return 0
	}
	return v
}

func rate(s *driver.Section, key string) float64 {
	v := s.Float(key, 0)
	if v < 0 || v > 1 || math.IsNaN(v) {
		s.Errorf(key, "must be between 0 and 1, got %v", v)
		return 0
	}
	return v
}

func seconds(s *driver.Section, key string) time.Duration {
	v := s.Float(key, 0)
	if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		s.Errorf(key, "must be a non-negative number of seconds")
		return 0
	}
	return time.Duration(v * float64(time.Second))
}

// parseBootTime reads a number of seconds or a [min, max] range.
func parseBootTime(s *driver.Section, key string) (lo, hi time.Duration) {
	if !s.Has(key) {
		return 0, 0
	}
	num := func(v any) (float64, bool) {
		switch n := v.(type) {
		case int:
			return float64(n), true
		case int64:
			return float64(n), true
		case uint64:
			return float64(n), true
		case float64:
			return n, !math.IsNaN(n) && !math.IsInf(n, 0)
		}
		return 0, false
	}
	v := s.Any(key)
	var a, b float64
	switch t := v.(type) {
	case []any:
		if len(t) != 2 {
			s.Errorf(key, "expected a number or a list [min, max], got a list of %d", len(t))
			return 0, 0
		}
		var ok1, ok2 bool
		a, ok1 = num(t[0])
		b, ok2 = num(t[1])
		if !ok1 || !ok2 {
			s.Errorf(key, "expected a list of two numbers")
			return 0, 0
		}
	default:
		n, ok := num(v)
		if !ok {
			s.Errorf(key, "expected a number or a list [min, max], got %s", fmt.Sprint(v))
			return 0, 0
		}
		a, b = n, n
	}
	if a < 0 || b < 0 {
		s.Errorf(key, "must not be negative")
		return 0, 0
	}
	if a > b {
		s.Errorf(key, "min %v is greater than max %v", a, b)
		return 0, 0
	}
	return time.Duration(a * float64(time.Second)), time.Duration(b * float64(time.Second))
}
