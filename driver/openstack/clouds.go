package openstack

import (
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// cloudsYAMLPaths lists where clouds.yaml is looked for, in the order
// gophercloud's clouds.Parse (like openstackclient) uses:
// OS_CLIENT_CONFIG_FILE alone when set, else the working directory, the
// user's config directory (XDG_CONFIG_HOME or ~/.config) under openstack/,
// and /etc/openstack. gophercloud v2 exposes neither the file it chose nor
// image_format, so the order is repeated here; TestCloudImageFormat checks
// that both pick the same file.
func cloudsYAMLPaths() []string {
	if p := os.Getenv("OS_CLIENT_CONFIG_FILE"); p != "" {
		return []string{p}
	}
	var out []string
	if cwd, err := os.Getwd(); err == nil {
		out = append(out, filepath.Join(cwd, "clouds.yaml"))
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".config")
		}
	}
	if dir != "" {
		out = append(out, filepath.Join(dir, "openstack", "clouds.yaml"))
	}
	return append(out, filepath.Join("/etc", "openstack", "clouds.yaml"))
}

// cloudImageFormat returns the image_format clouds.yaml sets for a cloud
// (the disk format the builder builds and uploads for its providers), or
// DefaultImageFormat when the first clouds.yaml found does not set it or
// none can be read. Only that one key is read; credentials are
// gophercloud's business.
func cloudImageFormat(cloud string) string {
	for _, p := range cloudsYAMLPaths() {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var doc struct {
			Clouds map[string]struct {
				ImageFormat string `yaml:"image_format"`
			} `yaml:"clouds"`
		}
		if yaml.Unmarshal(data, &doc) != nil {
			return DefaultImageFormat
		}
		if f := doc.Clouds[cloud].ImageFormat; f != "" {
			return f
		}
		return DefaultImageFormat
	}
	return DefaultImageFormat
}
