package kube

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepool-go/nodepool/driver"
	"github.com/nodepool-go/nodepool/driver/listcache"
)

// Kubernetes label keys our objects carry besides the ownership keys.
const (
	LabelNodeLabel = "nodepool_node_label" // the nodepool label of the node
	workerUser     = "zuul-worker"         // the service account Zuul uses
)

// item is one namespace, project or pod as the cached listings hold it.
type item struct {
	Namespace string // pods only
	Name      string
	Labels    map[string]string
	Phase     string // namespace phase (Active, Terminating) or pod phase
	Pod       *corev1.Pod
}

// Adapter is one provider's connection to its cluster.
type Adapter struct {
	cfg *driver.ProviderConfig
	st  *ProviderSettings
	log *slog.Logger
	c   *conn

	spaces *listcache.Cache[item] // namespaces (kubernetes) or projects (openshift)
	pods   *listcache.Cache[item] // our pods
}

var (
	_ driver.Adapter      = (*Adapter)(nil)
	_ driver.LeakCleaner  = (*Adapter)(nil)
	_ driver.LabelChecker = (*Adapter)(nil)
)

// Open returns the adapter of a parsed provider. It reads the kubeconfig
// (no API call is made until a machine runs).
func Open(_ context.Context, cfg *driver.ProviderConfig, env driver.Env) (driver.Adapter, error) {
	st, ok := cfg.Settings.(*ProviderSettings)
	if !ok || st == nil {
		return nil, fmt.Errorf("provider %s has no kubernetes settings", cfg.Name)
	}
	c, err := connect(st)
	if err != nil {
		return nil, fmt.Errorf("%s: provider %s: context %q: %w", st.Flavor, cfg.Name, st.Context, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &Adapter{cfg: cfg, st: st, log: log, c: c}
	a.spaces = listcache.New(st.ListTTL, log, a.listSpaces)
	a.pods = listcache.New(st.ListTTL, log, a.listPods)
	return a, nil
}

// Close releases nothing: the clients hold no background work.
func (a *Adapter) Close() error { return nil }

// LabelReady is always true: images are pulled by the cluster.
func (a *Adapter) LabelReady(context.Context, *driver.LabelConfig) bool { return true }

func (a *Adapter) selector() string {
	return driver.MetaProviderName + "=" + a.cfg.Name
}

func (a *Adapter) listSpaces(ctx context.Context) ([]item, error) {
	if a.st.Flavor == OpenShift {
		l, err := a.c.dyn.Resource(gvrProjects).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, classify(err, "listing projects")
		}
		out := make([]item, 0, len(l.Items))
		for _, u := range l.Items {
			phase := nestedString(u.Object, "status", "phase")
			out = append(out, item{Name: u.GetName(), Labels: u.GetLabels(), Phase: phase})
		}
		return out, nil
	}
	l, err := a.c.kc.listNamespaces(ctx)
	if err != nil {
		return nil, classify(err, "listing namespaces")
	}
	out := make([]item, 0, len(l.Items))
	for _, ns := range l.Items {
		out = append(out, item{Name: ns.Name, Labels: ns.Labels, Phase: string(ns.Status.Phase)})
	}
	return out, nil
}

// listPods lists the provider's pods: across all namespaces for the
// kubernetes and openshift flavors, in each pool's project for
// openshiftpods (whose credentials may reach no further).
func (a *Adapter) listPods(ctx context.Context) ([]item, error) {
	namespaces := []string{""}
	if a.st.Flavor == OpenShiftPods {
		namespaces = namespaces[:0]
		for _, p := range a.cfg.Pools {
			namespaces = append(namespaces, p.Name)
		}
	}
	var out []item
	for _, ns := range namespaces {
		l, err := a.c.kc.listPods(ctx, ns, a.selector())
		if err != nil {
			return nil, classify(err, "listing pods")
		}
		for i := range l.Items {
			p := &l.Items[i]
			out = append(out, item{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, Phase: string(p.Status.Phase), Pod: p})
		}
	}
	return out, nil
}

// ownership returns the ownership keys among an object's labels.
func ownership(labels map[string]string) map[string]string {
	var md map[string]string
	for _, k := range []string{driver.MetaNodeID, driver.MetaPoolName, driver.MetaProviderName} {
		if v, ok := labels[k]; ok {
			if md == nil {
				md = map[string]string{}
			}
			md[k] = v
		}
	}
	return md
}

// ListInstances lists every namespace (kubernetes), project (openshift)
// or, for openshiftpods, our pods in the pools' projects; external ids
// are the namespace or project name, or "<pool>-<pod>".
func (a *Adapter) ListInstances(ctx context.Context) ([]driver.Instance, error) {
	var out []driver.Instance
	if a.st.Flavor == OpenShiftPods {
		pods, _, err := a.pods.Get(ctx)
		if err != nil {
			return nil, err
		}
		for _, p := range pods {
			out = append(out, driver.Instance{ExternalID: p.Namespace + "-" + p.Name, InterfaceIP: p.Name, Cloud: a.st.Context, Metadata: ownership(p.Labels)})
		}
		return out, nil
	}
	spaces, _, err := a.spaces.Get(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range spaces {
		out = append(out, driver.Instance{ExternalID: s.Name, Cloud: a.st.Context, Metadata: ownership(s.Labels)})
	}
	return out, nil
}

// resourceType is the leak-cleanup type of the flavor's objects.
func (a *Adapter) resourceType() string {
	switch a.st.Flavor {
	case OpenShift:
		return "project"
	case OpenShiftPods:
		return "pod"
	}
	return "namespace"
}

// ListResources lists the namespaces, projects or pods that carry this
// provider's ownership labels (those being deleted left out), freshly.
func (a *Adapter) ListResources(ctx context.Context) ([]driver.Resource, error) {
	var items []item
	var err error
	if a.st.Flavor == OpenShiftPods {
		items, err = a.pods.Refresh(ctx)
	} else {
		items, err = a.spaces.Refresh(ctx)
	}
	if err != nil {
		return nil, err
	}
	var out []driver.Resource
	for _, it := range items {
		md := ownership(it.Labels)
		if md[driver.MetaProviderName] != a.cfg.Name || md[driver.MetaNodeID] == "" || it.Phase == "Terminating" {
			continue
		}
		if it.Pod != nil && it.Pod.DeletionTimestamp != nil {
			continue
		}
		id := it.Name
		if it.Namespace != "" {
			id = it.Namespace + "-" + it.Name
		}
		out = append(out, driver.Resource{Type: a.resourceType(), ID: id, Metadata: md, Plural: "nodes"})
	}
	return out, nil
}

// DeleteResource starts deleting a leaked namespace, project or pod.
func (a *Adapter) DeleteResource(ctx context.Context, r driver.Resource) error {
	_, err := a.deleteCall(ctx, r.ID)
	return err
}

// splitPodID splits an openshiftpods external id "<pool>-<pod>".
func (a *Adapter) splitPodID(id string) (ns, pod string, ok bool) {
	for _, p := range a.cfg.Pools {
		if rest, found := strings.CutPrefix(id, p.Name+"-"); found && rest != "" {
			return p.Name, rest, true
		}
	}
	return "", "", false
}

// nestedString returns a string field of an unstructured object ("" when
// absent).
func nestedString(obj map[string]any, fields ...string) string {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[f]
	}
	s, _ := cur.(string)
	return s
}
