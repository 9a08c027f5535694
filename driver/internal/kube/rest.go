package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// The drivers' own scheme holds only the API types they send and read:
// core/v1 and rbac/v1, with the meta/v1 options (in the core group version
// and in rbac's) and the unversioned Status the API server answers errors
// with. A scheme of every API group would link and register ~50 of them
// at start for no use.
var (
	kubeScheme     = runtime.NewScheme()
	kubeCodecs     = serializer.NewCodecFactory(kubeScheme)
	parameterCodec = runtime.NewParameterCodec(kubeScheme)
)

func init() {
	metav1.AddToGroupVersion(kubeScheme, schema.GroupVersion{Version: "v1"})
	utilruntime.Must(corev1.AddToScheme(kubeScheme))
	utilruntime.Must(rbacv1.AddToScheme(kubeScheme))
}

// Resource names (the URL path's plural) of the objects the drivers use.
const (
	resNamespaces      = "namespaces"
	resPods            = "pods"
	resServiceAccounts = "serviceaccounts"
	resSecrets         = "secrets"
	resRoles           = "roles"
	resRoleBindings    = "rolebindings"
)

// kubeClient makes the drivers' calls on core/v1 and rbac/v1 objects. Its
// two REST clients share one HTTP client and one client-side rate limiter,
// so the provider's QPS and burst bound both groups together.
type kubeClient struct {
	core rest.Interface // core/v1 at /api/v1
	rbac rest.Interface // rbac.authorization.k8s.io/v1 at /apis/...
}

func newKubeClient(rc *rest.Config) (*kubeClient, error) {
	cfg := rest.CopyConfig(rc)
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	if cfg.RateLimiter == nil && cfg.QPS > 0 {
		if cfg.Burst <= 0 {
			return nil, fmt.Errorf("kubernetes client: burst must be above 0 when QPS is (QPS %v)", cfg.QPS)
		}
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	}
	cfg.NegotiatedSerializer = kubeCodecs.WithoutConversion()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	groupClient := func(gv schema.GroupVersion, apiPath string) (rest.Interface, error) {
		c := rest.CopyConfig(cfg)
		c.GroupVersion, c.APIPath = &gv, apiPath
		return rest.RESTClientForConfigAndClient(c, hc)
	}
	core, err := groupClient(corev1.SchemeGroupVersion, "/api")
	if err != nil {
		return nil, err
	}
	rbac, err := groupClient(rbacv1.SchemeGroupVersion, "/apis")
	if err != nil {
		return nil, err
	}
	return &kubeClient{core: core, rbac: rbac}, nil
}

// The calls below are the API's plain REST verbs. ns is the namespace of
// a namespaced resource; "" leaves it out of the path (a cluster-scoped
// resource, or a listing across all namespaces).

// create posts obj and decodes the API server's copy into out.
func create(ctx context.Context, c rest.Interface, ns, res string, obj, out runtime.Object) error {
	return c.Post().NamespaceIfScoped(ns, ns != "").Resource(res).
		VersionedParams(&metav1.CreateOptions{}, parameterCodec).
		Body(obj).Do(ctx).Into(out)
}

// get reads one object into out.
func get(ctx context.Context, c rest.Interface, ns, res, name string, out runtime.Object) error {
	return c.Get().NamespaceIfScoped(ns, ns != "").Resource(res).Name(name).
		VersionedParams(&metav1.GetOptions{}, parameterCodec).
		Do(ctx).Into(out)
}

// list reads the objects opts selects into the list out.
func list(ctx context.Context, c rest.Interface, ns, res string, opts metav1.ListOptions, out runtime.Object) error {
	return c.Get().NamespaceIfScoped(ns, ns != "").Resource(res).
		VersionedParams(&opts, parameterCodec).
		Do(ctx).Into(out)
}

// remove deletes one object; the options travel in the body.
func remove(ctx context.Context, c rest.Interface, ns, res, name string, opts metav1.DeleteOptions) error {
	return c.Delete().NamespaceIfScoped(ns, ns != "").Resource(res).Name(name).
		Body(&opts).Do(ctx).Error()
}

func (k *kubeClient) listNamespaces(ctx context.Context) (*corev1.NamespaceList, error) {
	out := &corev1.NamespaceList{}
	return out, list(ctx, k.core, "", resNamespaces, metav1.ListOptions{}, out)
}

func (k *kubeClient) createNamespace(ctx context.Context, obj *corev1.Namespace) error {
	return create(ctx, k.core, "", resNamespaces, obj, &corev1.Namespace{})
}

func (k *kubeClient) getNamespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	out := &corev1.Namespace{}
	return out, get(ctx, k.core, "", resNamespaces, name, out)
}

// mergePatchNamespace applies a JSON merge patch to a namespace.
func (k *kubeClient) mergePatchNamespace(ctx context.Context, name string, patch []byte) error {
	return k.core.Patch(types.MergePatchType).Resource(resNamespaces).Name(name).
		VersionedParams(&metav1.PatchOptions{}, parameterCodec).
		Body(patch).Do(ctx).Into(&corev1.Namespace{})
}

func (k *kubeClient) deleteNamespace(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return remove(ctx, k.core, "", resNamespaces, name, opts)
}

// listPods lists the pods of a namespace ("" for all) that selector
// (a label selector) matches.
func (k *kubeClient) listPods(ctx context.Context, ns, selector string) (*corev1.PodList, error) {
	out := &corev1.PodList{}
	return out, list(ctx, k.core, ns, resPods, metav1.ListOptions{LabelSelector: selector}, out)
}

func (k *kubeClient) createPod(ctx context.Context, ns string, obj *corev1.Pod) error {
	return create(ctx, k.core, ns, resPods, obj, &corev1.Pod{})
}

func (k *kubeClient) deletePod(ctx context.Context, ns, name string, opts metav1.DeleteOptions) error {
	return remove(ctx, k.core, ns, resPods, name, opts)
}

func (k *kubeClient) createServiceAccount(ctx context.Context, ns string, obj *corev1.ServiceAccount) error {
	return create(ctx, k.core, ns, resServiceAccounts, obj, &corev1.ServiceAccount{})
}

func (k *kubeClient) getServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	out := &corev1.ServiceAccount{}
	return out, get(ctx, k.core, ns, resServiceAccounts, name, out)
}

func (k *kubeClient) createSecret(ctx context.Context, ns string, obj *corev1.Secret) error {
	return create(ctx, k.core, ns, resSecrets, obj, &corev1.Secret{})
}

func (k *kubeClient) getSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	return out, get(ctx, k.core, ns, resSecrets, name, out)
}

func (k *kubeClient) createRole(ctx context.Context, ns string, obj *rbacv1.Role) error {
	return create(ctx, k.rbac, ns, resRoles, obj, &rbacv1.Role{})
}

func (k *kubeClient) createRoleBinding(ctx context.Context, ns string, obj *rbacv1.RoleBinding) error {
	return create(ctx, k.rbac, ns, resRoleBindings, obj, &rbacv1.RoleBinding{})
}
