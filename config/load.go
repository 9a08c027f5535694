package config

import (
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
	// The drivers whose configuration every build can parse.
	"github.com/nodepool-go/nodepool/quota"
	"github.com/nodepool-go/nodepool/zkclient"
)

// Defaults of the configuration keys and the daemons' flags.
const (
	DefaultConfigPath        = "/etc/nodepool/nodepool.yaml"
	DefaultWebAppPort        = 8005
	DefaultWebAppListen      = "0.0.0.0"
	DefaultZooKeeperPort     = 2281
	DefaultZooKeeperTimeout  = 10 * time.Second
	DefaultBuildLogDir       = "/var/log/nodepool/builds"
	DefaultBuildLogRetention = 7
	DefaultRebuildAge        = 24 * time.Hour
	DefaultBuildTimeout      = 8 * time.Hour
	DefaultDibCmd            = "disk-image-create"
	DefaultImageUsername     = "zuul"
	DefaultPythonPath        = "auto"
)

// Reading a missing file is retried; variables for tests.
var (
	readAttempts   = 3
	readRetryDelay = 500 * time.Millisecond
	sleep          = time.Sleep
)

// Load reads the main configuration file and the optional secure
// file the way the daemons do: lenient about unknown keys
// (reported in Config.Warnings), strict about types and references. Parse
// and reference errors are returned as a *driver.ErrorList; I/O errors as
// returned by the operating system.
func Load(path, securePath string, opts ...Option) (*Config, error) {
	o := options(opts)
	abs, err := absPath(path)
	if err != nil {
		return nil, err
	}
	probs := &driver.Problems{File: abs}
	root, err := readDocument(abs, probs)
	if err != nil {
		return nil, err
	}
	if len(probs.Errors) > 0 {
		return nil, probs.Err()
	}
	p := parseDocument(root, probs, o.registry)
	p.resolve(probs)
	cfg := p.cfg
	cfg.Path = abs
	warnings := probs.Warnings
	errs := probs.Errors
	if securePath != "" {
		sabs, err := absPath(securePath)
		if err != nil {
			return nil, err
		}
		cfg.SecurePath = sabs
		sprobs := &driver.Problems{File: sabs}
		sroot, err := readDocument(sabs, sprobs)
		if err != nil {
			return nil, err
		}
		if len(sprobs.Errors) == 0 && len(errs) == 0 {
			applySecure(cfg, sroot, sprobs)
		}
		warnings = append(warnings, sprobs.Warnings...)
		errs = append(errs, sprobs.Errors...)
	}
	if len(errs) > 0 {
		return nil, &driver.ErrorList{Errors: errs}
	}
	cfg.Warnings = warnings
	return cfg, nil
}

// Parse decodes a configuration given as YAML text, as Load does a file;
// name stands for the file in error messages. %(NODEPOOL_*) references
// are substituted; there is no secure file.
func Parse(name string, data []byte, opts ...Option) (*Config, error) {
	o := options(opts)
	if err := checkSize(name, len(data)); err != nil {
		return nil, err
	}
	probs := &driver.Problems{File: name}
	data = substituteEnv(data, os.Environ())
	warnUnset(data, probs)
	root := parseDocumentBytes(data, probs)
	if len(probs.Errors) > 0 {
		return nil, probs.Err()
	}
	p := parseDocument(root, probs, o.registry)
	p.resolve(probs)
	if len(probs.Errors) > 0 {
		return nil, probs.Err()
	}
	p.cfg.Warnings = probs.Warnings
	return p.cfg, nil
}

// providerRef ties a parsed provider to its place in the file.
type providerRef struct {
	cfg   *driver.ProviderConfig
	index int
	node  *yaml.Node
}

// parsed is a configuration document after the schema pass.
type parsed struct {
	cfg       *Config
	images    []*rawImage
	providers []providerRef // every entry, duplicates included
}

