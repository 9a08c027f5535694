package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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

// absPath expands a leading ~ and makes path absolute.
func absPath(path string) (string, error) {
	if path == "~" || strings.HasPrefix(path, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		path = filepath.Join(home, path[1:])
	}
	return filepath.Abs(path)
}

// readDocument reads, substitutes and parses a file. A YAML error is
// recorded on probs (message "YAML parsing failed: ..."); an I/O error is
// returned. The root is nil for an empty document.
func readDocument(path string, probs *driver.Problems) (*yaml.Node, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	warnUnset(data, probs)
	return parseDocumentBytes(data, probs), nil
}

// parseDocumentBytes parses YAML text; a YAML error is recorded on probs.
// The root is nil for an empty document or an error.
func parseDocumentBytes(data []byte, probs *driver.Problems) *yaml.Node {
	root, err := parseYAML(data)
	if err != nil {
		probs.Errorf(yamlErrorLine(err), "", "YAML parsing failed: %v", err)
		return nil
	}
	if root != nil && root.Kind != yaml.MappingNode {
		probs.Errorf(root.Line, "", "expected a dictionary")
		return nil
	}
	return root
}

// readConfigFile reads a file, retrying "no such file",
// and applies %(NODEPOOL_*) substitution.
func readConfigFile(path string) ([]byte, error) {
	var data []byte
	var err error
	for attempt := 1; ; attempt++ {
		data, err = readLimited(path)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt >= readAttempts {
			break
		}
		sleep(readRetryDelay)
	}
	if err != nil {
		return nil, err
	}
	return substituteEnv(data, os.Environ()), nil
}

// substituteEnv replaces %(NAME) by the value of every NODEPOOL_* variable
// of environ ("NAME=value" entries).
func substituteEnv(data []byte, environ []string) []byte {
	s := string(data)
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "NODEPOOL_") {
			continue
		}
		s = strings.ReplaceAll(s, "%("+name+")", val)
	}
	return []byte(s)
}

