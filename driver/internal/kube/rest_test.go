package kube

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodepool-go/nodepool/driver"
)

// wireCall is one request as the API server sees it.
type wireCall struct {
	Method, Path, Query            string
	ContentType, Accept, UserAgent string
	Body                           string
}

// recorder is an API server that records every request and answers each
// with the current canned reply.
type recorder struct {
	mu    sync.Mutex
	calls []wireCall
	code  int
	body  string
	ctype string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, wireCall{
		Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery,
		ContentType: req.Header.Get("Content-Type"), Accept: req.Header.Get("Accept"),
		UserAgent: req.Header.Get("User-Agent"), Body: string(b),
	})
	w.Header().Set("Content-Type", r.ctype)
	w.WriteHeader(r.code)
	_, _ = io.WriteString(w, r.body)
}

func (r *recorder) reply(code int, ctype, body string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.code, r.ctype, r.body, r.calls = code, ctype, body, nil
}

func (r *recorder) take() []wireCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.calls
	r.calls = nil
	return out
}

// wireCase is one of the driver's calls made both through client-go's
// generated clientset (as the driver once did) and through kubeClient.
type wireCase struct {
	name  string
	reply string // the object a successful call answers with
	old   func(context.Context, kubernetes.Interface) (any, error)
	new   func(context.Context, *kubeClient) (any, error)
}

func wireCases() []wireCase {
	meta := metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"nodepool_node_id": "0000000001"}}
	bg := metav1.DeletePropagationBackground
	del := metav1.DeleteOptions{PropagationPolicy: &bg}
	ns := &corev1.Namespace{ObjectMeta: meta}
	nsJSON := `{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"n1","resourceVersion":"3","labels":{"a":"b"}},"status":{"phase":"Terminating"}}`
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"x": "y"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "fedora:28", Command: []string{"/bin/sh"}}},
			NodeSelector: map[string]string{"disk": "ssd"}}}
	podsJSON := `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[` +
		`{"metadata":{"name":"p","namespace":"n1","labels":{"x":"y"}},"status":{"phase":"Running"}}]}`
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: workerUser}}
	saJSON := `{"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"zuul-worker"},"secrets":[{"name":"zuul-worker-token-x"}]}`
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: workerUser,
		Annotations: map[string]string{corev1.ServiceAccountNameKey: workerUser}}, Type: corev1.SecretTypeServiceAccountToken}
	secJSON := `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"zuul-worker"},"data":{"token":"dG9r","ca.crt":"Y2E="}}`
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "zuul"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "zuul-role"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "zuul"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: workerUser, Namespace: "n1"}}}
	patch := []byte(`{"metadata":{"labels":{"a":"b"}}}`)
	sel := "nodepool_provider_name=kube"
	nothing := func(_ any, err error) (any, error) { return nil, err }
	return []wireCase{
		{"list namespaces", `{"kind":"NamespaceList","apiVersion":"v1","items":[` + nsJSON + `]}`,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
			},
			func(ctx context.Context, k *kubeClient) (any, error) { return k.listNamespaces(ctx) }},
		{"create namespace", nsJSON,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return nothing(cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}))
			},
			func(ctx context.Context, k *kubeClient) (any, error) { return nil, k.createNamespace(ctx, ns) }},
		{"get namespace", nsJSON,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return cs.CoreV1().Namespaces().Get(ctx, "n1", metav1.GetOptions{})
			},
			func(ctx context.Context, k *kubeClient) (any, error) { return k.getNamespace(ctx, "n1") }},
		{"patch namespace", nsJSON,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return nothing(cs.CoreV1().Namespaces().Patch(ctx, "n1", types.MergePatchType, patch, metav1.PatchOptions{}))
			},
			func(ctx context.Context, k *kubeClient) (any, error) {
				return nil, k.mergePatchNamespace(ctx, "n1", patch)
			}},
		{"delete namespace", nsJSON,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return nil, cs.CoreV1().Namespaces().Delete(ctx, "n1", del)
			},
			func(ctx context.Context, k *kubeClient) (any, error) { return nil, k.deleteNamespace(ctx, "n1", del) }},
		{"list pods everywhere", podsJSON,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: sel})
			},
			func(ctx context.Context, k *kubeClient) (any, error) { return k.listPods(ctx, "", sel) }},
		{"list pods of a namespace", podsJSON,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return cs.CoreV1().Pods("n1").List(ctx, metav1.ListOptions{LabelSelector: sel})
			},
			func(ctx context.Context, k *kubeClient) (any, error) { return k.listPods(ctx, "n1", sel) }},
		{"create pod", `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"}}`,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return nothing(cs.CoreV1().Pods("n1").Create(ctx, pod, metav1.CreateOptions{}))
			},
			func(ctx context.Context, k *kubeClient) (any, error) { return nil, k.createPod(ctx, "n1", pod) }},
		{"delete pod", `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"}}`,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return nil, cs.CoreV1().Pods("n1").Delete(ctx, "p", del)
			},
			func(ctx context.Context, k *kubeClient) (any, error) { return nil, k.deletePod(ctx, "n1", "p", del) }},
		{"create service account", saJSON,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return nothing(cs.CoreV1().ServiceAccounts("n1").Create(ctx, sa, metav1.CreateOptions{}))
			},
			func(ctx context.Context, k *kubeClient) (any, error) {
				return nil, k.createServiceAccount(ctx, "n1", sa)
			}},
		{"get service account", saJSON,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return cs.CoreV1().ServiceAccounts("n1").Get(ctx, workerUser, metav1.GetOptions{})
			},
			func(ctx context.Context, k *kubeClient) (any, error) {
				return k.getServiceAccount(ctx, "n1", workerUser)
			}},
		{"create secret", secJSON,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return nothing(cs.CoreV1().Secrets("n1").Create(ctx, sec, metav1.CreateOptions{}))
			},
			func(ctx context.Context, k *kubeClient) (any, error) { return nil, k.createSecret(ctx, "n1", sec) }},
		{"get secret", secJSON,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return cs.CoreV1().Secrets("n1").Get(ctx, workerUser, metav1.GetOptions{})
			},
			func(ctx context.Context, k *kubeClient) (any, error) { return k.getSecret(ctx, "n1", workerUser) }},
		{"create role", `{"kind":"Role","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"zuul"}}`,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return nothing(cs.RbacV1().Roles("n1").Create(ctx, role, metav1.CreateOptions{}))
			},
			func(ctx context.Context, k *kubeClient) (any, error) { return nil, k.createRole(ctx, "n1", role) }},
		{"create role binding", `{"kind":"RoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"zuul-role"}}`,
			func(ctx context.Context, cs kubernetes.Interface) (any, error) {
				return nothing(cs.RbacV1().RoleBindings("n1").Create(ctx, rb, metav1.CreateOptions{}))
			},
			func(ctx context.Context, k *kubeClient) (any, error) { return nil, k.createRoleBinding(ctx, "n1", rb) }},
	}
}

