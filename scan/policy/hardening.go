package policy

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// hardeningRule is a check beyond the Pod Security Standards; it applies at every level.
type hardeningRule struct {
	id, description string
	// overlapsPSS is set when a Pod Security check looks at the same field: a
	// finding on a path that check already reported is dropped.
	overlapsPSS bool
	check       func(o *object, accounts map[string]*bool) []Violation
}

var hardeningRules = []hardeningRule{
	{id: "image-digest", description: "images are pinned by digest (name@sha256:...)", check: checkImageDigest},
	{id: "image-latest", description: "images do not use the latest tag, or no tag", check: checkImageLatest},
	{id: "image-unrecognised", description: "every value that looks like an image sits where it can be checked: a pod spec's containers or image volumes, or a workload resource deploy.Walk interprets", check: checkImageUnrecognised},
	{id: "resources", description: "containers set CPU and memory requests and a memory limit", check: checkResources},
	{id: "read-only-root-fs", description: "containers set readOnlyRootFilesystem: true", check: checkReadOnlyRootFS},
	{id: "allow-privilege-escalation", description: "containers set allowPrivilegeEscalation: false", overlapsPSS: true, check: checkPrivilegeEscalation},
	{id: "seccomp", description: "pods or containers set seccompProfile RuntimeDefault or Localhost", overlapsPSS: true, check: checkSeccomp},
	{id: "host-namespaces", description: "pods do not share the host's network, PID or IPC namespace", overlapsPSS: true, check: checkHostNamespaces},
	{id: "automount-sa-token", description: "pods do not mount a service account token unless they ask for it (automountServiceAccountToken: true)", check: checkAutomount},
	{id: "secret-plaintext", description: "Secrets are not committed with plaintext data", check: checkSecretPlaintext},
}

func (o *object) violation(rule, path, msg, fix string) Violation {
	return Violation{Rule: rule, Object: o.ref, Path: path, Message: msg, Fix: fix}
}

// forContainers runs f on each container of each of o's pods.
func forContainers(o *object, f func(p *podTemplate, ref containerRef) []Violation) []Violation {
	var vs []Violation
	for _, p := range o.pods {
		for _, ref := range p.containers {
			vs = append(vs, f(p, ref)...)
		}
	}
	return vs
}

// forImages runs f on each image of o's pods, containers' and image volumes', and
// on each package image (a Tekton bundle, a Crossplane package), with the image's
// field path.
func forImages(o *object, f func(image, path string) []Violation) []Violation {
	vs := forContainers(o, func(_ *podTemplate, ref containerRef) []Violation {
		return f(ref.c.Image, ref.path+".image")
	})
	for _, p := range o.pods {
		for i, v := range p.spec.Volumes {
			if v.Image != nil {
				vs = append(vs, f(v.Image.Reference, p.volumePaths[i]+".image.reference")...)
			}
		}
	}
	for _, u := range o.packages {
		vs = append(vs, f(u.Image, u.Path)...)
	}
	return vs
}

// splitImage returns the tag and digest of an image reference ("" when absent).
func splitImage(image string) (tag, digest string) {
	if i := strings.Index(image, "@"); i >= 0 {
		image, digest = image[:i], image[i+1:]
	}
	last := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		tag = last[i+1:]
	}
	return tag, digest
}

func checkImageDigest(o *object, _ map[string]*bool) []Violation {
	return forImages(o, func(image, path string) []Violation {
		if _, digest := splitImage(image); digest != "" {
			return nil
		}
		return []Violation{o.violation("image-digest", path,
			fmt.Sprintf("image %q is not pinned by digest; the tag can move to other content", image),
			"refer to the image by digest (name@sha256:...), e.g. with deploy/render's digest pinning or `crane digest`")}
	})
}

func checkImageLatest(o *object, _ map[string]*bool) []Violation {
	return forImages(o, func(image, path string) []Violation {
		tag, digest := splitImage(image)
		if digest != "" || (tag != "" && tag != "latest") {
			return nil
		}
		what := "the latest tag"
		if tag == "" {
			what = "no tag (so latest)"
		}
		return []Violation{o.violation("image-latest", path,
			fmt.Sprintf("image %q uses %s, which changes with every push", image, what),
			"use a version tag and pin the digest")}
	})
}

func checkImageUnrecognised(o *object, _ map[string]*bool) []Violation {
	var vs []Violation
	for _, u := range o.unrecognised {
		msg := fmt.Sprintf("%q looks like an image but is not in a place that can be checked", u.Image)
		if u.Note != "" {
			msg = u.Note
		}
		vs = append(vs, o.violation("image-unrecognised", u.Path, msg,
			"name images in a pod spec's containers or image volumes, or in a workload kind deploy.Walk interprets; "+
				"check objects of this kind with a rule of your own"))
	}
	return vs
}

