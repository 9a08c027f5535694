package kube

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/nodepool-go/nodepool/driver"
)

// Steps of a create machine, in order; each Advance makes at most one
// step's API call (a wait step polls a cached listing or, at the poll
// interval, one object).
const (
	stSpace   = iota // create the namespace, or the ProjectRequest
	stLabel          // openshift: label the project's namespace with our keys
	stAccount        // create the service account
	stSecret         // kubernetes: create its token secret
	stToken          // wait for the token and CA to be filled in
	stRole           // kubernetes: create the role
	stBinding        // create the role binding
	stPod            // pod labels: create the pod
	stPodWait        // wait for the pod to run
	stDone
)

type createMachine struct {
	a    *Adapter
	spec driver.CreateSpec
	lst  *LabelSettings

	step       int
	space      string // namespace or project ("" for openshiftpods)
	podNS      string // namespace of the pod
	podName    string
	externalID string
	token      string
	caB64      string
	hostID     string
	waitUntil  time.Time // deadline of the current wait step
	nextPoll   time.Time
	podMade    time.Time // when the pod was created (for fresh listings)
}

// CreateMachine returns the machine that makes one node: a namespace or
// project with a service account, its token and a role binding, plus a
// pod for pod labels; openshiftpods makes only the pod, in the pool's
// project.
func (a *Adapter) CreateMachine(spec driver.CreateSpec) driver.CreateMachine {
	lst, _ := spec.Label.Settings.(*LabelSettings)
	if lst == nil {
		lst = &LabelSettings{Type: "pod"}
	}
	m := &createMachine{a: a, spec: spec, lst: lst}
	nodeID := spec.Metadata[driver.MetaNodeID]
	switch a.st.Flavor {
	case OpenShiftPods:
		m.step = stPod
		m.podNS = spec.Pool.Name
		m.podName = spec.Label.Name + "-" + nodeID
	default:
		m.space = spec.Pool.Name + "-" + nodeID
		m.podNS, m.podName = m.space, spec.Label.Name
	}
	return m
}

// ExternalID is the namespace or project name, or "<pool>-<pod>", once
// the object exists.
func (m *createMachine) ExternalID() string { return m.externalID }

func (m *createMachine) next() {
	m.step++
	fl := m.a.st.Flavor
	for {
		switch {
		case m.step == stLabel && fl != OpenShift,
			m.step == stSecret && fl != Kubernetes,
			m.step == stRole && fl != Kubernetes,
			m.step == stPod && !m.lst.IsPod():
			m.step++
		case m.step == stPodWait && !m.lst.IsPod():
			m.step = stDone
		default:
			return
		}
	}
}

// Advance makes the next step.
func (m *createMachine) Advance(ctx context.Context) (*driver.Instance, error) {
	var err error
	switch m.step {
	case stSpace:
		err = m.makeSpace(ctx)
	case stLabel:
		err = m.labelNamespace(ctx)
	case stAccount:
		err = m.makeAccount(ctx)
	case stSecret:
		err = m.makeSecret(ctx)
	case stToken:
		return nil, m.waitToken(ctx)
	case stRole:
		err = m.makeRole(ctx)
	case stBinding:
		err = m.makeBinding(ctx)
	case stPod:
		err = m.makePod(ctx)
	case stPodWait:
		return nil, m.waitPod(ctx)
	case stDone:
		return m.instance(), nil
	}
	if err != nil {
		return nil, err
	}
	m.next()
	if m.step == stDone {
		return m.instance(), nil
	}
	return nil, nil
}

// created treats an AlreadyExists answer as success: a step resumed after
// a transient error may find its own object.
func created(err error) bool { return err == nil || apierrors.IsAlreadyExists(err) }

func (m *createMachine) makeSpace(ctx context.Context) error {
	labels := objectLabels(m.spec, m.lst)
	var err error
	if m.a.st.Flavor == OpenShift {
		pr := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "project.openshift.io/v1",
			"kind":       "ProjectRequest",
			"metadata":   map[string]any{"name": m.space, "labels": toAny(labels)},
		}}
		_, err = m.a.c.dyn.Resource(gvrProjectRequests).Create(ctx, pr, metav1.CreateOptions{})
	} else {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: m.space, Labels: labels}}
		err = m.a.c.kc.createNamespace(ctx, ns)
	}
	if apierrors.IsAlreadyExists(err) {
		// Ours only if it carries this node's id and is not going away.
		got, gerr := m.a.c.kc.getNamespace(ctx, m.space)
		if gerr != nil {
			return classify(gerr, "reading namespace "+m.space)
		}
		if got.Labels[driver.MetaNodeID] != m.spec.Metadata[driver.MetaNodeID] && m.a.st.Flavor != OpenShift {
			return fmt.Errorf("namespace %s already exists and is not this node's", m.space)
		}
		if got.Status.Phase == corev1.NamespaceTerminating {
			return driver.TransientError("namespace %s is still being deleted", m.space)
		}
		err = nil
	}
	if err != nil {
		return classify(err, "creating "+m.a.resourceType()+" "+m.space)
	}
	m.externalID = m.space
	return nil
}

