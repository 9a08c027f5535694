package fakekube_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodepool-go/nodepool/internal/fakekube"
)

func client(t *testing.T) (*fakekube.Server, kubernetes.Interface) {
	s := fakekube.Setup(t, "fake")
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	require.NoError(t, err)
	rc.ContentType = "application/json"
	rc.QPS, rc.Burst = 1000, 1000
	cs, err := kubernetes.NewForConfig(rc)
	require.NoError(t, err)
	return s, cs
}

func TestNamespaceLifecycle(t *testing.T) {
	s, cs := client(t)
	s.NamespaceDeleteDelay = time.Second
	ctx := context.Background()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"x": "y"}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, ns.ResourceVersion)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{})
	require.True(t, apierrors.IsAlreadyExists(err), "%v", err)

	_, err = cs.CoreV1().Secrets("a").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "t"}, Type: corev1.SecretTypeServiceAccountToken}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		sec, err := cs.CoreV1().Secrets("a").Get(ctx, "t", metav1.GetOptions{})
		return err == nil && len(sec.Data["token"]) > 0 && len(sec.Data["ca.crt"]) > 0
	}, 5*time.Second, 10*time.Millisecond, "the token fills in")

	require.NoError(t, cs.CoreV1().Namespaces().Delete(ctx, "a", metav1.DeleteOptions{}))
	got, err := cs.CoreV1().Namespaces().Get(ctx, "a", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, corev1.NamespaceTerminating, got.Status.Phase)
	require.Greater(t, got.ResourceVersion, ns.ResourceVersion)
	_, err = cs.CoreV1().Pods("a").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, metav1.CreateOptions{})
	require.True(t, apierrors.IsForbidden(err), "no new content in a terminating namespace: %v", err)
	require.Eventually(t, func() bool {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "a", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 5*time.Second, 10*time.Millisecond)
	_, err = cs.CoreV1().Secrets("a").Get(ctx, "t", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "its content went with it")
}

func TestPodPhasesAndFaults(t *testing.T) {
	s, cs := client(t)
	ctx := context.Background()
	s.AddNamespace("n", nil)
	mk := func(name, image string, sel map[string]string) {
		_, err := cs.CoreV1().Pods("n").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeSelector: sel, Containers: []corev1.Container{{Name: "c", Image: image}}}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	mk("ok", "fedora:28", nil)
	mk("pull", "fedora:missing", nil)
	mk("nowhere", "fedora:28", map[string]string{"disk": "ssd"})
	p, err := cs.CoreV1().Pods("n").Get(ctx, "ok", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, corev1.PodPending, p.Status.Phase)
	time.Sleep(s.PodStartDelay)
	list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
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
	_, err = cs.CoreV1().Pods("n").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "q"}}, metav1.CreateOptions{})
	require.True(t, apierrors.IsForbidden(err))
	require.Contains(t, err.Error(), "exceeded quota")

	s.Inject(&fakekube.Fault{Method: "GET", Path: "/pods", Code: 503, Reason: "ServiceUnavailable", Msg: "down", Times: 1})
	_, err = cs.CoreV1().Pods("n").Get(ctx, "ok", metav1.GetOptions{})
	require.True(t, apierrors.IsServiceUnavailable(err), "%v", err)
	_, err = cs.CoreV1().Pods("n").Get(ctx, "ok", metav1.GetOptions{})
	require.NoError(t, err, "the fault hit once")
}
