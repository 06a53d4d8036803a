package kube

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/internal/testbed"
)

// fakeNodeAnnotation marks the nodes kwok manages (--manage-nodes-with-annotation-selector).
const fakeNodeAnnotation = "kwok.x-k8s.io/node"

// component is a control plane process the test bed starts itself, and the HTTPS
// endpoint that says it is ready (none for kwok, whose readiness shows in its nodes).
type component struct {
	name   string
	bin    string
	args   []string
	env    []string
	health string
}

// components returns kube-controller-manager, kube-scheduler and kwok, each with its own
// identity in the group system:masters and its secure port on 127.0.0.1.
func (c *Cluster) components(a assets) ([]component, error) {
	var kubeconfigs [3]string
	for i, user := range []string{"system:kube-controller-manager", "system:kube-scheduler", "kwok"} {
		_, path, err := c.addUser(user, "system:masters")
		if err != nil {
			return nil, err
		}
		kubeconfigs[i] = path
	}
	var ports [2]string
	for i := range ports {
		port, err := testbed.FreePort()
		if err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
		ports[i] = strconv.Itoa(port)
	}
	kcmPort, schedPort := ports[0], ports[1]
	flexDir := filepath.Join(c.LogDir, "flexvolume")
	kwokDir := filepath.Join(c.LogDir, "kwok")
	for _, d := range []string{flexDir, kwokDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
	}
	// served lets a component serve on 127.0.0.1 only and check bearer tokens against
	// the API server. It skips looking up client CAs in kube-system: envtest's API
	// server publishes no request-header CA, and the lookup would retry forever.
	served := func(kubeconfig, port string) []string {
		return []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--authentication-skip-lookup",
			"--bind-address=127.0.0.1",
			"--secure-port=" + port,
			"--leader-elect=false",
		}
	}
	kwokArgs := []string{
		"--kubeconfig=" + kubeconfigs[2],
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + fakeNodeAnnotation + "=fake",
		// Renew node leases, or the node lifecycle controller taints the nodes
		// unreachable after its grace period and evicts their pods.
		"--node-lease-duration-seconds=40",
		"--cidr=10.244.0.0/16", // pod IPs apart from the service range (10.0.0.0/24)
		// No --node-port or --server-address: either makes kwok serve on 0.0.0.0.
	}
	for _, s := range a.stages {
		if filepath.Base(s) == "pod-ready.yaml" {
			var err error
			if s, err = withImageIDs(s, kwokDir); err != nil {
				return nil, err
			}
		}
		kwokArgs = append(kwokArgs, "--config="+s)
	}
	return []component{{
		name: "kube-controller-manager",
		bin:  a.bin("kube-controller-manager"),
		args: append(served(kubeconfigs[0], kcmPort),
			"--controllers=*", // every controller that is on by default in a cluster
			"--service-account-private-key-file="+c.saKey,
			"--root-ca-file="+c.caFile,
			// The volume controllers probe for flex volume plugins; the default is
			// /usr/libexec/kubernetes/kubelet-plugins/volume/exec.
			"--flex-volume-plugin-dir="+flexDir,
			"--kube-api-qps=100", "--kube-api-burst=200",
		),
		health: "https://127.0.0.1:" + kcmPort + "/healthz",
	}, {
		name:   "kube-scheduler",
		bin:    a.bin("kube-scheduler"),
		args:   served(kubeconfigs[1], schedPort),
		health: "https://127.0.0.1:" + schedPort + "/readyz",
	}, {
		name: "kwok",
		bin:  a.bin("kwok"),
		args: kwokArgs,
		// kwok reads $KWOK_WORKDIR/kwok.yaml (default ~/.kwok/kwok.yaml) besides --config.
		env: []string{"KWOK_WORKDIR=" + kwokDir},
	}}, nil
}

// createNodes creates the fake nodes kwok manages. They have no taints, so any pod can
// run on them, and the labels a kubelet would set.
func (c *Cluster) createNodes(ctx context.Context, n int) error {
	for i := range n {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{fakeNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
		}}
		if _, err := c.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("kube: create node %s: %w", name, err)
		}
		c.Nodes = append(c.Nodes, name)
	}
	return nil
}

// nodesReady checks that every fake node is Ready and untainted: kwok has initialized it
// and the node lifecycle controller has lifted the not-ready taint.
func (c *Cluster) nodesReady(ctx context.Context) error {
	for _, name := range c.Nodes {
		node, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := false
		for _, cond := range node.Status.Conditions {
			ready = ready || cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue
		}
		if !ready {
			return fmt.Errorf("node %s is not Ready", name)
		}
		if len(node.Spec.Taints) > 0 {
			return fmt.Errorf("node %s has taints %v", name, node.Spec.Taints)
		}
	}
	return nil
}

// serviceAccountReady checks that namespace has its default service account, which the
// controller-manager creates and the ServiceAccount admission plugin needs for pods.
func (c *Cluster) serviceAccountReady(namespace string) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.client.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return errors.New("no default service account yet")
		}
		return err
	}
}

// healthy returns a check that an HTTPS endpoint of a component answers 200. The
// components serve self-signed certificates on 127.0.0.1, so the check trusts any.
func healthy(url string) func(context.Context) error {
	client := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback health check
			DisableKeepAlives: true,
		},
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("health check %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("health check: %w", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
		}
		return nil
	}
}
