// Package netpol turns label intent into Kubernetes NetworkPolicies
// (networking.k8s.io/v1): a default-deny policy for a namespace plus allow rules
// stated in terms of labels and ports.
//
//	netpol.Policy{
//		Namespace: "shop",
//		DenyEgress: true, AllowDNS: true,
//		Ingress: []netpol.Ingress{
//			// app=web-front-end may receive from anywhere on 443.
//			{To: "app=web-front-end", From: []netpol.Peer{netpol.Anywhere}, Ports: []netpol.Port{netpol.TCP(443)}},
//			// app=api only from app=web-front-end on 8080.
//			{To: "app=api", From: []netpol.Peer{netpol.Pods("app=web-front-end")}, Ports: []netpol.Port{netpol.TCP(8080)}},
//		},
//	}
//
// Selectors are Kubernetes label selectors ("app=api", "tier in (web,api)"). Nothing
// is implied: who may connect, and on which ports, is always stated ([Anywhere] and
// [AnyPort] say "any" explicitly). When egress is denied too, every ingress rule
// from pods of the same namespace also lets those pods send to the rule's pods on its
// ports, so a flow is stated once; egress to cluster DNS is allowed only with
// AllowDNS.
//
// [Policy.Validate] reports every problem at once, each with the field it concerns;
// [Policy.NetworkPolicies] renders typed objects, [Policy.Objects] unstructured ones
// for deploy/apply.
package netpol

import (
	corev1 "k8s.io/api/core/v1"
)

// Policy is the network intent for one namespace.
type Policy struct {
	// Namespace is where the policies go and the pods they select live.
	Namespace string
	// DenyEgress makes the default-deny policy cover egress as well as ingress.
	DenyEgress bool
	// AllowDNS lets every pod of the namespace query the cluster DNS (pods labeled
	// k8s-app=kube-dns in kube-system) on UDP and TCP port 53. It needs DenyEgress;
	// without it all egress is allowed anyway.
	AllowDNS bool
	// Ingress lists who may connect to which pods.
	Ingress []Ingress
	// Egress lists where pods may connect to, beyond what Ingress implies.
	Egress []Egress
	// Labels are added to every NetworkPolicy.
	Labels map[string]string
}

// Ingress lets the pods To receive connections From on Ports.
type Ingress struct {
	// To selects the receiving pods of the namespace ("app=api").
	To string
	// From lists who may connect: pods, namespaces, address blocks, or [Anywhere].
	From []Peer
	// Ports lists the destination ports; [AnyPort] allows every port.
	Ports []Port
}

// Egress lets the pods From connect To on Ports.
type Egress struct {
	// From selects the sending pods of the namespace ("app=api").
	From string
	// To lists where they may connect: pods, namespaces, address blocks, or [Anywhere].
	To []Peer
	// Ports lists the destination ports; [AnyPort] allows every port.
	Ports []Port
}

// Peer is the other end of a connection. Build one with [Pods], [PodsIn],
// [Namespaces], [CIDR] or use [Anywhere].
type Peer struct {
	// Pods selects pods; "" selects every pod of the namespaces Namespaces selects.
	Pods string
	// Namespaces selects namespaces; "" means the policy's own namespace.
	Namespaces string
	// CIDR is an IP block ("10.0.0.0/8"); it excludes Pods and Namespaces.
	CIDR string
	// Except are blocks within CIDR that are not part of the peer.
	Except []string

	anywhere bool
}

// Anywhere is every peer: any pod of any namespace and any address.
var Anywhere = Peer{anywhere: true}

// Pods returns the pods of the policy's namespace that selector selects.
func Pods(selector string) Peer { return Peer{Pods: selector} }

// PodsIn returns the pods that pods selects in the namespaces that namespaces
// selects; pods "" means all of their pods. [Namespace] makes a selector for one
// namespace by name.
func PodsIn(namespaces, pods string) Peer { return Peer{Namespaces: namespaces, Pods: pods} }

// Namespaces returns every pod of the namespaces that selector selects.
func Namespaces(selector string) Peer { return Peer{Namespaces: selector} }

// CIDR returns the addresses of an IP block, without the blocks in except.
func CIDR(cidr string, except ...string) Peer { return Peer{CIDR: cidr, Except: except} }

// Namespace returns a selector of the namespace called name (by the
// kubernetes.io/metadata.name label every namespace has).
func Namespace(name string) string { return corev1.LabelMetadataName + "=" + name }

// Port is a destination port (or range) and its protocol.
type Port struct {
	// Port is the port number (1-65535), or the first of a range.
	Port int32
	// EndPort, when set, ends the range Port-EndPort.
	EndPort int32
	// Name is a named container port, instead of Port.
	Name string
	// Protocol defaults to TCP.
	Protocol corev1.Protocol

	any bool
}

// AnyPort allows every port and protocol.
var AnyPort = Port{any: true}

// TCP returns a TCP port.
func TCP(port int32) Port { return Port{Port: port, Protocol: corev1.ProtocolTCP} }

// UDP returns a UDP port.
func UDP(port int32) Port { return Port{Port: port, Protocol: corev1.ProtocolUDP} }

// Named returns a TCP container port by name ("http").
func Named(name string) Port { return Port{Name: name, Protocol: corev1.ProtocolTCP} }
