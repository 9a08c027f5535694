package config

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
	// The drivers whose configuration every build can parse.
)

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
