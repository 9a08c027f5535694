// Package kube is the code the kubernetes, openshift and openshiftpods
// drivers share: their configuration (one parser, three flavors of the
// schema), the client-go connection built from a kubeconfig context
// through clientcmd, and one adapter whose create and delete machines
// make namespaces (kubernetes), projects (openshift) or bare pods
// (openshiftpods) for nodes. The driver packages only register a flavor.
package kube

import (
	"math"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nodepool-go/nodepool/driver"
)

// Flavor selects which of the three drivers a provider belongs to.
type Flavor int

// The three flavors.
const (
	// Kubernetes makes a namespace per node (and a pod in it for pod
	// labels).
	Kubernetes Flavor = iota
	// OpenShift makes a project per node through a ProjectRequest.
	OpenShift
	// OpenShiftPods makes one pod per node in the pool's existing project.
	OpenShiftPods
)

// String returns the driver name of the flavor.
func (f Flavor) String() string {
	switch f {
	case OpenShift:
		return "openshift"
	case OpenShiftPods:
		return "openshiftpods"
	}
	return "kubernetes"
}

// Timing defaults. The waits follow the reference implementation (30
// one-second polls for a service-account token, 300 for a pod to run).
const (
	DefaultTokenTimeout = 30 * time.Second
	DefaultPodTimeout   = 300 * time.Second
	DefaultPollInterval = 500 * time.Millisecond
	DefaultListTTL      = 2 * time.Second
)

// ProviderSettings are a provider's own keys (ProviderConfig.Settings).
type ProviderSettings struct {
	Flavor  Flavor
	Context string // context: the kubeconfig context ("" = current, or in-cluster)
	// MaxServers is the provider's max-servers (kubernetes: accepted but
	// not applied, as upstream) or max-projects (openshift: the pools'
	// default max-servers); MaxPods is openshiftpods' max-pods (accepted,
	// not applied, as upstream).
	MaxServers int
	MaxPods    int
	// Timings of the machines; the parser sets the defaults above, tests
	// shorten them.
	TokenTimeout time.Duration
	PodTimeout   time.Duration
	PollInterval time.Duration
	ListTTL      time.Duration
	// QPS and Burst are client-go's client-side rate limit of the
	// provider's API calls (ClientQPS, ClientBurst by default).
	QPS   float32
	Burst int
}

// EnvVar is one env entry of a pod label.
type EnvVar struct {
	Name  string // name
	Value string // value
}

// LabelSettings are a pool label's own keys with the pool's default-label-*
// values already applied (LabelConfig.Settings).
type LabelSettings struct {
	Type             string // "namespace" (kubernetes), "project" (openshift) or "pod"
	Image            string
	ImagePull        string // image-pull (IfNotPresent)
	ImagePullSecrets []any  // image-pull-secrets (openshift flavors)
	// CPU, Memory (MiB) and Storage (MB) requests and their limits; 0 is
	// unset.
	CPU, Memory, Storage                int
	CPULimit, MemoryLimit, StorageLimit int
	GPU                                 float64 // gpu (0 = none)
	GPUResource                         string  // gpu-resource
	Env                                 []EnvVar
	NodeSelector                        map[string]string
	Privileged                          *bool
	SchedulerName                       string
	Volumes                             []any // volumes, as Kubernetes Volume objects
	VolumeMounts                        []any // volume-mounts
	Labels                              map[string]string
	Annotations                         map[string]string
	ExtraResources                      map[string]float64
}

// IsPod reports whether the label makes a pod.
func (l *LabelSettings) IsPod() bool { return l.Type == "pod" }

// Parse reads one provider entry of the given flavor.
func Parse(f Flavor, s *driver.Section) *driver.ProviderConfig {
	p := driver.ParseProviderCommon(s)
	p.LaunchRetries = s.Int("launch-retries", 3)
	st := &ProviderSettings{
		Flavor: f, MaxServers: driver.Unlimited, MaxPods: driver.Unlimited,
		TokenTimeout: DefaultTokenTimeout, PodTimeout: DefaultPodTimeout,
		PollInterval: DefaultPollInterval, ListTTL: DefaultListTTL,
		QPS: ClientQPS, Burst: ClientBurst,
	}
	if f == Kubernetes {
		st.Context = s.String("context", "")
		st.MaxServers = s.Limit("max-servers")
	} else {
		st.Context = s.RequiredString("context")
	}
	switch f {
	case OpenShift:
		st.MaxServers = s.Limit("max-projects")
	case OpenShiftPods:
		st.MaxPods = s.Limit("max-pods")
		if s.Has("max-pods") {
			s.Warnf("max-pods", "max-pods limits nothing (as upstream); set max-servers on the pools")
		}
	}
	if f == Kubernetes && s.Has("max-servers") {
		s.Warnf("max-servers", "a kubernetes provider's max-servers limits nothing (as upstream); set it on the pools")
	}
	maxCores := s.Limit("max-cores")
	maxRAM := s.Limit("max-ram")
	maxRes := intMap(s, "max-resources")
	if !s.Has("pools") && !s.IsNull("pools") {
		s.Errorf("pools", "required key not provided")
	}
	for _, ps := range s.List("pools") {
		p.Pools = append(p.Pools, parsePool(f, ps, st, maxCores, maxRAM, maxRes))
	}
	p.Settings = st
	s.Finish()
	return p
}

