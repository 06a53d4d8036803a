package policy

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	psapi "k8s.io/pod-security-admission/api"
	psa "k8s.io/pod-security-admission/policy"
)

// pssCheck is one Pod Security check at the newest policy version this package links.
type pssCheck struct {
	id string
	fn psa.CheckPodFn
}

// pssChecks returns the checks the evaluator runs for level at the latest policy
// version: baseline checks for Baseline; baseline and restricted checks for
// Restricted, less the baseline checks a restricted one overrides.
func pssChecks(l Level) []pssCheck {
	if l == Privileged {
		return nil
	}
	type chosen struct {
		check psa.Check
		v     psa.VersionedCheck
	}
	var all []chosen
	overridden := map[psa.CheckID]bool{}
	for _, ch := range psa.DefaultChecks() {
		if len(ch.Versions) == 0 || (ch.Level == psapi.LevelRestricted && l != Restricted) {
			continue
		}
		v := ch.Versions[len(ch.Versions)-1] // versions are sorted, oldest first
		all = append(all, chosen{ch, v})
		if ch.Level == psapi.LevelRestricted {
			for _, id := range v.OverrideCheckIDs {
				overridden[id] = true
			}
		}
	}
	var out []pssCheck
	for _, c := range all {
		if !overridden[c.check.ID] {
			out = append(out, pssCheck{id: string(c.check.ID), fn: c.v.CheckPod})
		}
	}
	return out
}

// checkPodSecurity runs the Pod Security checks on the pod of o. The evaluator says
// whether a check fails; to name the field, each failing check is run again on the
// pod alone (no containers), on each volume alone and on each container alone.
func (c *Checker) checkPodSecurity(o *object, p *podTemplate) []Violation {
	var fs []Violation
	for _, ch := range c.pss {
		whole := ch.fn(&p.meta, &p.spec)
		if whole.Allowed {
			continue
		}
		info := pssInfoFor(ch.id)
		add := func(path string, r psa.CheckResult, fix string) {
			fs = append(fs, o.violation(pssRule(ch.id), path, pssMessage(r), fix))
		}
		n := len(fs)

		podOnly := p.spec
		podOnly.InitContainers, podOnly.Containers, podOnly.EphemeralContainers = nil, nil, nil
		podResult := ch.fn(&p.meta, &podOnly)
		podFailed := !podResult.Allowed
		if podFailed {
			paths := volumePaths(ch.fn, p, podOnly)
			if len(paths) == 0 && info.podFields != nil {
				paths = info.podFields(p)
			}
			if len(paths) == 0 {
				paths = []string{p.path}
			}
			for _, path := range paths {
				add(path, podResult, info.podFix)
			}
		}

		// With the pod-level fault set aside, each container is judged by itself.
		meta, base := p.meta, p.spec
		if podFailed {
			meta.Annotations = nil
			base = neutralPod(base)
		}
		for _, ref := range p.containers {
			alone := withOnly(base, ref)
			r := ch.fn(&meta, &alone)
			if r.Allowed {
				continue
			}
			fields := []string{""}
			if info.containerFields != nil {
				if f := info.containerFields(ref.c); len(f) > 0 {
					fields = f
				}
			}
			for _, f := range fields {
				path := ref.path
				if f != "" {
					path += "." + f
				}
				add(path, r, info.containerFix)
			}
		}
		if len(fs) == n { // the pod fails only as a whole
			add(p.path, whole, info.containerFix)
		}
	}
	return fs
}

