package kube

import (
	"context"
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepool-go/nodepool/driver"
)

func jsonMerge(v any) ([]byte, error) { return json.Marshal(v) }

type deleteMachine struct {
	a      *Adapter
	id     string
	issued time.Time // when the delete call was answered; zero before
}

// DeleteMachine deletes a node's namespace or project (with everything in
// it, in the background) or, for openshiftpods, its pod, and waits until
// the shared listing no longer shows it.
func (a *Adapter) DeleteMachine(externalID string) driver.DeleteMachine {
	return &deleteMachine{a: a, id: externalID}
}

// deleteCall issues the delete; gone reports that the object did not
// exist.
func (a *Adapter) deleteCall(ctx context.Context, id string) (gone bool, err error) {
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	switch a.st.Flavor {
	case OpenShift:
		err = a.c.dyn.Resource(gvrProjects).Delete(ctx, id, opts)
	case OpenShiftPods:
		ns, pod, ok := a.splitPodID(id)
		if !ok {
			return true, driver.NotFoundError("pod %s: no pool of provider %s holds it", id, a.cfg.Name)
		}
		err = a.c.kc.deletePod(ctx, ns, pod, opts)
	default:
		err = a.c.kc.deleteNamespace(ctx, id, opts)
	}
	err = classify(err, "deleting "+a.resourceType()+" "+id)
	return driver.IsNotFound(err), err
}

// Advance issues the delete once, then reports done when a listing made
// after it no longer holds the object.
func (m *deleteMachine) Advance(ctx context.Context) (bool, error) {
	if m.issued.IsZero() {
		gone, err := m.a.deleteCall(ctx, m.id)
		if gone {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		m.issued = time.Now()
		return false, nil
	}
	cache := m.a.spaces
	if m.a.st.Flavor == OpenShiftPods {
		cache = m.a.pods
	}
	items, _, ok, err := cache.Fresh(ctx, m.issued)
	if err != nil || !ok {
		return false, err
	}
	for _, it := range items {
		id := it.Name
		if it.Namespace != "" {
			id = it.Namespace + "-" + it.Name
		}
		if id == m.id {
			return false, nil
		}
	}
	return true, nil
}
