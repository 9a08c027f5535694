package fakekube_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodepool-go/nodepool/internal/fakekube"
)

// core makes core/v1 calls on the fake through a plain REST client; ns
// "" leaves the namespace out of the path.
type core struct{ c rest.Interface }

func (k core) create(ns, res string, obj, out runtime.Object) error {
	return k.c.Post().NamespaceIfScoped(ns, ns != "").Resource(res).Body(obj).Do(context.Background()).Into(out)
}

func (k core) get(ns, res, name string, out runtime.Object) error {
	return k.c.Get().NamespaceIfScoped(ns, ns != "").Resource(res).Name(name).Do(context.Background()).Into(out)
}

func (k core) list(ns, res string, out runtime.Object) error {
	return k.c.Get().NamespaceIfScoped(ns, ns != "").Resource(res).Do(context.Background()).Into(out)
}

func (k core) delete(ns, res, name string) error {
	return k.c.Delete().NamespaceIfScoped(ns, ns != "").Resource(res).Name(name).Do(context.Background()).Error()
}

// client starts a fake and returns a core/v1 client of it, over a scheme
// of core/v1 alone.
func client(t *testing.T) (*fakekube.Server, core) {
	s := fakekube.Setup(t, "fake")
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	require.NoError(t, err)
	sch := runtime.NewScheme()
	metav1.AddToGroupVersion(sch, schema.GroupVersion{Version: "v1"})
	require.NoError(t, corev1.AddToScheme(sch))
	rc.ContentType = "application/json"
	rc.QPS, rc.Burst = 1000, 1000
	rc.GroupVersion, rc.APIPath = &corev1.SchemeGroupVersion, "/api"
	rc.NegotiatedSerializer = serializer.NewCodecFactory(sch).WithoutConversion()
	c, err := rest.RESTClientFor(rc)
	require.NoError(t, err)
	return s, core{c}
}

func TestNamespaceLifecycle(t *testing.T) {
	s, k := client(t)
	s.NamespaceDeleteDelay = time.Second
	ns := &corev1.Namespace{}
	err := k.create("", "namespaces", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"x": "y"}}}, ns)
	require.NoError(t, err)
	require.NotEmpty(t, ns.ResourceVersion)
	err = k.create("", "namespaces", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, &corev1.Namespace{})
	require.True(t, apierrors.IsAlreadyExists(err), "%v", err)

	err = k.create("a", "secrets", &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "t"}, Type: corev1.SecretTypeServiceAccountToken}, &corev1.Secret{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		sec := &corev1.Secret{}
		err := k.get("a", "secrets", "t", sec)
		return err == nil && len(sec.Data["token"]) > 0 && len(sec.Data["ca.crt"]) > 0
	}, 5*time.Second, 10*time.Millisecond, "the token fills in")

	require.NoError(t, k.delete("", "namespaces", "a"))
	got := &corev1.Namespace{}
	require.NoError(t, k.get("", "namespaces", "a", got))
	require.Equal(t, corev1.NamespaceTerminating, got.Status.Phase)
	require.Greater(t, got.ResourceVersion, ns.ResourceVersion)
	err = k.create("a", "pods", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, &corev1.Pod{})
	require.True(t, apierrors.IsForbidden(err), "no new content in a terminating namespace: %v", err)
	require.Eventually(t, func() bool {
		return apierrors.IsNotFound(k.get("", "namespaces", "a", &corev1.Namespace{}))
	}, 5*time.Second, 10*time.Millisecond)
	err = k.get("a", "secrets", "t", &corev1.Secret{})
	require.True(t, apierrors.IsNotFound(err), "its content went with it")
}

func TestPodPhasesAndFaults(t *testing.T) {
	s, k := client(t)
	s.AddNamespace("n", nil)
	mk := func(name, image string, sel map[string]string) {
		err := k.create("n", "pods", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeSelector: sel, Containers: []corev1.Container{{Name: "c", Image: image}}}}, &corev1.Pod{})
		require.NoError(t, err)
	}
	mk("ok", "fedora:28", nil)
	mk("pull", "fedora:missing", nil)
	mk("nowhere", "fedora:28", map[string]string{"disk": "ssd"})
	p := &corev1.Pod{}
	require.NoError(t, k.get("n", "pods", "ok", p))
	require.Equal(t, corev1.PodPending, p.Status.Phase)
	time.Sleep(s.PodStartDelay)
	list := &corev1.PodList{}
	require.NoError(t, k.list("", "pods", list))
	phase := map[string]string{}
	for _, p := range list.Items {
		phase[p.Name] = string(p.Status.Phase)
		if len(p.Status.ContainerStatuses) > 0 {
			phase[p.Name] += "/" + p.Status.ContainerStatuses[0].State.Waiting.Reason
		}
		if len(p.Status.Conditions) > 0 && p.Status.Conditions[0].Reason != "" {
			phase[p.Name] += "/" + p.Status.Conditions[0].Reason
		}
	}
	require.Equal(t, map[string]string{"ok": "Running", "pull": "Pending/ImagePullBackOff", "nowhere": "Pending/Unschedulable"}, phase)

	s.SetPodQuota("n", 3)
	err := k.create("n", "pods", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "q"}}, &corev1.Pod{})
	require.True(t, apierrors.IsForbidden(err))
	require.Contains(t, err.Error(), "exceeded quota")

	s.Inject(&fakekube.Fault{Method: "GET", Path: "/pods", Code: 503, Reason: "ServiceUnavailable", Msg: "down", Times: 1})
	err = k.get("n", "pods", "ok", &corev1.Pod{})
	require.True(t, apierrors.IsServiceUnavailable(err), "%v", err)
	require.NoError(t, k.get("n", "pods", "ok", &corev1.Pod{}), "the fault hit once")
}