// neutralPod returns spec with its pod-level security settings replaced by
// compliant ones, so a container is not blamed for the pod's fault.
func neutralPod(spec corev1.PodSpec) corev1.PodSpec {
	yes := true
	spec.SecurityContext = &corev1.PodSecurityContext{
		RunAsNonRoot:   &yes,
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	spec.HostNetwork, spec.HostPID, spec.HostIPC = false, false, false
	spec.Volumes = nil
	return spec
}

// volumePaths returns the volumes that fail the check by themselves.
func volumePaths(fn psa.CheckPodFn, p *podTemplate, podOnly corev1.PodSpec) []string {
	if len(podOnly.Volumes) == 0 {
		return nil
	}
	bare := neutralPod(podOnly)
	if r := fn(&p.meta, &bare); !r.Allowed {
		return nil // the fault is not in the volumes
	}
	var paths []string
	for i, v := range podOnly.Volumes {
		one := bare
		one.Volumes = []corev1.Volume{v}
		if r := fn(&p.meta, &one); !r.Allowed {
			path := p.volumePaths[i]
			if v.HostPath != nil {
				path += ".hostPath"
			}
			paths = append(paths, path)
		}
	}
	return paths
}

func pssMessage(r psa.CheckResult) string {
	if r.ForbiddenDetail == "" {
		return r.ForbiddenReason
	}
	return r.ForbiddenReason + ": " + r.ForbiddenDetail
}

// pssInfo says where a Pod Security check looks and how to fix what it finds.
type pssInfo struct {
	description string
	// podFields returns the pod-level field paths at fault.
	podFields func(p *podTemplate) []string
	// containerFields returns a container's fields at fault, relative to it.
	containerFields      func(c *corev1.Container) []string
	podFix, containerFix string
}

func fields(fs ...string) func(*corev1.Container) []string {
	return func(*corev1.Container) []string { return fs }
}

func podField(f string) func(p *podTemplate) []string {
	return func(p *podTemplate) []string { return []string{p.field(f)} }
}

const pssDocs = "https://kubernetes.io/docs/concepts/security/pod-security-standards/"

func pssInfoFor(id string) pssInfo {
	if i, ok := pssInfos[id]; ok {
		return i
	}
	fix := "see the Pod Security Standards, " + pssDocs
	return pssInfo{description: describePSS(id), podFix: fix, containerFix: fix}
}

func describePSS(id string) string {
	if i, ok := pssInfos[id]; ok {
		return i.description
	}
	return "Pod Security check " + id + " (" + pssDocs + ")"
}

var pssInfos = map[string]pssInfo{
	"privileged": {
		description:     "containers must not run privileged",
		containerFields: fields("securityContext.privileged"),
		containerFix:    "remove securityContext.privileged or set it to false",
	},
	"allowPrivilegeEscalation": {
		description:     "containers must set allowPrivilegeEscalation to false",
		containerFields: fields("securityContext.allowPrivilegeEscalation"),
		containerFix:    "set securityContext.allowPrivilegeEscalation: false",
	},
	"appArmorProfile": {
		description: "AppArmor profiles must be RuntimeDefault or Localhost",
		podFields: func(p *podTemplate) []string {
			var paths []string
			if sc := p.spec.SecurityContext; sc != nil && sc.AppArmorProfile != nil {
				paths = append(paths, p.field("securityContext.appArmorProfile.type"))
			}
			for _, k := range sortedKeys(p.meta.Annotations) {
				if strings.HasPrefix(k, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix) {
					paths = append(paths, fmt.Sprintf("%s.annotations[%s]", p.metaPath, k))
				}
			}
			return paths
		},
		containerFields: fields("securityContext.appArmorProfile.type"),
		podFix:          "set the AppArmor profile type to RuntimeDefault or Localhost, or remove it",
		containerFix:    "set securityContext.appArmorProfile.type to RuntimeDefault or Localhost, or remove it",
	},
	"capabilities_baseline": {
		description:     "containers must not add capabilities beyond the default set",
		containerFields: fields("securityContext.capabilities.add"),
		containerFix:    "remove the added capabilities outside the default set (AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT)",
	},
	"capabilities_restricted": {
		description:     "containers must drop ALL capabilities and add at most NET_BIND_SERVICE",
		containerFields: fields("securityContext.capabilities"),
		containerFix:    `set securityContext.capabilities.drop: ["ALL"] and add at most NET_BIND_SERVICE`,
	},
	"hostNamespaces": {
		description: "pods must not share the host's network, PID or IPC namespace",
		podFields: func(p *podTemplate) []string {
			var paths []string
			for _, f := range hostNamespaceFields(&p.spec) {
				paths = append(paths, p.field(f))
			}
			return paths
		},
		podFix: "remove hostNetwork, hostPID and hostIPC or set them to false",
	},
	"hostPathVolumes": {
		description: "pods must not mount hostPath volumes",
		podFix:      "replace the hostPath volume with an emptyDir, configMap, secret or persistentVolumeClaim volume",
	},
	"hostPorts": {
		description:     "containers must not bind host ports",
		containerFields: fields("ports"),
		containerFix:    "remove hostPort from the container's ports and expose it through a Service",
	},
	"hostProbesAndHostLifecycle": {
		description: "probes and lifecycle handlers must not set a host",
		containerFields: func(c *corev1.Container) []string {
			var paths []string
			probe := func(name string, p *corev1.Probe) {
				if p == nil {
					return
				}
				if p.HTTPGet != nil && p.HTTPGet.Host != "" {
					paths = append(paths, name+".httpGet.host")
				}
				if p.TCPSocket != nil && p.TCPSocket.Host != "" {
					paths = append(paths, name+".tcpSocket.host")
				}
			}
			probe("livenessProbe", c.LivenessProbe)
			probe("readinessProbe", c.ReadinessProbe)
			probe("startupProbe", c.StartupProbe)
			if l := c.Lifecycle; l != nil {
				for _, lh := range []struct {
					name string
					h    *corev1.LifecycleHandler
				}{{"lifecycle.postStart", l.PostStart}, {"lifecycle.preStop", l.PreStop}} {
					name, h := lh.name, lh.h
					if h != nil && h.HTTPGet != nil && h.HTTPGet.Host != "" {
						paths = append(paths, name+".httpGet.host")
					}
					if h != nil && h.TCPSocket != nil && h.TCPSocket.Host != "" {
						paths = append(paths, name+".tcpSocket.host")
					}
				}
			}
			return paths
		},
		containerFix: "remove the host field so the probe or handler targets the pod's own IP",
	},
	"procMount": {
		description:     "containers must use the default /proc mount",
		containerFields: fields("securityContext.procMount"),
		containerFix:    "remove securityContext.procMount or set it to Default",
	},
	"procMount_restricted": {
		description:     "containers must use the default /proc mount",
		containerFields: fields("securityContext.procMount"),
		containerFix:    "remove securityContext.procMount or set it to Default",
	},
	"restrictedVolumes": {
		description: "pods may use only configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected and secret volumes",
		podFix:      "replace the volume with a configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected or secret volume",
	},
	"runAsNonRoot": {
		description:     "containers must run as a non-root user (runAsNonRoot: true)",
		podFields:       podField("securityContext.runAsNonRoot"),
		containerFields: fields("securityContext.runAsNonRoot"),
		podFix:          "set spec.securityContext.runAsNonRoot: true",
		containerFix:    "set securityContext.runAsNonRoot: true on the container, or on the pod for all its containers",
	},
	"runAsUser": {
		description:     "containers must not run as UID 0",
		podFields:       podField("securityContext.runAsUser"),
		containerFields: fields("securityContext.runAsUser"),
		podFix:          "set securityContext.runAsUser to a non-zero UID, or remove it",
		containerFix:    "set securityContext.runAsUser to a non-zero UID, or remove it",
	},
	"seLinuxOptions": {
		description:     "SELinux options must not set a custom user or role, and only container types",
		podFields:       podField("securityContext.seLinuxOptions"),
		containerFields: fields("securityContext.seLinuxOptions"),
		podFix:          "remove seLinuxOptions.user and role; use type container_t, container_init_t, container_kvm_t or container_engine_t",
		containerFix:    "remove seLinuxOptions.user and role; use type container_t, container_init_t, container_kvm_t or container_engine_t",
	},
	"seccompProfile_baseline": {
		description:     "seccomp must not be Unconfined",
		podFields:       podField("securityContext.seccompProfile.type"),
		containerFields: fields("securityContext.seccompProfile.type"),
		podFix:          "set securityContext.seccompProfile.type: RuntimeDefault",
		containerFix:    "set securityContext.seccompProfile.type: RuntimeDefault",
	},
	"seccompProfile_restricted": {
		description:     "seccomp must be RuntimeDefault or Localhost",
		podFields:       podField("securityContext.seccompProfile.type"),
		containerFields: fields("securityContext.seccompProfile.type"),
		podFix:          "set spec.securityContext.seccompProfile.type: RuntimeDefault",
		containerFix:    "set securityContext.seccompProfile.type: RuntimeDefault on the container, or on the pod for all its containers",
	},
	"sysctls": {
		description: "pods may set only the safe sysctls",
		podFields:   podField("securityContext.sysctls"),
		podFix:      "remove the unsafe sysctls from securityContext.sysctls",
	},
	"windowsHostProcess": {
		description:     "Windows pods must not run as host processes",
		podFields:       podField("securityContext.windowsOptions.hostProcess"),
		containerFields: fields("securityContext.windowsOptions.hostProcess"),
		podFix:          "remove windowsOptions.hostProcess or set it to false",
		containerFix:    "remove windowsOptions.hostProcess or set it to false",
	},
}

func hostNamespaceFields(spec *corev1.PodSpec) []string {
	var fs []string
	if spec.HostNetwork {
		fs = append(fs, "hostNetwork")
	}
	if spec.HostPID {
		fs = append(fs, "hostPID")
	}
	if spec.HostIPC {
		fs = append(fs, "hostIPC")
	}
	return fs
}
