package apply_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery/cached/memory"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	k8stesting "k8s.io/client-go/testing"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
)

// fakeClients returns a dynamic client and a REST mapper that talk to no cluster.
func fakeClients() (dynamic.Interface, meta.ResettableRESTMapper) {
	dc := &fakediscovery.FakeDiscovery{Fake: &k8stesting.Fake{}}
	return dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
}

// denyAll is a deploy.Gate for the options checks; it is never called.
type denyAll struct{}

func (denyAll) Check(_ context.Context, _ []*unstructured.Unstructured) (*deploy.Decision, error) {
	return nil, nil
}

// TestInvalidOptions: options that cannot work fail New with deploy.ErrInvalidOption
// naming each of them (a negative Concurrency was silently replaced by the default,
// RevisionKey and Gate without an ApplySet silently ignored), before anything is
// contacted; zero values take the defaults.
func TestInvalidOptions(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1"} // nothing listens: New must not call it
	set := &apply.ApplySet{Name: "web", Namespace: "shop"}
	key := apply.Key(strings.Repeat("k", apply.MinRevisionKeySize))
	for _, tc := range []struct {
		opts apply.Options
		want []string
	}{
		{apply.Options{Concurrency: -1}, []string{"Concurrency -1 is negative"}},
		{apply.Options{Wait: -time.Second, PollInterval: -1}, []string{"Wait -1s is negative", "PollInterval -1ns is negative"}},
		{apply.Options{FieldManager: strings.Repeat("m", 129)}, []string{"want at most 128 printable characters"}},
		{apply.Options{FieldManager: "ship\tkit"}, []string{`FieldManager "ship\tkit"`}},
		{apply.Options{Namespace: "Shop_1"}, []string{`Namespace "Shop_1"`}},
		{apply.Options{ApplySet: &apply.ApplySet{Name: "web"}}, []string{"an ApplySet needs a Name and a Namespace"}},
		{apply.Options{Prune: true}, []string{"Prune needs an ApplySet"}},
		{apply.Options{RevisionKey: key}, []string{"RevisionKey needs an ApplySet"}},
		{apply.Options{Gate: denyAll{}}, []string{"Gate needs an ApplySet"}},
		{apply.Options{ApplySet: set, Rollback: true}, []string{"Rollback needs an ApplySet (which keeps the last good revision) and Wait", "Rollback needs RevisionKey"}},
		{apply.Options{ApplySet: set, RevisionKey: key[:10]}, []string{"RevisionKey: key shorter than 32 bytes"}},
		{apply.Options{Concurrency: -2, Prune: true, Namespace: "-"}, []string{"Concurrency -2", "Prune needs", `Namespace "-"`}},
	} {
		_, err := apply.New(cfg, tc.opts)
		require.ErrorIs(t, err, deploy.ErrInvalidOption, tc.want)
		for _, w := range tc.want {
			assert.ErrorContains(t, err, w)
		}
	}

	m, err := apply.New(cfg, apply.Options{})
	require.NoError(t, err)
	o := m.Options()
	assert.Equal(t, apply.DefaultConcurrency, o.Concurrency)
	assert.Equal(t, apply.DefaultPollInterval, o.PollInterval)
	assert.Equal(t, apply.DefaultFieldManager, o.FieldManager)
	assert.NotNil(t, o.Observer)

	_, err = apply.New(cfg, apply.Options{ApplySet: set, RevisionKey: key, Gate: denyAll{}, Rollback: true, Wait: time.Minute,
		Concurrency: 2, PollInterval: time.Second, FieldManager: "ci", Namespace: "shop"})
	require.NoError(t, err)

	_, err = apply.New(nil, apply.Options{})
	assert.ErrorContains(t, err, "no *rest.Config")
	_, err = apply.NewWithClient(nil, nil, apply.Options{})
	assert.ErrorContains(t, err, "no client")
}
