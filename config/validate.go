package config

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
)

// Validate checks a configuration file the way `nodepool
// config-validate` does: parse (step 1), strict schema
// (step 2), cross-references (step 3). Steps 1 and 2 stop at their first
// failing step; Problems.Step names the step that failed. The secure file
// is not validated. Errors of step 3 carry upstream's exact messages.
func Validate(path string, opts ...Option) *driver.Problems {
	o := options(opts)
	probs := &driver.Problems{File: path, Strict: true}
	data, err := readConfigFile(path)
	if err != nil {
		probs.Errorf(0, "", "YAML parsing failed: %v", err)
		probs.Step = driver.StepParse
		return probs
	}
	return validate(data, probs, o)
}

// ValidateData checks a configuration given as YAML text as Validate does
// a file; name stands for the file in the problems. %(NODEPOOL_*)
// references are substituted.
func ValidateData(name string, data []byte, opts ...Option) *driver.Problems {
	probs := &driver.Problems{File: name, Strict: true}
	if err := checkSize(name, len(data)); err != nil {
		probs.Errorf(0, "", "YAML parsing failed: %v", err)
		probs.Step = driver.StepParse
		return probs
	}
	return validate(substituteEnv(data, os.Environ()), probs, options(opts))
}

// validate is Validate's work on the file's substituted text.
func validate(data []byte, probs *driver.Problems, o loadOptions) *driver.Problems {
	warnUnset(data, probs)
	root, err := parseYAML(data)
	if err != nil {
		probs.Errorf(yamlErrorLine(err), "", "YAML parsing failed: %v", err)
		probs.Step = driver.StepParse
		return probs
	}
	if root == nil {
		probs.Errorf(0, "", "expected a dictionary, got an empty document")
		probs.Step = driver.StepSchema
		return probs
	}
	if root.Kind != yaml.MappingNode {
		probs.Errorf(root.Line, "", "expected a dictionary")
		probs.Step = driver.StepSchema
		return probs
	}
	p := parseDocument(root, probs, o.registry)
	if len(probs.Errors) > 0 {
		probs.Step = driver.StepSchema
		return probs
	}
	p.validateReferences(probs)
	if len(probs.Errors) > 0 {
		probs.Step = driver.StepReferences
	}
	return probs
}

// validateReferences is step 3 of config-validate: upstream's checks, with
// its exact messages. Only OpenStack providers are checked, and abstract
// diskimages count as defined.
func (p *parsed) validateReferences(probs *driver.Problems) {
	images := map[string]bool{}
	for _, img := range p.images {
		images[img.name] = true
	}
	labels := map[string]bool{}
	for _, l := range p.cfg.Labels {
		labels[l.Name] = true
	}
	for _, ref := range p.providers {
		pc := ref.cfg
		if pc.Driver != "openstack" {
			continue
		}
		for _, pd := range pc.Diskimages {
			if !images[pd.Name] {
				_, n := entryByName(ref.node, pd.Name, "diskimages")
				probs.Errorf(lineOf(n), "", "diskimage %s in provider %s is not defined in the main diskimages list", pd.Name, pc.Name)
			}
		}
		for j, pool := range pc.Pools {
			for _, l := range pool.Labels {
				if labels[l.Name] && (l.Diskimage == "" || images[l.Diskimage]) {
					continue
				}
				_, n := entryByName(ref.node, l.Name, "pools", j, "labels")
				if !labels[l.Name] {
					probs.Errorf(lineOf(n), "", "label %s in provider %s not in top-level labels", l.Name, pc.Name)
				}
				if l.Diskimage != "" && !images[l.Diskimage] {
					probs.Errorf(lineOf(nodeOf(n, "diskimage")), "", "label %s in provider %s uses diskimage %s which is not defined in the main diskimages list", l.Name, pc.Name, l.Diskimage)
				}
			}
		}
	}
	seen := map[string]bool{}
	for _, img := range p.images {
		if seen[img.name] {
			probs.Errorf(img.line, "", "diskimage %s already defined", img.name)
		}
		seen[img.name] = true
	}
	for _, img := range p.images {
		if img.parent != "" && !images[img.parent] {
			probs.Errorf(img.line, "", "%s", fmt.Sprintf("diskimage %s has non-existant parent: %s", img.name, img.parent))
		}
	}
}