// statusBody is the API server's Status error body.
func statusBody(code int, reason, msg string) string {
	return `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"` + msg +
		`","reason":"` + reason + `","code":` + strconv.Itoa(code) + `}`
}

// TestRESTClientWireMatchesClientset: every call of kubeClient sends the
// same requests (verb, path, query, headers, body) as client-go's
// generated clientset, decodes the same answers, and fails with the same
// errors, which classify sorts into the same kinds.
func TestRESTClientWireMatchesClientset(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	rc := &rest.Config{Host: srv.URL, UserAgent: "nodepool/test", QPS: 1000, Burst: 1000,
		ContentConfig: rest.ContentConfig{ContentType: "application/json", AcceptContentTypes: "application/json"}}
	cs, err := kubernetes.NewForConfig(rc)
	require.NoError(t, err)
	kc, err := newKubeClient(rc)
	require.NoError(t, err)
	require.Same(t, kc.core.GetRateLimiter(), kc.rbac.GetRateLimiter(), "one rate limit bounds both groups, as in the clientset")
	ctx := context.Background()

	type answer struct {
		code         int
		ctype, body  string
		kind         driver.Kind // what classify makes of the error (KindUnknown: a plain error)
		alreadyExist bool
	}
	errs := []answer{
		{404, "application/json", statusBody(404, "NotFound", `namespaces \"n1\" not found`), driver.KindNotFound, false},
		{409, "application/json", statusBody(409, "AlreadyExists", `namespaces \"n1\" already exists`), driver.KindUnknown, true},
		{403, "application/json", statusBody(403, "Forbidden", `pods \"p\" is forbidden: exceeded quota: q, requested: pods=1`), driver.KindQuota, false},
		{403, "application/json", statusBody(403, "Forbidden", `namespace n1 is being terminated`), driver.KindUnknown, false},
		{429, "application/json", statusBody(429, "TooManyRequests", "slow down"), driver.KindTransient, false},
		{500, "application/json", statusBody(500, "InternalError", "boom"), driver.KindTransient, false},
		{503, "application/json", statusBody(503, "ServiceUnavailable", "down"), driver.KindTransient, false},
		{504, "application/json", statusBody(504, "Timeout", "too slow"), driver.KindTransient, false},
		{502, "text/plain", "bad gateway", driver.KindTransient, false},
	}
	for _, c := range wireCases() {
		rec.reply(200, "application/json", c.reply)
		oldObj, oldErr := c.old(ctx, cs)
		oldWire := rec.take()
		newObj, newErr := c.new(ctx, kc)
		newWire := rec.take()
		require.NoError(t, oldErr, c.name)
		require.NoError(t, newErr, c.name)
		require.Len(t, newWire, 1, c.name)
		require.Equal(t, oldWire, newWire, c.name)
		require.Equal(t, oldObj, newObj, c.name)

		for _, a := range errs {
			rec.reply(a.code, a.ctype, a.body)
			_, oldErr := c.old(ctx, cs)
			_, newErr := c.new(ctx, kc)
			wire := rec.take()
			require.Len(t, wire, 2, "%s: %d: one call each, no retry", c.name, a.code)
			require.Equal(t, wire[0], wire[1], "%s: %d", c.name, a.code)
			require.Error(t, newErr, "%s: %d", c.name, a.code)
			require.Equal(t, oldErr.Error(), newErr.Error(), "%s: %d", c.name, a.code)
			require.Equal(t, apierrors.ReasonForError(oldErr), apierrors.ReasonForError(newErr), "%s: %d", c.name, a.code)
			require.Equal(t, a.alreadyExist, created(newErr), "%s: %d", c.name, a.code)
			got := classify(newErr, c.name)
			require.Equal(t, a.kind, driver.KindOf(got), "%s: %d: %v", c.name, a.code, got)
			require.Equal(t, driver.KindOf(classify(oldErr, c.name)), driver.KindOf(got))
		}
	}
}
