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
	check       func(o *object, accounts map[string]*bool) []Finding
}

var hardeningRules = []hardeningRule{
	{id: "image-digest", description: "images are pinned by digest (name@sha256:...)", check: checkImageDigest},
	{id: "image-latest", description: "images do not use the latest tag, or no tag", check: checkImageLatest},
	{id: "resources", description: "containers set CPU and memory requests and a memory limit", check: checkResources},
	{id: "read-only-root-fs", description: "containers set readOnlyRootFilesystem: true", check: checkReadOnlyRootFS},
	{id: "allow-privilege-escalation", description: "containers set allowPrivilegeEscalation: false", overlapsPSS: true, check: checkPrivilegeEscalation},
	{id: "seccomp", description: "pods or containers set seccompProfile RuntimeDefault or Localhost", overlapsPSS: true, check: checkSeccomp},
	{id: "host-namespaces", description: "pods do not share the host's network, PID or IPC namespace", overlapsPSS: true, check: checkHostNamespaces},
	{id: "automount-sa-token", description: "pods do not mount a service account token unless they ask for it (automountServiceAccountToken: true)", check: checkAutomount},
	{id: "secret-plaintext", description: "Secrets are not committed with plaintext data", check: checkSecretPlaintext},
}

func (o *object) finding(rule, path, msg, fix string) Finding {
	return Finding{Rule: rule, Kind: o.kind, Namespace: o.namespace, Name: o.name, Path: path, Message: msg, Fix: fix}
}

// forContainers runs f on each container of o's pod.
func forContainers(o *object, f func(ref containerRef) []Finding) []Finding {
	if o.pod == nil {
		return nil
	}
	var fs []Finding
	for _, ref := range o.pod.containers() {
		fs = append(fs, f(ref)...)
	}
	return fs
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

func checkImageDigest(o *object, _ map[string]*bool) []Finding {
	return forContainers(o, func(ref containerRef) []Finding {
		if _, digest := splitImage(ref.c.Image); digest != "" {
			return nil
		}
		return []Finding{o.finding("image-digest", ref.path+".image",
			fmt.Sprintf("image %q is not pinned by digest; the tag can move to other content", ref.c.Image),
			"refer to the image by digest (name@sha256:...), e.g. with deploy.Render's digest pinning or `crane digest`")}
	})
}

func checkImageLatest(o *object, _ map[string]*bool) []Finding {
	return forContainers(o, func(ref containerRef) []Finding {
		tag, digest := splitImage(ref.c.Image)
		if digest != "" || (tag != "" && tag != "latest") {
			return nil
		}
		what := "the latest tag"
		if tag == "" {
			what = "no tag (so latest)"
		}
		return []Finding{o.finding("image-latest", ref.path+".image",
			fmt.Sprintf("image %q uses %s, which changes with every push", ref.c.Image, what),
			"use a version tag and pin the digest")}
	})
}

func checkResources(o *object, _ map[string]*bool) []Finding {
	return forContainers(o, func(ref containerRef) []Finding {
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
		return []Finding{o.finding("resources", ref.path+".resources",
			"container sets no "+strings.Join(missing, ", "),
			"set resources."+strings.Join(missing, " and resources.")+" so the scheduler can place the pod and the kubelet can bound it")}
	})
}

func checkReadOnlyRootFS(o *object, _ map[string]*bool) []Finding {
	return forContainers(o, func(ref containerRef) []Finding {
		if sc := ref.c.SecurityContext; sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
			return nil
		}
		return []Finding{o.finding("read-only-root-fs", ref.path+".securityContext.readOnlyRootFilesystem",
			"the container's root filesystem is writable",
			"set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the program writes")}
	})
}

