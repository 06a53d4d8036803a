package cosign_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// recorder keeps the events it observes.
type recorder struct {
	mu     sync.Mutex
	events []observe.Event
}

func (r *recorder) Observe(e observe.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// lines returns "STEP PHASE" for each event.
func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Step+" "+e.Phase.String())
	}
	return out
}

func TestObserverEvents(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	rec := &recorder{}
	var logs bytes.Buffer
	opts := []cosign.Option{cosign.WithObserver(rec), cosign.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}

	s := newSigner(t, trusted, opts...)
	require.NoError(t, s.Sign(ctx, d))
	_, _, prov := predicates(t, sourceRepo)
	require.NoError(t, s.Attest(ctx, d, prov))
	v := newVerifier(t, sign.Policy{TrustedKeys: []sign.TrustedKey{trusted.trustedKey()}, RequiredPredicates: []string{sign.PredicateSLSAProvenance}}, opts...)
	_, err := v.Verify(ctx, d)
	require.NoError(t, err)
	_, err = v.Verify(ctx, d) // from the cache
	require.NoError(t, err)
	_, err = newVerifier(t, fullPolicy(trusted2.trustedKey()), opts...).Verify(ctx, d)
	require.ErrorIs(t, err, sign.ErrDenied)
	missing := d.Context().Digest("sha256:" + strings.Repeat("c", 64))
	require.Error(t, s.Sign(ctx, missing))

	assert.Equal(t, []string{
		"sign " + d.String() + " started",
		"sign " + d.String() + " finished",
		"attest " + sign.PredicateSLSAProvenance + " " + d.String() + " started",
		"attest " + sign.PredicateSLSAProvenance + " " + d.String() + " finished",
		"verify " + d.String() + " started",
		"verify " + d.String() + " finished",
		"verify " + d.String() + " started",
		"verify " + d.String() + " finished",
		"verify " + d.String() + " started",
		"verify " + d.String() + " failed",
		"sign " + missing.String() + " started",
		"sign " + missing.String() + " failed",
	}, rec.lines())
	for _, e := range rec.events {
		assert.Equal(t, "sign", e.Stage)
		assert.False(t, e.Time.IsZero())
		if e.Phase == observe.Failed {
			assert.Error(t, e.Err)
		}
	}
	assert.Equal(t, "signed by "+trusted.key.String(), rec.events[1].Message)
	assert.Equal(t, "verified: signed by trusted, 1 attestations", rec.events[5].Message)
	assert.Equal(t, "verified: signed by trusted, 1 attestations (verdict from the cache, or shared with a concurrent verification)", rec.events[7].Message)
	var denied *sign.DeniedError
	assert.ErrorAs(t, rec.events[9].Err, &denied)
	assert.Contains(t, rec.events[11].Message, "image not found in the registry")

	require.NotEmpty(t, logs.String())
	assertNoSecrets(t, eventText(t, rec)+logs.String())
}

// TestObserverEventsRecursive checks that signing an index reports a step per image.
func TestObserverEventsRecursive(t *testing.T) {
	host := newRegistry(t)
	idx, repo := pushIndex(t, host)
	rec := &recorder{}
	require.NoError(t, newSigner(t, trusted, cosign.WithObserver(rec)).Sign(context.Background(), idx, sign.WithRecursive()))
	lines := rec.lines()
	require.Len(t, lines, 6, lines)
	assert.Equal(t, "sign "+idx.String()+" finished", lines[1])
	for _, l := range lines[2:] {
		assert.True(t, strings.HasPrefix(l, "sign "+repo.String()+"@sha256:"), l)
	}
}

// TestKeyMaterialNeverShownInEvents signs with a cosign key, a certificate key and
// a KMS key, fails an attestation and a verification, and checks that no event,
// log line or formatted key holds a password or private key material.
func TestKeyMaterialNeverShownInEvents(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	rec := &recorder{}
	var logs bytes.Buffer
	opts := []cosign.Option{cosign.WithObserver(rec), cosign.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))}
	certK, _ := certKey(t, newPKI(t, "ours"), trusted, goodLeaf)
	kmsK, err := cosign.LoadKMSKey(kmsContext(t), "fakekms://events")
	require.NoError(t, err)
	for _, k := range []*cosign.PrivateKey{trusted.key, certK, kmsK} {
		s, err := cosign.NewSigner(k, opts...)
		require.NoError(t, err)
		require.NoError(t, s.Sign(ctx, d))
		require.Error(t, s.Attest(ctx, d, sign.Predicate{Type: "x", Body: []byte("not json")}))
		formatted := fmt.Sprintf("%v %+v %#v %s %x %q", k, k, *k, *k, *k, k)
		assert.NotContains(t, formatted, "PRIVATE")
		assertNoSecrets(t, formatted)
	}
	_, err = newVerifier(t, fullPolicy(trusted2.trustedKey()), opts...).Verify(ctx, d)
	require.Error(t, err)
	require.NotEmpty(t, logs.String())
	text := eventText(t, rec) + logs.String()
	assertNoSecrets(t, text)
	assert.NotContains(t, text, "PRIVATE KEY")
}

// eventText joins the steps, messages and errors of the recorded events.
func eventText(t *testing.T, rec *recorder) string {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.NotEmpty(t, rec.events)
	var sb strings.Builder
	for _, e := range rec.events {
		fmt.Fprintln(&sb, e.Step, e.Message, e.Err)
	}
	return sb.String()
}

func pushIndex(t *testing.T, host string) (name.Digest, name.Repository) {
	t.Helper()
	idx, err := random.Index(128, 1, 2)
	require.NoError(t, err)
	repo, err := name.NewRepository(host + "/team/multi")
	require.NoError(t, err)
	require.NoError(t, remote.WriteIndex(repo.Tag("v1"), idx))
	return digestOf(t, repo, idx), repo
}

// TestNilObserverAndLogger checks that WithObserver(nil) and WithLogger(nil) mean
// the defaults (nowhere), also after a real one: the last option wins.
func TestNilObserverAndLogger(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	rec := &recorder{}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newSigner(t, trusted, cosign.WithObserver(rec), cosign.WithObserver(nil), cosign.WithLogger(log), cosign.WithLogger(nil))
	require.NoError(t, s.Sign(ctx, d))
	_, err := newVerifier(t, fullPolicy(trusted.trustedKey()), cosign.WithObserver(nil), cosign.WithLogger(nil)).Verify(ctx, d)
	require.Error(t, err) // fullPolicy wants attestations this image does not have
	assert.Empty(t, rec.lines())
	assert.Empty(t, logs.String())
}
