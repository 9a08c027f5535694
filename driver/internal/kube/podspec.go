package kube

import (
	"bytes"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepool-go/nodepool/driver"
)

// objectLabels returns the Kubernetes labels of a node's objects: the
// label's own labels, then the ownership keys and the nodepool label.
func objectLabels(spec driver.CreateSpec, lst *LabelSettings) map[string]string {
	out := map[string]string{}
	for k, v := range lst.Labels {
		out[k] = v
	}
	for k, v := range spec.Metadata {
		out[k] = v
	}
	out[LabelNodeLabel] = spec.Label.Name
	return out
}

// convert re-decodes free-form configuration (lists of Kubernetes objects
// written in YAML) into API types.
func convert(in any, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// buildPod returns the pod of a pod label: one container that sleeps, with
// the label's image, pull policy, requests and limits (cpu in cores,
// memory in MiB, storage in MB as ephemeral-storage, the gpu under its
// resource name), env, security context and volume mounts, and the pod's
// node selector, scheduler, volumes, pull secrets, labels and annotations.
func buildPod(name string, spec driver.CreateSpec, lst *LabelSettings) (*corev1.Pod, error) {
	c := corev1.Container{
		Name:            spec.Label.Name,
		Image:           lst.Image,
		ImagePullPolicy: corev1.PullPolicy(lst.ImagePull),
		Command:         []string{"/bin/sh", "-c"},
		Args:            []string{"while true; do sleep 30; done;"},
	}
	for _, e := range lst.Env {
		c.Env = append(c.Env, corev1.EnvVar{Name: e.Name, Value: e.Value})
	}
	req, lim := corev1.ResourceList{}, corev1.ResourceList{}
	setQ := func(l corev1.ResourceList, k corev1.ResourceName, v int, unit string) {
		if v == 0 {
			return
		}
		if unit == "" {
			l[k] = *resource.NewQuantity(int64(v), resource.DecimalSI)
			return
		}
		l[k] = resource.MustParse(fmt.Sprintf("%d%s", v, unit))
	}
	setQ(req, corev1.ResourceCPU, lst.CPU, "")
	setQ(req, corev1.ResourceMemory, lst.Memory, "Mi")
	setQ(req, corev1.ResourceEphemeralStorage, lst.Storage, "M")
	setQ(lim, corev1.ResourceCPU, lst.CPULimit, "")
	setQ(lim, corev1.ResourceMemory, lst.MemoryLimit, "Mi")
	setQ(lim, corev1.ResourceEphemeralStorage, lst.StorageLimit, "M")
	if lst.GPU != 0 && lst.GPUResource != "" {
		q, err := resource.ParseQuantity(fmt.Sprintf("%.2f", lst.GPU))
		if err != nil {
			return nil, fmt.Errorf("gpu %v: %w", lst.GPU, err)
		}
		req[corev1.ResourceName(lst.GPUResource)] = q
		lim[corev1.ResourceName(lst.GPUResource)] = q
	}
	if len(req) > 0 {
		c.Resources.Requests = req
	}
	if len(lim) > 0 {
		c.Resources.Limits = lim
	}
	if lst.Privileged != nil {
		v := *lst.Privileged
		c.SecurityContext = &corev1.SecurityContext{Privileged: &v}
	}
	if lst.VolumeMounts != nil {
		if err := convert(lst.VolumeMounts, &c.VolumeMounts); err != nil {
			return nil, fmt.Errorf("volume-mounts: %w", err)
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: objectLabels(spec, lst), Annotations: lst.Annotations},
		Spec: corev1.PodSpec{
			Containers:    []corev1.Container{c},
			NodeSelector:  lst.NodeSelector,
			SchedulerName: lst.SchedulerName,
		},
	}
	if lst.Volumes != nil {
		if err := convert(lst.Volumes, &pod.Spec.Volumes); err != nil {
			return nil, fmt.Errorf("volumes: %w", err)
		}
	}
	if lst.ImagePullSecrets != nil {
		if err := convert(lst.ImagePullSecrets, &pod.Spec.ImagePullSecrets); err != nil {
			return nil, fmt.Errorf("image-pull-secrets: %w", err)
		}
	}
	return pod, nil
}

// orderedJSON encodes key/value pairs as a JSON object in the given order
// (the connection record Zuul reads, written as the reference writes it).
func orderedJSON(kv ...any) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteString(", ")
		}
		k, _ := json.Marshal(kv[i])
		v, _ := json.Marshal(kv[i+1])
		b.Write(k)
		b.WriteString(": ")
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes()
}
