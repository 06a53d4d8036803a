package fleet

import (
	"errors"
	"fmt"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/shipkit/shipkit/deploy/apply"
	"github.com/shipkit/shipkit/observe"
)

// FromKubeconfig returns a cluster per named context of a kubeconfig, each with a
// deploy/apply Manager made with opts (every cluster gets its own copy). path may
// list several files separated as in $KUBECONFIG; empty means the default loading
// rules ($KUBECONFIG, then ~/.kube/config). Every context is named explicitly, so a
// fleet never reaches a cluster by accident. The Manager's events carry the context
// name in their step ("apply east").
func FromKubeconfig(path string, contexts []string, opts apply.Options) ([]Cluster, error) {
	targets, err := TargetsFromKubeconfig(path, contexts)
	if err != nil {
		return nil, err
	}
	out := make([]Cluster, 0, len(contexts))
	for _, t := range targets {
		name, cfg := t.Name, t.Config
		o := opts
		if opts.ApplySet != nil {
			set := *opts.ApplySet
			o.ApplySet = &set
		}
		if opts.Observer != nil {
			o.Observer = prefixed{obs: opts.Observer, cluster: name}
		}
		m, err := apply.New(cfg, o)
		if err != nil {
			return nil, fmt.Errorf("fleet: context %s: %w", name, err)
		}
		out = append(out, Cluster{Name: name, Applier: m})
	}
	return out, nil
}

// prefixed names the cluster in the step of each event.
type prefixed struct {
	obs     observe.Observer
	cluster string
}

func (p prefixed) Observe(e observe.Event) {
	e.Step += " " + p.cluster
	p.obs.Observe(e)
}

// TargetsFromKubeconfig returns the REST config of each named context of a
// kubeconfig, for [TakeInventory]; path is read as [FromKubeconfig] reads it. Every
// context is named explicitly, so a fleet never reaches a cluster by accident.
func TargetsFromKubeconfig(path string, contexts []string) ([]Target, error) {
	if len(contexts) == 0 {
		return nil, errors.New("fleet: name at least one kubeconfig context")
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = ""
		rules.Precedence = filepath.SplitList(path)
	}
	raw, err := rules.Load()
	if err != nil {
		return nil, fmt.Errorf("fleet: load kubeconfig: %w", err)
	}
	out := make([]Target, 0, len(contexts))
	for _, name := range contexts {
		if _, ok := raw.Contexts[name]; !ok {
			return nil, fmt.Errorf("fleet: kubeconfig has no context %q", name)
		}
		cfg, err := clientcmd.NewNonInteractiveClientConfig(*raw, name, &clientcmd.ConfigOverrides{}, rules).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("fleet: context %s: %w", name, err)
		}
		out = append(out, Target{Name: name, Config: cfg})
	}
	return out, nil
}
