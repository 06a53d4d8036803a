// Package kube starts a real Kubernetes control plane for integration tests: etcd and
// kube-apiserver (through controller-runtime's envtest), kube-controller-manager,
// kube-scheduler and kwok, which plays the kubelet of fake nodes. Pods are scheduled onto
// the fake nodes and become Running and Ready (and, for Jobs, Succeeded) without
// containers, so Deployments become Available and Jobs Complete as in a real cluster.
//
// Everything listens on 127.0.0.1 with random ports. The binaries come from
// $KUBEBUILDER_ASSETS or from the cache that hack/testbed.sh fills; when they are missing,
// [Start] fails with an error that wraps [testbed.ErrMissing]. Start one cluster per test
// package with [testbed.Lazy] and give each test its own namespace with
// [Cluster.NewNamespace].
package kube

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/shipkit/shipkit/internal/testbed"
)

// DefaultStartTimeout bounds [Start]: a cold start takes 10–30 s on a busy machine.
const DefaultStartTimeout = 90 * time.Second

// fakeNodes is how many fake nodes the cluster has.
const fakeNodes = 2

// Cluster is a running control plane. Its zero value is not usable; get one from [Start].
type Cluster struct {
	// Kubeconfig is the path of a kubeconfig file for a cluster administrator (group
	// system:masters), for code that takes a kubeconfig and context.
	Kubeconfig string
	// Context is the name of the kubeconfig's only context, also its current one.
	Context string
	// Nodes are the names of the fake nodes, which take any pod.
	Nodes []string
	// LogDir holds each component's log (kube-apiserver.log, kwok.log, ...) while the
	// cluster runs; stopping the cluster removes it.
	LogDir string

	config   *rest.Config
	client   kubernetes.Interface
	plane    *envtest.ControlPlane
	procs    []*testbed.Process // every component in start order; envtest runs the first two
	files    []*os.File
	saKey    string
	caFile   string
	stopOnce sync.Once
}

// Start starts a cluster within [DefaultStartTimeout]. Its signature fits [testbed.Lazy];
// the returned function stops the cluster and removes its files.
func Start() (*Cluster, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStartTimeout)
	defer cancel()
	return StartContext(ctx)
}

// StartContext starts a cluster and waits until it can run pods, giving up when ctx
// ends. The returned function stops the cluster and removes its files.
func StartContext(ctx context.Context) (*Cluster, func(), error) {
	a, err := locateAssets()
	if err != nil {
		return nil, nil, err
	}
	var c *Cluster
	err = testbed.RetryOnPortTaken(func() error {
		c, err = startOnce(ctx, a)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return c, c.stop, nil
}

// startOnce starts a cluster in a new directory. When a component could not listen
// because another process took its port after it was picked (test packages start
// clusters in parallel), the error wraps [testbed.ErrPortTaken].
func startOnce(ctx context.Context, a assets) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "shipkit-kube-")
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	c := &Cluster{Context: "shipkit-testbed", LogDir: dir}
	if err := c.start(ctx, a); err != nil {
		taken := c.portTaken()
		c.stop()
		if taken && ctx.Err() == nil {
			return nil, fmt.Errorf("%w: %w", testbed.ErrPortTaken, err)
		}
		return nil, err
	}
	return c, nil
}

// portTaken reports whether a component's log says that its address was in use.
func (c *Cluster) portTaken() bool {
	for _, p := range c.procs {
		if strings.Contains(p.Tail(50), "address already in use") {
			return true
		}
	}
	return false
}