// labelNamespace puts our ownership labels on the namespace behind a
// project (a ProjectRequest does not carry labels over), so that leak
// cleanup can find it.
func (m *createMachine) labelNamespace(ctx context.Context) error {
	patch, _ := jsonMerge(map[string]any{"metadata": map[string]any{"labels": toAny(objectLabels(m.spec, m.lst))}})
	err := m.a.c.kc.mergePatchNamespace(ctx, m.space, patch)
	return classify(err, "labelling namespace "+m.space)
}

func (m *createMachine) makeAccount(ctx context.Context) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: workerUser}}
	err := m.a.c.kc.createServiceAccount(ctx, m.space, sa)
	if !created(err) {
		return classify(err, "creating service account in "+m.space)
	}
	m.waitUntil = time.Now().Add(m.a.st.TokenTimeout)
	return nil
}

func (m *createMachine) makeSecret(ctx context.Context) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: workerUser, Annotations: map[string]string{corev1.ServiceAccountNameKey: workerUser}},
		Type:       corev1.SecretTypeServiceAccountToken,
	}
	err := m.a.c.kc.createSecret(ctx, m.space, sec)
	if !created(err) {
		return classify(err, "creating token secret in "+m.space)
	}
	m.waitUntil = time.Now().Add(m.a.st.TokenTimeout)
	return nil
}

// waitToken polls for the service account's token: the kubernetes flavor
// reads the secret it created, the openshift flavor the first token
// secret the service account lists.
func (m *createMachine) waitToken(ctx context.Context) error {
	if time.Now().Before(m.nextPoll) {
		return nil
	}
	m.nextPoll = time.Now().Add(m.a.st.PollInterval)
	name := workerUser
	if m.a.st.Flavor == OpenShift {
		sa, err := m.a.c.kc.getServiceAccount(ctx, m.space, workerUser)
		if err != nil && !apierrors.IsNotFound(err) {
			return classify(err, "reading service account in "+m.space)
		}
		name = ""
		if sa != nil && len(sa.Secrets) > 0 {
			name = sa.Secrets[0].Name
		}
	}
	if name != "" {
		sec, err := m.a.c.kc.getSecret(ctx, m.space, name)
		if err != nil && !apierrors.IsNotFound(err) {
			return classify(err, "reading token secret in "+m.space)
		}
		if err == nil && len(sec.Data["token"]) > 0 && len(sec.Data["ca.crt"]) > 0 {
			m.token = string(sec.Data["token"])
			m.caB64 = base64.StdEncoding.EncodeToString(sec.Data["ca.crt"])
			m.next()
			return nil
		}
	}
	if time.Now().After(m.waitUntil) {
		return fmt.Errorf("%s: couldn't find token for service account %s", m.space, workerUser)
	}
	return nil
}

func (m *createMachine) makeRole(ctx context.Context) error {
	all := []string{"create", "delete", "get", "list", "patch", "update", "watch"}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "zuul"}}
	if m.lst.IsPod() {
		// A pod node's account may only reach into its pod.
		role.Name = "zuul-restricted"
		role.Rules = []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: all},
			{APIGroups: []string{""}, Resources: []string{"pods/logs"}, Verbs: all},
			{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: all},
		}
	} else {
		role.Rules = []rbacv1.PolicyRule{{APIGroups: []string{""}, Verbs: all, Resources: []string{
			"pods", "pods/exec", "pods/log", "pods/portforward", "services", "endpoints", "crontabs",
			"jobs", "deployments", "replicasets", "configmaps", "secrets"}}}
	}
	err := m.a.c.kc.createRole(ctx, m.space, role)
	if !created(err) {
		return classify(err, "creating role in "+m.space)
	}
	return nil
}

func (m *createMachine) makeBinding(ctx context.Context) error {
	var err error
	if m.a.st.Flavor == OpenShift {
		rb := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "authorization.openshift.io/v1",
			"kind":       "RoleBinding",
			"metadata":   map[string]any{"name": "admin-0"},
			"roleRef":    map[string]any{"name": "admin"},
			"subjects":   []any{map[string]any{"kind": "ServiceAccount", "name": workerUser, "namespace": m.space}},
			"userNames":  []any{"system:serviceaccount:" + m.space + ":" + workerUser},
		}}
		_, err = m.a.c.dyn.Resource(gvrOSRoleBindings).Namespace(m.space).Create(ctx, rb, metav1.CreateOptions{})
	} else {
		role := "zuul"
		if m.lst.IsPod() {
			role = "zuul-restricted"
		}
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "zuul-role"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: workerUser, Namespace: m.space}},
		}
		err = m.a.c.kc.createRoleBinding(ctx, m.space, rb)
	}
	if !created(err) {
		return classify(err, "creating role binding in "+m.space)
	}
	return nil
}