func parsePool(f Flavor, ps *driver.Section, st *ProviderSettings, maxCores, maxRAM int, maxRes map[string]float64) *driver.PoolConfig {
	pool := driver.ParsePoolCommon(ps)
	if f == OpenShift && !ps.Has("max-servers") {
		pool.MaxServers = st.MaxServers
	}
	pool.HostKeyChecking = false
	pool.MaxCores = ps.Int("max-cores", maxCores)
	pool.MaxRAM = ps.Int("max-ram", maxRAM)
	if len(maxRes) > 0 || ps.Has("max-resources") {
		pool.MaxResources = map[string]float64{}
		for k, v := range maxRes {
			pool.MaxResources[k] = v
		}
		for k, v := range intMap(ps, "max-resources") {
			pool.MaxResources[k] = v
		}
	}
	def := labelDefaults{
		cpu: ps.Int("default-label-cpu", 0), memory: ps.Int("default-label-memory", 0),
		storage: ps.Int("default-label-storage", 0), extra: intMap(ps, "default-label-extra-resources"),
	}
	def.cpuLimit, def.hasCPULimit = ps.Int("default-label-cpu-limit", 0), ps.Has("default-label-cpu-limit")
	def.memLimit, def.hasMemLimit = ps.Int("default-label-memory-limit", 0), ps.Has("default-label-memory-limit")
	def.stoLimit, def.hasStoLimit = ps.Int("default-label-storage-limit", 0), ps.Has("default-label-storage-limit")
	if !ps.Has("labels") && !ps.IsNull("labels") {
		ps.Errorf("labels", "required key not provided")
	}
	for _, ls := range ps.List("labels") {
		pool.Labels = append(pool.Labels, parseLabel(f, ls, pool, def))
	}
	ps.Finish()
	return pool
}

type labelDefaults struct {
	cpu, memory, storage                  int
	cpuLimit, memLimit, stoLimit          int
	hasCPULimit, hasMemLimit, hasStoLimit bool
	extra                                 map[string]float64
}

// firstInt returns the label's key when set, else def.
func firstInt(ls *driver.Section, key string, def int) int {
	if ls.Has(key) {
		return ls.Int(key, def)
	}
	return def
}

func parseLabel(f Flavor, ls *driver.Section, pool *driver.PoolConfig, def labelDefaults) *driver.LabelConfig {
	l := &driver.LabelConfig{
		Name:       ls.RequiredString("name"),
		PythonPath: ls.String("python-path", "auto"),
		ShellType:  ls.String("shell-type", ""),
	}
	lst := &LabelSettings{ImagePull: ls.String("image-pull", "IfNotPresent")}
	switch f {
	case OpenShiftPods:
		lst.Type = "pod"
		lst.Image = ls.RequiredString("image")
	default:
		// kubernetes makes a pod for any type but namespace, openshift a
		// project for any type but pod.
		lst.Type = ls.RequiredString("type")
		lst.Image = ls.String("image", "")
		switch {
		case f == Kubernetes && lst.Type != "namespace":
			lst.Type = "pod"
		case f == OpenShift && lst.Type != "pod":
			lst.Type = "project"
		}
	}
	if f != Kubernetes {
		if ls.Has("image-pull-secrets") {
			if v, ok := ls.Any("image-pull-secrets").([]any); ok {
				lst.ImagePullSecrets = v
			} else {
				ls.Errorf("image-pull-secrets", "expected list")
			}
		}
	}
	lst.CPU = firstInt(ls, "cpu", def.cpu)
	lst.Memory = firstInt(ls, "memory", def.memory)
	lst.Storage = firstInt(ls, "storage", def.storage)
	// A limit is the label's own, else the pool's default limit, else the
	// label's request (which may itself come from the pool's default).
	lim := func(key string, poolLimit int, hasPool bool, request int) int {
		if hasPool {
			request = poolLimit
		}
		return firstInt(ls, key, request)
	}
	lst.CPULimit = lim("cpu-limit", def.cpuLimit, def.hasCPULimit, lst.CPU)
	lst.MemoryLimit = lim("memory-limit", def.memLimit, def.hasMemLimit, lst.Memory)
	lst.StorageLimit = lim("storage-limit", def.stoLimit, def.hasStoLimit, lst.Storage)
	lst.GPU = parseGPU(f, ls)
	lst.GPUResource = ls.String("gpu-resource", "")
	lst.Env = parseEnv(ls)
	lst.NodeSelector = anyStringMap(ls, "node-selector")
	if ls.Has("privileged") {
		v := ls.Bool("privileged", false)
		lst.Privileged = &v
	}
	lst.SchedulerName = ls.String("scheduler-name", "")
	lst.Volumes = anyList(ls, "volumes")
	lst.VolumeMounts = anyList(ls, "volume-mounts")
	lst.Labels = anyStringMap(ls, "labels")
	lst.Annotations = anyStringMap(ls, "annotations")
	lst.ExtraResources = map[string]float64{}
	for k, v := range def.extra {
		lst.ExtraResources[k] = v
	}
	for k, v := range intMap(ls, "extra-resources") {
		lst.ExtraResources[k] = v
	}
	l.Settings = lst
	l.Resources = Need(lst)
	switch {
	case !lst.IsPod() && f == OpenShift:
		l.ConnectionType = "project"
	case !lst.IsPod():
		l.ConnectionType = "namespace"
	default:
		l.ConnectionType = "kubectl"
	}
	ls.Finish()
	return l
}