// parseYAML parses one YAML document; nil for an empty or null document.
func parseYAML(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	return root, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlErrorLine(err error) int {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// rawImage is one diskimages entry as written, before inheritance.
type rawImage struct {
	name, path    string
	line          int
	abstract      bool
	parent        string
	elements      []string
	envVars       map[string]string
	formats       []string
	release       string
	releaseTruthy bool
	rebuildAge    int
	buildTimeout  int
	pause         bool
	dibCmd        string
	username      string
	pythonPath    string
	shellType     string
	metadata      map[string]string
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

// parseRawImage reads one diskimages entry.
func parseRawImage(ds *driver.Section) *rawImage {
	if !ds.Exists() {
		return nil
	}
	img := &rawImage{
		name:         ds.RequiredString("name"),
		path:         ds.Path(),
		line:         ds.Line(),
		abstract:     ds.Bool("abstract", false),
		parent:       ds.String("parent", ""),
		elements:     ds.StringList("elements"),
		envVars:      ds.StringMap("env-vars"),
		formats:      ds.StringList("formats"),
		rebuildAge:   ds.Int("rebuild-age", 0),
		buildTimeout: ds.Int("build-timeout", 0),
		pause:        ds.Bool("pause", false),
		dibCmd:       ds.String("dib-cmd", ""),
		username:     ds.String("username", ""),
		pythonPath:   ds.String("python-path", ""),
		shellType:    ds.String("shell-type", ""),
	}
	ds.Ignore("release", "metadata")
	if n := ds.Node("release"); n != nil {
		switch {
		case n.Kind == yaml.ScalarNode && n.Tag == "!!str":
			img.release, img.releaseTruthy = n.Value, n.Value != ""
		case n.Kind == yaml.ScalarNode && n.Tag == "!!int":
			v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
			if err != nil {
				ds.Errorf("release", "expected str or int, got %s", n.Value)
				break
			}
			img.release, img.releaseTruthy = strconv.FormatInt(v, 10), v != 0
		case n.Kind == yaml.ScalarNode && n.Tag == "!!null" && !ds.Problems().Strict:
		default:
			ds.Errorf("release", "expected str or int")
		}
	}
	if n := ds.Node("metadata"); n != nil {
		switch {
		case n.Kind == yaml.MappingNode:
			img.metadata = map[string]string{}
			if m, ok := ds.Any("metadata").(map[string]any); ok {
				for k, v := range m {
					img.metadata[k] = fmt.Sprint(v)
				}
			}
		case n.Kind == yaml.ScalarNode && n.Tag == "!!null" && !ds.Problems().Strict:
		default:
			ds.Errorf("metadata", "expected a dictionary")
		}
	}
	ds.Finish()
	return img
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

// resolve applies diskimage inheritance and checks the
// references the loader checks: provider diskimages and pool labels.
func (p *parsed) resolve(probs *driver.Problems) {
	cfg := p.cfg
	byName := map[string]*rawImage{}
	for _, img := range p.images {
		byName[img.name] = img
	}
	index := map[string]int{}
	for _, img := range p.images {
		if img.abstract {
			continue
		}
		d, err := inherit(byName[img.name], byName)
		if err != nil {
			probs.Errorf(img.line, img.path, "%v", err)
			continue
		}
		if i, dup := index[d.Name]; dup {
			cfg.Diskimages[i] = d
			continue
		}
		index[d.Name] = len(cfg.Diskimages)
		cfg.Diskimages = append(cfg.Diskimages, d)
	}

	// Indexes, so resolving stays linear in the configuration's size.
	labels := make(map[string]bool, len(cfg.Labels))
	for _, l := range cfg.Labels {
		labels[l.Name] = true
	}
	images := make(map[string]*DiskimageConfig, len(cfg.Diskimages))
	for _, d := range cfg.Diskimages {
		images[d.Name] = d
	}
	providers := make(map[string]*driver.ProviderConfig, len(cfg.Providers))
	for _, pc := range cfg.Providers {
		providers[pc.Name] = pc
	}
	for _, ref := range p.providers {
		if providers[ref.cfg.Name] != ref.cfg {
			continue // a later entry of the same name wins
		}
		pc := ref.cfg
		ppath := fmt.Sprintf("providers[%d]", ref.index)
		for _, pd := range pc.Diskimages {
			if images[pd.Name] == nil {
				i, n := entryByName(ref.node, pd.Name, "diskimages")
				probs.Errorf(lineOf(n), fmt.Sprintf("%s.diskimages[%d]", ppath, i),
					"diskimage %s in provider %s is not defined in the main diskimages list%s", pd.Name, pc.Name, abstractNote(byName, pd.Name))
			}
		}
		for j, pool := range pc.Pools {
			for _, l := range pool.Labels {
				// where locates the label's entry, for an error only.
				where := func() (string, *yaml.Node) {
					lpath := fmt.Sprintf("%s.pools[%d]", ppath, j)
					k, n := entryByName(ref.node, l.Name, "pools", j, "labels")
					if n == nil {
						return lpath, nodeOf(ref.node, "pools", j)
					}
					return fmt.Sprintf("%s.labels[%d]", lpath, k), n
				}
				if !labels[l.Name] {
					lpath, n := where()
					probs.Errorf(lineOf(n), lpath, "label %s in provider %s not in top-level labels", l.Name, pc.Name)
				}
				if l.Diskimage == "" {
					continue
				}
				d := images[l.Diskimage]
				if d == nil {
					lpath, n := where()
					probs.Errorf(lineOf(nodeOf(n, "diskimage")), lpath+".diskimage",
						"label %s in provider %s uses diskimage %s which is not defined in the main diskimages list%s", l.Name, pc.Name, l.Diskimage, abstractNote(byName, l.Diskimage))
					continue
				}
				if l.Username == "" {
					l.Username = d.Username
				}
				if l.PythonPath == "" {
					l.PythonPath = d.PythonPath
				}
				if l.ShellType == "" {
					l.ShellType = d.ShellType
				}
			}
		}
	}
}

func abstractNote(byName map[string]*rawImage, name string) string {
	if img := byName[name]; img != nil && img.abstract {
		return " (it is abstract)"
	}
	return ""
}

// inherit builds the final image of a non-abstract entry.
func inherit(e *rawImage, byName map[string]*rawImage) (*DiskimageConfig, error) {
	d := &DiskimageConfig{
		Name:         e.name,
		Elements:     []string{},
		EnvVars:      map[string]string{},
		RebuildAge:   DefaultRebuildAge,
		BuildTimeout: DefaultBuildTimeout,
		DibCmd:       DefaultDibCmd,
		Username:     DefaultImageUsername,
		PythonPath:   DefaultPythonPath,
		Metadata:     map[string]string{},
		Parent:       e.parent,
	}
	// The chain root-first, detecting undefined parents and cycles.
	chain := []*rawImage{e}
	seen := map[string]bool{e.name: true}
	for cur := e; cur.parent != ""; {
		par := byName[cur.parent]
		if par == nil {
			return nil, fmt.Errorf("diskimage %s has non-existant parent: %s", cur.name, cur.parent)
		}
		if seen[par.name] {
			names := make([]string, 0, len(chain)+1)
			for _, c := range chain {
				names = append(names, c.name)
			}
			names = append(names, par.name)
			return nil, fmt.Errorf("diskimage %s: parent cycle %s", e.name, strings.Join(names, " -> "))
		}
		seen[par.name] = true
		chain = append(chain, par)
		cur = par
	}
	for i := len(chain) - 1; i >= 0; i-- {
		applyImage(d, chain[i])
	}
	return d, nil
}

// applyImage applies the keys of one entry onto the accumulated image.
func applyImage(d *DiskimageConfig, x *rawImage) {
	d.Elements = append(d.Elements, x.elements...)
	for k, v := range x.envVars {
		d.EnvVars[k] = v
	}
	if len(x.formats) > 0 {
		d.Formats = append([]string(nil), x.formats...)
	}
	if x.buildTimeout != 0 {
		d.BuildTimeout = seconds(x.buildTimeout)
	}
	if x.dibCmd != "" {
		d.DibCmd = x.dibCmd
	}
	if x.pause {
		d.Pause = true
	}
	if x.pythonPath != "" {
		d.PythonPath = x.pythonPath
	}
	if x.shellType != "" {
		d.ShellType = x.shellType
	}
	if x.rebuildAge != 0 {
		d.RebuildAge = seconds(x.rebuildAge)
	}
	if x.releaseTruthy {
		d.Release = x.release
	}
	if x.username != "" {
		d.Username = x.username
	}
	d.Metadata = map[string]string{}
	for k, v := range x.metadata {
		d.Metadata[k] = v
	}
}

// applySecure merges the secure file.
func applySecure(cfg *Config, root *yaml.Node, probs *driver.Problems) {
	if root == nil {
		return
	}
	s := driver.NewSection(root, "", probs)
	if servers := s.List("zookeeper-servers"); len(servers) > 0 {
		cfg.ZooKeeperServers = nil
		for _, zs := range servers {
			cfg.ZooKeeperServers = append(cfg.ZooKeeperServers, parseZKServer(zs))
		}
	}
	if t := s.Map("zookeeper-tls"); t.Exists() && len(t.Keys()) > 0 {
		cfg.ZooKeeperTLS = parseTLS(t, false)
	}
	for _, ds := range s.List("diskimages") {
		if !ds.Exists() {
			continue
		}
		name := ds.RequiredString("name")
		if !ds.Has("env-vars") {
			ds.Errorf("env-vars", "required key not provided")
		}
		env := ds.StringMap("env-vars")
		if name == "" {
			continue
		}
		d := cfg.Diskimage(name)
		if d == nil {
			probs.Errorf(ds.Line(), "", "unknown diskimage %s", name)
			continue
		}
		for k, v := range env {
			d.EnvVars[k] = v
		}
	}
	// Other keys (and other keys of the entries) are ignored silently.
}

// ZooKeeperClientConfig returns the connection settings of the config:
// hosts "host:port", the single session chroot, the session timeout and
// TLS files (nil = plaintext).
func (c *Config) ZooKeeperClientConfig() (zkclient.Config, error) {
	zc := zkclient.Config{SessionTimeout: c.ZooKeeperTimeout}
	if zc.SessionTimeout <= 0 {
		zc.SessionTimeout = DefaultZooKeeperTimeout
	}
	for _, s := range c.ZooKeeperServers {
		host := s.Host
		if ip := net.ParseIP(host); ip != nil && strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		port := s.Port
		if port == 0 {
			port = DefaultZooKeeperPort
		}
		zc.Hosts = append(zc.Hosts, host+":"+strconv.Itoa(port))
		if s.Chroot == "" {
			continue
		}
		if zc.Chroot != "" && zc.Chroot != s.Chroot {
			return zkclient.Config{}, fmt.Errorf("zookeeper-servers: conflicting chroots %q and %q: a ZooKeeper session has a single chroot; give the same chroot on every entry or only on the last one", zc.Chroot, s.Chroot)
		}
		zc.Chroot = s.Chroot
	}
	if c.ZooKeeperTLS != nil {
		t := *c.ZooKeeperTLS
		var missing []string
		for _, f := range []struct{ key, val string }{{"cert", t.Cert}, {"key", t.Key}, {"ca", t.CA}} {
			if f.val == "" {
				missing = append(missing, f.key)
			}
		}
		if len(missing) > 0 {
			return zkclient.Config{}, fmt.Errorf("zookeeper-tls: missing %s: cert, key and ca are all required", strings.Join(missing, ", "))
		}
		for _, f := range []string{t.Cert, t.Key, t.CA} {
			fh, err := os.Open(f)
			if err != nil {
				return zkclient.Config{}, fmt.Errorf("zookeeper-tls: %w", err)
			}
			fh.Close()
		}
		zc.TLS = &t
	}
	return zc, nil
}
