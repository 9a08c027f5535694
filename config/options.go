package config

import "github.com/nodepool-go/nodepool/driver"

// Option adjusts how a configuration is loaded or validated.
type Option func(*loadOptions)

type loadOptions struct {
	registry *driver.Registry
}

// WithRegistry makes providers name drivers of r instead of the drivers of
// driver.Default.
func WithRegistry(r *driver.Registry) Option {
	return func(o *loadOptions) {
		if r != nil {
			o.registry = r
		}
	}
}

func options(opts []Option) loadOptions {
	o := loadOptions{registry: driver.Default}
	for _, f := range opts {
		f(&o)
	}
	return o
}
