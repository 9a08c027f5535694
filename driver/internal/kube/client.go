package kube

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodepool-go/nodepool/driver"
)

// Client-side rate limit of one provider's API calls (client-go's token
// bucket): a steady rate and the burst above it.
const (
	ClientQPS   = 20
	ClientBurst = 40
)

// OpenShift's API groups, reached through client-go's dynamic client.
var (
	gvrProjectRequests = schema.GroupVersionResource{Group: "project.openshift.io", Version: "v1", Resource: "projectrequests"}
	gvrProjects        = schema.GroupVersionResource{Group: "project.openshift.io", Version: "v1", Resource: "projects"}
	gvrOSRoleBindings  = schema.GroupVersionResource{Group: "authorization.openshift.io", Version: "v1", Resource: "rolebindings"}
)

// conn is one provider's connection to its cluster.
type conn struct {
	// kc makes the core/v1 and rbac/v1 calls; dyn reaches OpenShift's
	// groups.
	kc  *kubeClient
	dyn dynamic.Interface
	// host is the API server's URL and insecure whether TLS verification
	// is off: both go into the nodes' connection records.
	host     string
	insecure bool
	// token and caB64 are the provider's own bearer token and the
	// base64-encoded CA bundle (openshiftpods hands them to its nodes).
	token string
	caB64 string
}

// restConfig finds the cluster as kubectl does: the kubeconfig files of
// KUBECONFIG (or ~/.kube/config) at the given context, or, when there is
// no kubeconfig at all, the in-cluster service account.
func restConfig(context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context})
	rc, err := cc.ClientConfig()
	if err != nil && clientcmd.IsEmptyConfig(err) {
		return rest.InClusterConfig()
	}
	return rc, err
}

func connect(st *ProviderSettings) (*conn, error) {
	rc, err := restConfig(st.Context)
	if err != nil {
		return nil, err
	}
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = st.QPS, st.Burst
	rc.UserAgent = "nodepool/" + st.Flavor.String()
	// JSON both ways: every API server and aggregated API (OpenShift's
	// included) speaks it, and the objects stay readable in logs.
	rc.ContentType, rc.AcceptContentTypes = "application/json", "application/json"
	kc, err := newKubeClient(rc)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	c := &conn{kc: kc, dyn: dyn, host: rc.Host, insecure: rc.Insecure, token: rc.BearerToken}
	if c.token == "" && rc.BearerTokenFile != "" {
		if b, err := os.ReadFile(rc.BearerTokenFile); err == nil {
			c.token = strings.TrimSpace(string(b))
		}
	}
	ca := rc.CAData
	if len(ca) == 0 && rc.CAFile != "" {
		ca, _ = os.ReadFile(rc.CAFile)
	}
	if len(ca) > 0 {
		c.caB64 = base64.StdEncoding.EncodeToString(ca)
	}
	return c, nil
}

// isQuota reports whether the API server refused for a ResourceQuota (the
// admission plugin's "exceeded quota" message).
func isQuota(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "exceeded quota")
}

// classify turns an API error into the driver's error kinds: quota refusals
// are quota errors, throttling, timeouts and 5xx answers (and transport
// failures) transient, a missing object not-found; anything else keeps the
// API server's message. what names the call for the message.
func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	var ne net.Error
	switch {
	case isQuota(err):
		return driver.QuotaError("%s: %w", what, err)
	case apierrors.IsNotFound(err):
		return driver.NotFoundError("%s: %w", what, err)
	case apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsUnexpectedServerError(err):
		return driver.TransientError("%s: %w", what, err)
	case errors.As(err, &ne):
		return driver.TransientError("%s: %w", what, err)
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Code >= 500 {
		return driver.TransientError("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
