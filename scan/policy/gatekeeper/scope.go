package gatekeeper

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
)

// WithDefaultNamespace judges a namespaced object without metadata.namespace in
// namespace ns, as kubectl apply -n ns or helm install -n ns would create it (Helm
// leaves it empty). Without it such an object is an error from [Policies.Eval],
// never judged as if cluster-scoped, where a Constraint's namespaces would not
// select it.
func WithDefaultNamespace(ns string) Option {
	return func(c *config) {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			c.errs.Addf("WithDefaultNamespace(%q): not a namespace name: %s", ns, strings.Join(msgs, "; "))
			return
		}
		c.defaultNS = ns
	}
}

// clusterScoped lists Kubernetes' cluster-scoped kinds, by group.
var clusterScoped = map[schema.GroupKind]bool{
	{Kind: "Namespace"}: true, {Kind: "Node"}: true, {Kind: "PersistentVolume"}: true, {Kind: "ComponentStatus"}: true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}: true, {Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}: true,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}: true, {Group: "apiregistration.k8s.io", Kind: "APIService"}: true,
	{Group: "storage.k8s.io", Kind: "StorageClass"}: true, {Group: "storage.k8s.io", Kind: "CSIDriver"}: true, {Group: "storage.k8s.io", Kind: "CSINode"}: true,
	{Group: "storage.k8s.io", Kind: "VolumeAttachment"}: true, {Group: "scheduling.k8s.io", Kind: "PriorityClass"}: true,
	{Group: "networking.k8s.io", Kind: "IngressClass"}: true, {Group: "node.k8s.io", Kind: "RuntimeClass"}: true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}: true, {Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}: true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicy"}: true, {Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicyBinding"}: true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicy"}: true, {Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicyBinding"}: true,
	{Group: "certificates.k8s.io", Kind: "CertificateSigningRequest"}: true, {Group: "flowcontrol.apiserver.k8s.io", Kind: "FlowSchema"}: true,
	{Group: "flowcontrol.apiserver.k8s.io", Kind: "PriorityLevelConfiguration"}: true,
}

// scopesOf returns whether each kind is cluster-scoped: Kubernetes' kinds, then the
// CustomResourceDefinitions among objs (spec.scope). Other kinds are namespaced.
func scopesOf(objs ...[]*unstructured.Unstructured) map[schema.GroupKind]bool {
	out := make(map[schema.GroupKind]bool, len(clusterScoped))
	for gk := range clusterScoped {
		out[gk] = true
	}
	crd := schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}
	for _, list := range objs {
		for _, o := range list {
			if o.GroupVersionKind().GroupKind() != crd {
				continue
			}
			group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
			scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
			out[schema.GroupKind{Group: group, Kind: kind}] = scope == "Cluster"
		}
	}
	return out
}

// place returns o in the namespace it will be created in: as it is when it has one
// or its kind is cluster-scoped, else a copy in the default namespace.
func (p *Policies) place(o *unstructured.Unstructured, scopes map[schema.GroupKind]bool) (*unstructured.Unstructured, error) {
	gk := o.GroupVersionKind().GroupKind()
	if o.GetNamespace() != "" || scopes[gk] {
		return o, nil
	}
	if p.defaultNS == "" {
		return nil, fmt.Errorf("%s is namespaced but has no metadata.namespace: set it, or give the namespace it will be applied in with WithDefaultNamespace", gk.Kind)
	}
	c := o.DeepCopy()
	c.SetNamespace(p.defaultNS)
	return c, nil
}
