package nodepool

import (
	"github.com/nodepool-go/nodepool/config"
	"github.com/nodepool-go/nodepool/driver"
)

// LoadConfig reads the main configuration file and the optional secure
// file the way the daemons do: lenient about unknown keys (reported in
// config.Config.Warnings), strict about types and references. Providers are
// parsed by drivers of driver.Default unless config.WithRegistry names
// another registry. Parse and reference errors are a *driver.ErrorList.
func LoadConfig(path, securePath string, opts ...config.Option) (*config.Config, error) {
	return config.Load(path, securePath, opts...)
}

// ValidateConfig checks a configuration file as `nodepool config-validate`
// does, with upstream's verdicts and messages.
func ValidateConfig(path string, opts ...config.Option) *driver.Problems {
	return config.Validate(path, opts...)
}