// parseDocument decodes the top-level keys and every
// provider through its driver. It records type and schema errors; the
// cross-references are checked by resolve (loader) or validateReferences
// (config-validate).
func parseDocument(root *yaml.Node, probs *driver.Problems, drivers *driver.Registry) *parsed {
	strict := probs.Strict
	s := driver.NewSection(root, "", probs)
	cfg := &Config{
		BuildLogDir:       DefaultBuildLogDir,
		BuildLogRetention: DefaultBuildLogRetention,
		ZooKeeperTimeout:  DefaultZooKeeperTimeout,
		TenantLimits:      map[string]map[string]float64{},
	}
	p := &parsed{cfg: cfg}

	w := s.Map("webapp")
	cfg.WebApp = WebAppConfig{
		Port:          w.Int("port", DefaultWebAppPort),
		ListenAddress: w.String("listen_address", DefaultWebAppListen),
	}
	w.Finish()

	cfg.ElementsDir = s.String("elements-dir", "")
	cfg.ImagesDir = s.String("images-dir", "")
	cfg.BuildLogDir = s.String("build-log-dir", DefaultBuildLogDir)
	cfg.BuildLogRetention = s.Int("build-log-retention", DefaultBuildLogRetention)

	for _, zs := range s.List("zookeeper-servers") {
		cfg.ZooKeeperServers = append(cfg.ZooKeeperServers, parseZKServer(zs))
	}
	if s.Has("zookeeper-tls") || s.IsNull("zookeeper-tls") {
		t := s.Map("zookeeper-tls")
		if t.Exists() {
			cfg.ZooKeeperTLS = parseTLS(t, strict)
		}
	}
	if strict && s.Has("zookeeper-timeout") && !s.IsFloatLiteral("zookeeper-timeout") {
		n := s.Node("zookeeper-timeout")
		s.Errorf("zookeeper-timeout", "expected float, got %s (write e.g. %s.0)", n.Tag, n.Value)
		s.Ignore("zookeeper-timeout")
	} else {
		secs := s.Float("zookeeper-timeout", DefaultZooKeeperTimeout.Seconds())
		cfg.ZooKeeperTimeout = time.Duration(secs * float64(time.Second))
	}

	labelIndex := map[string]int{}
	for _, ls := range s.List("labels") {
		l := &LabelConfig{
			Name:        ls.String("name", ""),
			MinReady:    ls.Int("min-ready", 0),
			MaxReadyAge: seconds(ls.Int("max-ready-age", 0)),
		}
		if !strict && ls.Exists() && !ls.Has("name") {
			ls.Errorf("name", "required key not provided")
		}
		ls.Finish()
		if i, dup := labelIndex[l.Name]; dup { // the last one wins
			cfg.Labels[i] = l
			continue
		}
		labelIndex[l.Name] = len(cfg.Labels)
		cfg.Labels = append(cfg.Labels, l)
	}

	for _, ds := range s.List("diskimages") {
		if img := parseRawImage(ds); img != nil {
			p.images = append(p.images, img)
		}
	}

	providerIndex := map[string]int{}
	for i, ps := range s.List("providers") {
		if !ps.Exists() {
			continue
		}
		name := "openstack"
		if n := ps.Node("driver"); n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
			name = n.Value
		}
		d, ok := drivers.Lookup(name)
		if !ok {
			ps.Errorf("driver", "%s: unknown driver", name)
			continue
		}
		pc := d.ParseProvider(ps)
		if pc == nil {
			continue
		}
		p.providers = append(p.providers, providerRef{cfg: pc, index: i, node: nodeOf(root, "providers", i)})
		if j, dup := providerIndex[pc.Name]; dup {
			cfg.Providers[j] = pc
			continue
		}
		providerIndex[pc.Name] = len(cfg.Providers)
		cfg.Providers = append(cfg.Providers, pc)
	}

	if s.Has("max-hold-age") || s.IsNull("max-hold-age") {
		var v float64
		if strict {
			v = float64(s.Int("max-hold-age", 0))
		} else {
			v = s.Float("max-hold-age", 0)
		}
		if v > 0 {
			cfg.MaxHoldAge = time.Duration(v * float64(time.Second))
		}
	}

	for _, ts := range s.List("tenant-resource-limits") {
		name := ts.RequiredString("tenant-name")
		lim := map[string]float64{quota.Cores: quota.Inf, quota.Instances: quota.Inf, quota.RAM: quota.Inf}
		num := func(key string) float64 {
			if strict {
				return float64(ts.Int(key, 0))
			}
			return ts.Float(key, 0)
		}
		for _, k := range ts.Keys() {
			if !ts.Has(k) && !(strict && ts.IsNull(k)) {
				ts.Ignore(k)
				continue
			}
			switch k {
			case "tenant-name":
			case "max-cores":
				lim[quota.Cores] = num(k)
			case "max-servers":
				lim[quota.Instances] = num(k)
			case "max-ram":
				lim[quota.RAM] = num(k)
			case "max-volumes":
				lim[quota.Volumes] = num(k)
			case "max-volume-gb":
				lim[quota.VolumeGB] = num(k)
			default:
				lim[k] = num(k)
			}
		}
		ts.Finish()
		if ts.Exists() {
			cfg.TenantLimits[name] = lim
		}
	}

	s.Finish()
	return p
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }

func parseZKServer(zs *driver.Section) ZooKeeperServer {
	srv := ZooKeeperServer{
		Host:   zs.String("host", ""),
		Port:   zs.Int("port", DefaultZooKeeperPort),
		Chroot: zs.String("chroot", ""),
	}
	if !zs.Problems().Strict && zs.Exists() && !zs.Has("host") {
		zs.Errorf("host", "required key not provided")
	}
	zs.Finish()
	return srv
}

func parseTLS(t *driver.Section, strict bool) *zkclient.TLSFiles {
	get := t.String
	if strict {
		get = func(key, _ string) string { return t.RequiredString(key) }
	}
	tls := &zkclient.TLSFiles{Cert: get("cert", ""), Key: get("key", ""), CA: get("ca", "")}
	t.Finish()
	return tls
}

// nodeOf walks a YAML tree by mapping keys (string) and list indices (int).
func nodeOf(n *yaml.Node, path ...any) *yaml.Node {
	for _, p := range path {
		if n == nil {
			return nil
		}
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		switch k := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return nil
			}
			var found *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					found = n.Content[i+1]
				}
			}
			n = found
		case int:
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return nil
			}
			n = n.Content[k]
		}
	}
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// entryByName returns the index and node of the list entry whose name is
// name in the list at path (-1, nil when absent).
func entryByName(n *yaml.Node, name string, path ...any) (int, *yaml.Node) {
	list := nodeOf(n, path...)
	if list == nil || list.Kind != yaml.SequenceNode {
		return -1, nil
	}
	for i := range list.Content {
		if v := nodeOf(list, i, "name"); v != nil && v.Value == name {
			return i, nodeOf(list, i)
		}
	}
	return -1, nil
}

func lineOf(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}
