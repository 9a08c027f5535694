package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
	// The drivers whose configuration every build can parse.
)

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