// Need returns what one node of the label counts against quota:
// one instance, cpu as cores, memory as ram, storage as
// ephemeral-storage, the gpu under its resource name, and the extra
// resources.
func Need(l *LabelSettings) map[string]float64 {
	r := map[string]float64{"instances": 1}
	if l.CPU != 0 {
		r["cores"] = float64(l.CPU)
	}
	if l.Memory != 0 {
		r["ram"] = float64(l.Memory)
	}
	if l.Storage != 0 {
		r["ephemeral-storage"] = float64(l.Storage)
	}
	if l.GPU != 0 && l.GPUResource != "" {
		r[l.GPUResource] = l.GPU
	}
	for k, v := range l.ExtraResources {
		r[k] = v
	}
	return r
}

// parseGPU reads gpu: a float for kubernetes and openshift (an integer is
// refused by the validator, as upstream's schema does), a string holding a
// number for openshiftpods.
func parseGPU(f Flavor, ls *driver.Section) float64 {
	if !ls.Has("gpu") {
		ls.Ignore("gpu")
		return 0
	}
	if f == OpenShiftPods {
		s := ls.String("gpu", "")
		v, err := strconv.ParseFloat(s, 64)
		if err != nil && s != "" {
			ls.Warnf("gpu", "gpu %q is not a number; no gpu is requested", s)
		}
		return v
	}
	if ls.Problems().Strict && !ls.IsFloatLiteral("gpu") {
		ls.Errorf("gpu", "expected float")
		return 0
	}
	return ls.Float("gpu", 0)
}

func parseEnv(ls *driver.Section) []EnvVar {
	var out []EnvVar
	for _, es := range ls.List("env") {
		e := EnvVar{Name: es.RequiredString("name"), Value: es.RequiredString("value")}
		es.Finish()
		out = append(out, e)
	}
	return out
}

// intMap reads a {str: int} mapping (floats are refused).
func intMap(s *driver.Section, key string) map[string]float64 {
	if !s.Has(key) {
		s.Ignore(key)
		if s.IsNull(key) && s.Problems().Strict {
			s.Errorf(key, "expected a dictionary, got null")
		}
		return nil
	}
	if n := s.Node(key); n.Kind != yaml.MappingNode {
		s.Errorf(key, "expected a dictionary")
		s.Ignore(key)
		return nil
	}
	m := s.Map(key)
	out := map[string]float64{}
	for _, k := range m.Keys() {
		if m.IsFloatLiteral(k) {
			m.Errorf(k, "expected int")
			m.Ignore(k)
			continue
		}
		v := m.Int(k, 0)
		out[k] = float64(v)
	}
	return out
}

// anyStringMap reads a free-form dictionary whose values become strings
// (Kubernetes labels, annotations and node selectors are strings).
func anyStringMap(s *driver.Section, key string) map[string]string {
	if !s.Has(key) {
		return typedNull(s, key, "a dictionary")
	}
	m, ok := s.Any(key).(map[string]any)
	if !ok {
		s.Errorf(key, "expected a dictionary")
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = scalarString(v)
	}
	return out
}

func anyList(s *driver.Section, key string) []any {
	if !s.Has(key) {
		typedNull(s, key, "list")
		return nil
	}
	v, ok := s.Any(key).([]any)
	if !ok {
		s.Errorf(key, "expected list")
		return nil
	}
	return v
}

// typedNull marks key read and, when validating, refuses a null value.
func typedNull(s *driver.Section, key, typ string) map[string]string {
	s.Ignore(key)
	if s.IsNull(key) && s.Problems().Strict {
		s.Errorf(key, "expected %s, got null", typ)
	}
	return nil
}

func scalarString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case int:
		return strconv.Itoa(t)
	case float64:
		if t == math.Trunc(t) {
			return strconv.FormatFloat(t, 'f', -1, 64)
		}
		return strconv.FormatFloat(t, 'g', -1, 64)
	case nil:
		return ""
	}
	return ""
}