func checkResources(o *object, _ map[string]*bool) []Violation {
	return forContainers(o, func(_ *podTemplate, ref containerRef) []Violation {
		if ref.list == "ephemeralContainers" { // the API forbids resources on them
			return nil
		}
		r := ref.c.Resources
		var missing []string
		if _, ok := r.Requests[corev1.ResourceCPU]; !ok {
			missing = append(missing, "requests.cpu")
		}
		if _, ok := r.Requests[corev1.ResourceMemory]; !ok {
			missing = append(missing, "requests.memory")
		}
		if _, ok := r.Limits[corev1.ResourceMemory]; !ok {
			missing = append(missing, "limits.memory")
		}
		if len(missing) == 0 {
			return nil
		}
		return []Violation{o.violation("resources", ref.path+".resources",
			"container sets no "+strings.Join(missing, ", "),
			"set resources."+strings.Join(missing, " and resources.")+" so the scheduler can place the pod and the kubelet can bound it")}
	})
}

func checkReadOnlyRootFS(o *object, _ map[string]*bool) []Violation {
	return forContainers(o, func(_ *podTemplate, ref containerRef) []Violation {
		if sc := ref.c.SecurityContext; sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
			return nil
		}
		return []Violation{o.violation("read-only-root-fs", ref.path+".securityContext.readOnlyRootFilesystem",
			"the container's root filesystem is writable",
			"set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the program writes")}
	})
}

func checkPrivilegeEscalation(o *object, _ map[string]*bool) []Violation {
	return forContainers(o, func(_ *podTemplate, ref containerRef) []Violation {
		if sc := ref.c.SecurityContext; sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
			return nil
		}
		return []Violation{o.violation("allow-privilege-escalation", ref.path+".securityContext.allowPrivilegeEscalation",
			"the container may gain more privileges than its parent process (setuid binaries)",
			"set securityContext.allowPrivilegeEscalation: false")}
	})
}

func validSeccomp(p *corev1.SeccompProfile) bool {
	return p != nil && (p.Type == corev1.SeccompProfileTypeRuntimeDefault || p.Type == corev1.SeccompProfileTypeLocalhost)
}

func checkSeccomp(o *object, _ map[string]*bool) []Violation {
	var vs []Violation
	for _, p := range o.pods {
		vs = append(vs, checkPodSeccomp(o, p)...)
	}
	return vs
}

func checkPodSeccomp(o *object, p *podTemplate) []Violation {
	if p.spec.OS != nil && p.spec.OS.Name == corev1.Windows {
		return nil
	}
	var podProfile *corev1.SeccompProfile
	if p.spec.SecurityContext != nil {
		podProfile = p.spec.SecurityContext.SeccompProfile
	}
	var vs []Violation
	if podProfile != nil && !validSeccomp(podProfile) {
		vs = append(vs, o.violation("seccomp", p.field("securityContext.seccompProfile.type"),
			fmt.Sprintf("the pod's seccomp profile is %q", podProfile.Type),
			"set spec.securityContext.seccompProfile.type: RuntimeDefault"))
	}
	for _, ref := range p.containers {
		var own *corev1.SeccompProfile
		if ref.c.SecurityContext != nil {
			own = ref.c.SecurityContext.SeccompProfile
		}
		switch {
		case own != nil && !validSeccomp(own):
			vs = append(vs, o.violation("seccomp", ref.path+".securityContext.seccompProfile.type",
				fmt.Sprintf("the container's seccomp profile is %q", own.Type),
				"set securityContext.seccompProfile.type: RuntimeDefault"))
		case own == nil && podProfile == nil:
			vs = append(vs, o.violation("seccomp", ref.path+".securityContext.seccompProfile.type",
				"neither the pod nor the container sets a seccomp profile, so it runs Unconfined on most runtimes",
				"set securityContext.seccompProfile.type: RuntimeDefault on the container, or on the pod for all its containers"))
		}
	}
	return vs
}

func checkHostNamespaces(o *object, _ map[string]*bool) []Violation {
	var vs []Violation
	for _, p := range o.pods {
		for _, f := range hostNamespaceFields(&p.spec) {
			vs = append(vs, o.violation("host-namespaces", p.field(f),
				f+" shares the host's namespace with the pod",
				"remove "+f+" or set it to false"))
		}
	}
	return vs
}

func checkAutomount(o *object, accounts map[string]*bool) []Violation {
	var vs []Violation
	for _, p := range o.pods {
		if v := p.spec.AutomountServiceAccountToken; v != nil {
			continue // false is the hardened value; true says the pod needs the token
		}
		sa := p.spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		if v, ok := accounts[o.ref.Namespace+"/"+sa]; ok && v != nil && !*v {
			continue // the service account turns it off for its pods
		}
		vs = append(vs, o.violation("automount-sa-token", p.field("automountServiceAccountToken"),
			fmt.Sprintf("the pod mounts a token of service account %q by default", sa),
			"set automountServiceAccountToken: false on the pod (or its ServiceAccount); set it to true only if the pod talks to the API server"))
	}
	return vs
}

func checkSecretPlaintext(o *object, _ map[string]*bool) []Violation {
	var fs []Violation
	for _, field := range []string{"data", "stringData"} {
		keys := o.secretKeys[field]
		if len(keys) == 0 {
			continue
		}
		fs = append(fs, o.violation("secret-plaintext", field,
			fmt.Sprintf("the Secret's %s holds %d key(s) (%s) in plain text in the manifests", field, len(keys), strings.Join(keys, ", ")),
			"keep secret values out of the manifests: create the Secret out of band, or use an encrypted form (SOPS, Sealed Secrets, External Secrets)"))
	}
	return fs
}
