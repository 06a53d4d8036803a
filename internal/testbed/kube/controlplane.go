package kube

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/shipkit/shipkit/internal/testbed"
)

// startAPIServer starts etcd and kube-apiserver with envtest. It starts them one by one
// rather than with envtest.Environment, which retries a failed start five times, each
// with its own timeout, and so cannot keep to the deadline of ctx.
func (c *Cluster) startAPIServer(ctx context.Context, a assets) error {
	saKey := filepath.Join(c.LogDir, "sa.key")
	if err := writeServiceAccountKey(saKey); err != nil {
		return err
	}
	etcdLog, err := c.logFile("etcd.log")
	if err != nil {
		return err
	}
	apiLog, err := c.logFile("kube-apiserver.log")
	if err != nil {
		return err
	}
	etcd := &envtest.Etcd{Path: a.bin("etcd"), DataDir: filepath.Join(c.LogDir, "etcd"), Out: etcdLog, Err: etcdLog}
	api := &envtest.APIServer{Path: a.bin("kube-apiserver"), CertDir: filepath.Join(c.LogDir, "apiserver"), Out: apiLog, Err: apiLog}
	for _, d := range []string{etcd.DataDir, api.CertDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("kube: %w", err)
		}
	}
	// envtest turns the ServiceAccount admission plugin off because it runs no
	// controller-manager; this test bed runs one, so keep the plugins a cluster has.
	api.Configure().Disable("disable-admission-plugins").
		// Our own signing key, so the controller-manager's token controller can share it.
		Set("service-account-key-file", saKey).
		Set("service-account-signing-key-file", saKey).
		// Image volumes (beta, off by default in 1.34) so admission sees them.
		Set("feature-gates", "ImageVolume=true")
	c.plane = &envtest.ControlPlane{Etcd: etcd, APIServer: api}
	etcdProc := testbed.ExternalProcess("etcd", etcdLog.Name())
	apiProc := testbed.ExternalProcess("kube-apiserver", apiLog.Name())
	c.procs = append(c.procs, etcdProc, apiProc)

	etcd.StartTimeout = timeLeft(ctx)
	if err := etcd.Start(); err != nil {
		return etcdProc.WithLog(fmt.Errorf("kube: start etcd: %w", err))
	}
	api.EtcdURL = etcd.URL
	api.StartTimeout = timeLeft(ctx)
	if err := api.Start(); err != nil {
		return apiProc.WithLog(fmt.Errorf("kube: start kube-apiserver: %w", err))
	}
	c.saKey = saKey
	c.caFile = filepath.Join(c.LogDir, "ca.crt")
	if err := os.WriteFile(c.caFile, api.SecureServing.CA, 0o600); err != nil {
		return fmt.Errorf("kube: write API server CA: %w", err)
	}
	return nil
}

// timeLeft is how long a component may take to start: until the deadline of ctx.
func timeLeft(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Second)
	}
	return DefaultStartTimeout
}

// logFile creates a log file in the cluster's directory and closes it on stop.
func (c *Cluster) logFile(name string) (*os.File, error) {
	f, err := os.Create(filepath.Join(c.LogDir, name))
	if err != nil {
		return nil, fmt.Errorf("kube: create log: %w", err)
	}
	c.files = append(c.files, f)
	return f, nil
}

// addUser provisions a client certificate for user and groups and writes a kubeconfig
// for it into the cluster's directory. It returns the user's REST config and the path.
func (c *Cluster) addUser(name string, groups ...string) (*rest.Config, string, error) {
	base := &rest.Config{QPS: 1000, Burst: 2000} // a test cluster has no one to protect
	u, err := c.plane.AddUser(envtest.User{Name: name, Groups: groups}, base)
	if err != nil {
		return nil, "", fmt.Errorf("kube: add user %s: %w", name, err)
	}
	cfg := u.Config()
	path := filepath.Join(c.LogDir, filepath.Base(name)+".kubeconfig")
	if err := writeKubeconfig(path, c.Context, cfg); err != nil {
		return nil, "", err
	}
	return cfg, path, nil
}

// writeKubeconfig writes a kubeconfig with one context, named context, for cfg.
func writeKubeconfig(path, context string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters[context] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[context] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts[context] = &clientcmdapi.Context{Cluster: context, AuthInfo: context, Namespace: "default"}
	kc.CurrentContext = context
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("kube: write kubeconfig: %w", err)
	}
	return nil
}

// writeServiceAccountKey writes a new service account signing key (ECDSA P-256, which
// the API server and the controller-manager accept for signing and verifying).
func writeServiceAccountKey(path string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("kube: generate service account key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("kube: encode service account key: %w", err)
	}
	block := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(path, block, 0o600); err != nil {
		return fmt.Errorf("kube: write service account key: %w", err)
	}
	return nil
}

// stopAPIServer stops kube-apiserver and etcd.
func (c *Cluster) stopAPIServer() error {
	if c.plane == nil {
		return nil
	}
	return c.plane.Stop()
}
