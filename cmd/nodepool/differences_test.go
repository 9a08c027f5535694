package main

import (
	"testing"

	"github.com/nodepool-go/nodepool/internal/diffcheck"
)

// upstreamCLI is the command line of upstream's nodepool command at the
// reference version: global flags, sub-commands and "<sub-command>
// <flag>" for their flags (positionals left out).
var upstreamCLI = []string{
	"-h", "--help", "-l", "--version", "-c", "-s", "--debug",
	"list", "list --detail", "image-list", "dib-image-list", "image-status",
	"image-build", "alien-image-list", "delete", "delete --now", "hold",
	"image-delete", "image-delete --provider", "image-delete --image",
	"image-delete --upload-id", "image-delete --build-id", "dib-image-delete",
	"config-validate", "request-list", "info", "erase", "erase --force",
	"image-pause", "image-unpause", "export-image-data", "import-image-data",
}

// TestDifferencesNameEveryCLIAddition: each flag or sub-command of ours
// that upstream's parser lacks (and the reverse) is named in
// docs/differences.md.
func TestDifferencesNameEveryCLIAddition(t *testing.T) {
	p := buildParser()
	var ours []string
	for _, o := range p.opts {
		ours = append(ours, o.flags...)
	}
	for _, c := range p.commands {
		ours = append(ours, c.name)
		for _, o := range c.p.opts {
			for _, f := range o.flags {
				if f != "-h" && f != "--help" {
					ours = append(ours, c.name+" "+f)
				}
			}
		}
	}
	diffcheck.Names(t, diffcheck.Document(t), "nodepool", upstreamCLI, ours)
}