func (m *createMachine) makePod(ctx context.Context) error {
	pod, err := buildPod(m.podName, m.spec, m.lst)
	if err != nil {
		return fmt.Errorf("label %s: %w", m.spec.Label.Name, err)
	}
	err = m.a.c.kc.createPod(ctx, m.podNS, pod)
	if !created(err) {
		return classify(err, fmt.Sprintf("creating pod %s in %s", m.podName, m.podNS))
	}
	if m.a.st.Flavor == OpenShiftPods {
		m.externalID = m.podNS + "-" + m.podName
	}
	m.podMade = time.Now()
	m.waitUntil = m.podMade.Add(m.a.st.PodTimeout)
	return nil
}

// pullFailures are container waiting reasons after which a pod will not
// start without a change of its spec (the kubelet has retried the pull, or
// cannot).
var pullFailures = map[string]bool{
	"ImagePullBackOff": true, "ErrImageNeverPull": true, "InvalidImageName": true, "CreateContainerConfigError": true,
}

// waitPod waits, on the shared pod listing, for the pod to run; a pod
// that failed or cannot pull its image fails the attempt at once, one that
// is still pending when the pod timeout passes fails it with the
// scheduler's reason (a capacity error when it could not be scheduled).
func (m *createMachine) waitPod(ctx context.Context) error {
	pods, _, ok, err := m.a.pods.Fresh(ctx, m.podMade)
	if err != nil {
		return driver.TransientError("%w", err)
	}
	var pod *corev1.Pod
	for _, p := range pods {
		if p.Namespace == m.podNS && p.Name == m.podName {
			pod = p.Pod
		}
	}
	if ok && pod != nil {
		switch pod.Status.Phase {
		case corev1.PodRunning:
			m.hostID = pod.Spec.NodeName
			m.next()
			return nil
		case corev1.PodFailed, corev1.PodSucceeded:
			return fmt.Errorf("%s: pod %s ended (%s): %s", m.podNS, m.podName, pod.Status.Phase, pod.Status.Message)
		}
		for _, cs := range pod.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && pullFailures[w.Reason] {
				return fmt.Errorf("%s: pod %s cannot start: %s: %s", m.podNS, m.podName, w.Reason, w.Message)
			}
		}
	}
	if time.Now().Before(m.waitUntil) {
		return nil
	}
	phase := "not found"
	if pod != nil {
		phase = string(pod.Status.Phase)
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return driver.CapacityError("%s: pod %s failed to initialize (%s): unschedulable: %s", m.podNS, m.podName, phase, c.Message)
			}
		}
	}
	return fmt.Errorf("%s: pod %s failed to initialize (%s)", m.podNS, m.podName, phase)
}

// instance returns the finished node: its connection record is the object
// Zuul's executor turns into a kubeconfig.
func (m *createMachine) instance() *driver.Instance {
	a := m.a
	in := &driver.Instance{ExternalID: m.externalID, Cloud: a.st.Context, Metadata: m.spec.Metadata}
	var kv []any
	switch a.st.Flavor {
	case Kubernetes:
		kv = []any{"name", m.space, "namespace", m.space, "host", a.c.host, "skiptls", a.c.insecure, "token", m.token, "user", workerUser}
		if !a.c.insecure {
			kv = append(kv, "ca_crt", m.caB64)
		}
		if m.lst.IsPod() {
			kv = append(kv, "pod", m.podName)
			in.HostID = m.hostID
		}
	case OpenShift:
		kv = []any{"namespace", m.space, "host", a.c.host, "skiptls", a.c.insecure, "token", m.token, "user", workerUser}
		if !a.c.insecure {
			kv = append(kv, "ca_crt", m.caB64)
		}
		if m.lst.IsPod() {
			kv = append(kv, "pod", m.podName)
		}
	case OpenShiftPods:
		kv = []any{"pod", m.podName, "namespace", m.podNS, "host", a.c.host, "ca_crt", a.c.caB64,
			"skiptls", a.c.insecure, "token", a.c.token, "user", workerUser}
		in.HostID = m.hostID
	}
	if m.lst.IsPod() {
		in.InterfaceIP = m.podName
	}
	in.ConnectionPortObject = orderedJSON(kv...)
	return in
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
