package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

var pathKubernetes = path.Root("kubernetes")

// clientsConfig is the provider block, read.
type clientsConfig struct {
	insecure bool
	binCache string
	kube     kubeConfig
}

// kubeConfig says where the cluster's kubeconfig comes from.
type kubeConfig struct {
	path, context, raw string
	unknown            bool // not known until apply
}

// clients is what the provider hands its resources: how to reach registries and the
// cluster. It is safe for concurrent use; Terraform calls resources in parallel.
type clients struct {
	cfg      clientsConfig
	keychain authn.Keychain

	restOnce func() (*rest.Config, error)
}

func newClients(cfg clientsConfig) *clients {
	c := &clients{cfg: cfg, keychain: authn.DefaultKeychain}
	c.restOnce = sync.OnceValues(func() (*rest.Config, error) { return cfg.kube.restConfig() })
	return c
}

// nameOptions are the options to parse references with: plain HTTP when the provider
// says the registries are insecure.
func (c *clients) nameOptions() []name.Option {
	if c.cfg.insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// remoteOptions are the options of every registry call.
func (c *clients) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(c.keychain)}
}

// restConfig returns the REST config of the cluster, read once.
func (c *clients) restConfig() (*rest.Config, error) {
	cfg, err := c.restOnce()
	if err != nil {
		return nil, err
	}
	return rest.CopyConfig(cfg), nil
}

// errKubeUnknown says the provider's kubernetes settings are not known yet.
var errKubeUnknown = errors.New("the provider's kubernetes settings are not known until apply")

// restConfig loads the kubeconfig: inline, from a file, or by kubectl's rules
// (KUBECONFIG, then ~/.kube/config), with the context asked for.
func (k kubeConfig) restConfig() (*rest.Config, error) {
	if k.unknown {
		return nil, errKubeUnknown
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: k.context}
	var cc clientcmd.ClientConfig
	switch {
	case k.raw != "":
		apiCfg, err := clientcmd.Load([]byte(k.raw))
		if err != nil {
			// The kubeconfig may hold credentials and a parse error can quote the
			// value it choked on: name the setting, not the error.
			return nil, errors.New("kubernetes.config_raw: not a valid kubeconfig (the parse error is not shown: it could quote credentials)")
		}
		cc = clientcmd.NewNonInteractiveClientConfig(*apiCfg, k.context, overrides, nil)
	default:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if k.path != "" {
			p, err := expandHome(k.path)
			if err != nil {
				return nil, err
			}
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("kubernetes.config_path: %w", err)
			}
			rules.ExplicitPath = p
		}
		cc = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		what := "kubeconfig"
		if k.context != "" {
			what += " context " + k.context
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	cfg.UserAgent = "shipkit-terraform-provider"
	return cfg, nil
}

// expandHome expands a leading "~/" to the home directory.
func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand %s: %w", p, err)
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}