func checkPrivilegeEscalation(o *object, _ map[string]*bool) []Finding {
	return forContainers(o, func(ref containerRef) []Finding {
		if sc := ref.c.SecurityContext; sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
			return nil
		}
		return []Finding{o.finding("allow-privilege-escalation", ref.path+".securityContext.allowPrivilegeEscalation",
			"the container may gain more privileges than its parent process (setuid binaries)",
			"set securityContext.allowPrivilegeEscalation: false")}
	})
}

func validSeccomp(p *corev1.SeccompProfile) bool {
	return p != nil && (p.Type == corev1.SeccompProfileTypeRuntimeDefault || p.Type == corev1.SeccompProfileTypeLocalhost)
}

func checkSeccomp(o *object, _ map[string]*bool) []Finding {
	p := o.pod
	if p == nil || (p.spec.OS != nil && p.spec.OS.Name == corev1.Windows) {
		return nil
	}
	var podProfile *corev1.SeccompProfile
	if p.spec.SecurityContext != nil {
		podProfile = p.spec.SecurityContext.SeccompProfile
	}
	var fs []Finding
	if podProfile != nil && !validSeccomp(podProfile) {
		fs = append(fs, o.finding("seccomp", p.path+".securityContext.seccompProfile.type",
			fmt.Sprintf("the pod's seccomp profile is %q", podProfile.Type),
			"set spec.securityContext.seccompProfile.type: RuntimeDefault"))
	}
	return append(fs, forContainers(o, func(ref containerRef) []Finding {
		var own *corev1.SeccompProfile
		if ref.c.SecurityContext != nil {
			own = ref.c.SecurityContext.SeccompProfile
		}
		switch {
		case own != nil && !validSeccomp(own):
			return []Finding{o.finding("seccomp", ref.path+".securityContext.seccompProfile.type",
				fmt.Sprintf("the container's seccomp profile is %q", own.Type),
				"set securityContext.seccompProfile.type: RuntimeDefault")}
		case own == nil && podProfile == nil:
			return []Finding{o.finding("seccomp", ref.path+".securityContext.seccompProfile.type",
				"neither the pod nor the container sets a seccomp profile, so it runs Unconfined on most runtimes",
				"set securityContext.seccompProfile.type: RuntimeDefault on the container, or on the pod for all its containers")}
		}
		return nil
	})...)
}

func checkHostNamespaces(o *object, _ map[string]*bool) []Finding {
	if o.pod == nil {
		return nil
	}
	var fs []Finding
	for _, f := range hostNamespaceFields(&o.pod.spec) {
		fs = append(fs, o.finding("host-namespaces", o.pod.path+"."+f,
			f+" shares the host's namespace with the pod",
			"remove "+f+" or set it to false"))
	}
	return fs
}

func checkAutomount(o *object, accounts map[string]*bool) []Finding {
	p := o.pod
	if p == nil {
		return nil
	}
	if v := p.spec.AutomountServiceAccountToken; v != nil {
		return nil // false is the hardened value; true says the pod needs the token
	}
	sa := p.spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	if v, ok := accounts[o.namespace+"/"+sa]; ok && v != nil && !*v {
		return nil // the service account turns it off for its pods
	}
	return []Finding{o.finding("automount-sa-token", p.path+".automountServiceAccountToken",
		fmt.Sprintf("the pod mounts a token of service account %q by default", sa),
		"set automountServiceAccountToken: false on the pod (or its ServiceAccount); set it to true only if the pod talks to the API server")}
}

func checkSecretPlaintext(o *object, _ map[string]*bool) []Finding {
	var fs []Finding
	for _, field := range []string{"data", "stringData"} {
		keys := o.secretKeys[field]
		if len(keys) == 0 {
			continue
		}
		fs = append(fs, o.finding("secret-plaintext", field,
			fmt.Sprintf("the Secret's %s holds %d key(s) (%s) in plain text in the manifests", field, len(keys), strings.Join(keys, ", ")),
			"keep secret values out of the manifests: create the Secret out of band, or use an encrypted form (SOPS, Sealed Secrets, External Secrets)"))
	}
	return fs
}