func (c *Cluster) start(ctx context.Context, a assets) error {
	if err := c.startAPIServer(ctx, a); err != nil {
		return err
	}
	var err error
	if c.config, c.Kubeconfig, err = c.addUser("shipkit-admin", "system:masters"); err != nil {
		return err
	}
	if c.client, err = kubernetes.NewForConfig(c.config); err != nil {
		return fmt.Errorf("kube: client: %w", err)
	}
	if err := testbed.WaitFor(ctx, "the API server's system namespaces", c.namespacesExist, c.procs...); err != nil {
		return fmt.Errorf("kube: %w", err)
	}
	comps, err := c.components(a)
	if err != nil {
		return err
	}
	byName := map[string]*testbed.Process{}
	for _, comp := range comps {
		// The components live until stop, not until the deadline of ctx.
		p, err := testbed.StartProcess(context.WithoutCancel(ctx), testbed.ProcessConfig{
			Name:    comp.name,
			Bin:     comp.bin,
			Args:    comp.args,
			Env:     append(os.Environ(), comp.env...),
			LogFile: filepath.Join(c.LogDir, comp.name+".log"),
		})
		if err != nil {
			return fmt.Errorf("kube: %w", err)
		}
		c.procs = append(c.procs, p)
		byName[comp.name] = p
	}
	if err := c.createNodes(ctx, fakeNodes); err != nil {
		return err
	}
	for _, comp := range comps {
		if comp.health != "" {
			if err := testbed.WaitFor(ctx, comp.name, healthy(comp.health), byName[comp.name]); err != nil {
				return fmt.Errorf("kube: %w", err)
			}
		}
	}
	kcm, kwok := byName["kube-controller-manager"], byName["kwok"]
	if err := testbed.WaitFor(ctx, "the default service account", c.serviceAccountReady("default"), kcm); err != nil {
		return fmt.Errorf("kube: %w", err)
	}
	if err := testbed.WaitFor(ctx, "ready fake nodes", c.nodesReady, kwok, kcm); err != nil {
		return fmt.Errorf("kube: %w", err)
	}
	return nil
}

// namespacesExist checks for the namespaces the API server creates itself; kwok keeps
// node leases in kube-node-lease.
func (c *Cluster) namespacesExist(ctx context.Context) error {
	for _, ns := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem, corev1.NamespaceNodeLease} {
		if _, err := c.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// stop stops the components it started, newest first, then kube-apiserver and etcd, and
// removes the cluster's directory.
func (c *Cluster) stop() {
	c.stopOnce.Do(func() {
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].Stop()
		}
		_ = c.stopAPIServer()
		for _, f := range c.files {
			_ = f.Close()
		}
		_ = os.RemoveAll(c.LogDir)
	})
}

// RESTConfig returns a copy of the administrator's REST config (group system:masters).
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.config) }

// Clientset returns a typed client for the administrator.
func (c *Cluster) Clientset() kubernetes.Interface { return c.client }

// NewNamespace creates a namespace with a unique name derived from the test's, waits for
// its default service account (pods need it), and deletes it when the test ends. When
// the test has failed, it logs the tail of every component's log first.
func (c *Cluster) NewNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: namespacePrefix(t.Name())}}
	ns, err := c.client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kube: create namespace: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.logTails())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := c.client.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("kube: delete namespace %s: %v", ns.Name, err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := testbed.WaitFor(ctx, "service account of namespace "+ns.Name, c.serviceAccountReady(ns.Name), c.procs...); err != nil {
		t.Fatalf("kube: %v", err)
	}
	return ns.Name
}

// logTails returns the last lines of every component's log.
func (c *Cluster) logTails() string {
	var b strings.Builder
	for _, p := range c.procs {
		fmt.Fprintf(&b, "--- last lines of %s.log:\n%s\n", p.Name(), p.Tail(15))
	}
	return b.String()
}

// namespacePrefix turns a test name into a prefix for GenerateName: a lower-case DNS
// label of at most 40 characters that ends in "-".
func namespacePrefix(test string) string {
	s := regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(test), "-")
	s = strings.Trim(s[:min(len(s), 39)], "-")
	if s == "" {
		s = "test"
	}
	return s + "-"
}

// Start has the type testbed.Lazy wants.
var _ func() (*Cluster, func(), error) = Start
