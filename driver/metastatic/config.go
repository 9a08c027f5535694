// Package metastatic is the metastatic driver: nodes
// carved out of backing nodes obtained from nodepool itself. Unlike the
// other drivers it talks to ZooKeeper: it requests backing nodes with node
// requests, locks them, and keeps all its state in their records.
package metastatic

import (
	"time"

	"github.com/nodepool-go/nodepool/driver"
)

// Name is the driver's registered name.
const Name = "metastatic"

// Defaults of the metastatic provider keys.
const (
	DefaultLaunchTimeout = 3600
	DefaultBootTimeout   = 120
	DefaultGraceTime     = 60 * time.Second
	// Placeholder is the connection value of a label before the backing
	// node's values replace it.
	Placeholder = "unknown"
	// ImageName is the image name of every label (its node's image_id).
	ImageName = "unused"
)

// Driver parses metastatic providers.
type Driver struct{}

func init() { driver.Register(Name, Driver{}) }

// ProviderSettings are the metastatic provider keys (ProviderConfig.Settings).
type ProviderSettings struct {
	Rate float64 // parsed, unused
}

// LabelSettings are the metastatic label keys (LabelConfig.Settings).
type LabelSettings struct {
	BackingLabel    string        // backing-label: the label of the backing nodes
	MaxParallelJobs int           // max-parallel-jobs: nodes per backing node
	GraceTime       time.Duration // grace-time: idle time before a backing node is returned
}

// ParseProvider parses a metastatic provider.
func (Driver) ParseProvider(s *driver.Section) *driver.ProviderConfig {
	strict := s.Problems().Strict
	p := driver.ParseProviderCommon(s)
	p.Driver = Name
	p.ManageImages = false
	driver.ParseTimeouts(s, p, DefaultLaunchTimeout, DefaultBootTimeout)
	p.Settings = &ProviderSettings{Rate: s.Float("rate", 1)}
	if !s.Has("pools") {
		s.Errorf("pools", "required key not provided")
	}
	backing := map[string]LabelSettings{}
	for _, ps := range s.List("pools") {
		pool := driver.ParsePoolCommon(ps)
		pool.HostKeyChecking = false
		pool.UseInternalIP = false
		if !ps.Has("labels") {
			ps.Errorf("labels", "required key not provided")
		}
		for _, ls := range ps.List("labels") {
			if !ls.Exists() {
				continue
			}
			lst := &LabelSettings{
				BackingLabel:    ls.RequiredString("backing-label"),
				MaxParallelJobs: ls.Int("max-parallel-jobs", 1),
				GraceTime:       time.Duration(ls.Int("grace-time", int(DefaultGraceTime/time.Second))) * time.Second,
			}
			l := &driver.LabelConfig{
				Name:           ls.RequiredString("name"),
				CloudImage:     ImageName,
				Username:       Placeholder,
				PythonPath:     Placeholder,
				ShellType:      Placeholder,
				ConnectionType: Placeholder,
				Settings:       lst,
			}
			if prev, ok := backing[lst.BackingLabel]; ok && prev != *lst && !strict {
				ls.Errorf("backing-label", "all labels with backing-label %s must have the same max-parallel-jobs and grace-time", lst.BackingLabel)
			}
			backing[lst.BackingLabel] = *lst
			ls.Finish()
			pool.Labels = append(pool.Labels, l)
		}
		ps.Finish()
		p.Pools = append(p.Pools, pool)
	}
	s.Finish()
	return p
}
