package otel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	shipotel "github.com/shipkit/shipkit/observe/otel"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// pushRandom pushes a small random image to repo:tag and returns its digest.
func pushRandom(t *testing.T, repo name.Repository, tag string) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	require.NoError(t, err)
	require.NoError(t, remote.Write(repo.Tag(tag), img))
	h, err := img.Digest()
	require.NoError(t, err)
	return repo.Digest(h.String())
}

// deploymentOf is a Deployment running image.
func deploymentOf(name, image string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name, "namespace": "shop"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": "app", "image": image}},
		}}},
	}}
}

// TestSignAndGateTrace signs and attests an image with sign/cosign, then gates two
// Deployments (that image, and one nobody signed) with deploy/gate and the cosign
// verifier, all reporting to one Observer under a caller's span, and signs an image
// that is not in the registry. The trace has a sign stage with a span per signature,
// attestation and verification (the denied verification and the failed signature
// Error, with the reason), and a deploy stage with the gate's span: Ok, since a
// denial is a decision and not a failure, its message saying so, one progress event
// per digest. No span holds the key's password or private key.
func TestSignAndGateTrace(t *testing.T) {
	ctx := context.Background()
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	repo, err := name.NewRepository(host + "/team/app")
	require.NoError(t, err)
	signed := pushRandom(t, repo, "v1")
	unsigned := pushRandom(t, repo, "v2")
	missing := repo.Digest("sha256:" + strings.Repeat("0", 64))

	password := []byte("a password in no span")
	pair, err := cosign.GenerateKeyPair(password)
	require.NoError(t, err)
	key, err := cosign.LoadPrivateKey(pair.PrivatePEM, password)
	require.NoError(t, err)

	tp, rec := newTracing(t)
	ctx, root := tp.Tracer("test").Start(ctx, "release")
	obs := shipotel.New(ctx, tp)
	signer, err := cosign.NewSigner(key, cosign.WithObserver(obs))
	require.NoError(t, err)
	require.NoError(t, signer.Sign(ctx, signed))
	sbom := sign.SPDX([]byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"app","packages":[]}`))
	require.NoError(t, signer.Attest(ctx, signed, sbom))
	require.Error(t, signer.Sign(ctx, missing))

	verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("release")},
		RequiredPredicates: []string{sign.PredicateSPDX}}, cosign.WithObserver(obs))
	require.NoError(t, err)
	g, err := gate.New(gate.WithVerifier(verifier), gate.WithObserver(obs),
		gate.WithRegistries(gate.Registries{Insecure: []string{host}})) // the in-process registry is plain HTTP
	require.NoError(t, err)
	decision, err := g.Check(ctx, []*unstructured.Unstructured{
		deploymentOf("web", signed.String()), deploymentOf("worker", unsigned.String())})
	require.NoError(t, err)
	require.False(t, decision.Allowed())
	obs.Close()
	root.End()

	spans := rec.Ended()
	paths := tree(spans)
	for _, want := range []string{
		"release > sign [Error]",
		"release > sign > sign " + signed.String() + " [Ok]",
		"release > sign > attest " + sign.PredicateSPDX + " " + signed.String() + " [Ok]",
		"release > sign > sign " + missing.String() + " [Error]",
		"release > sign > verify " + signed.String() + " [Ok]",
		"release > sign > verify " + unsigned.String() + " [Error]",
		"release > deploy [Ok]",
		"release > deploy > gate [Ok]",
	} {
		assert.Contains(t, paths, want)
	}
	assert.Len(t, spans, 9, "root, two stages, six steps: %v", paths)

	denied := find(t, spans, "verify "+unsigned.String())
	assert.Contains(t, denied.Status().Description, "no signature")
	assert.Contains(t, denied.Attributes(), shipotel.AttrStage.String("sign"))
	assert.Contains(t, find(t, spans, "sign "+missing.String()).Status().Description, missing.String())
	assert.Contains(t, find(t, spans, "sign "+signed.String()).Attributes(), shipotel.AttrMessage.String("signed by "+key.String()))

	gateSpan := find(t, spans, "gate")
	assert.Contains(t, gateSpan.Attributes(), shipotel.AttrMessage.String(fmt.Sprintf("denied: %d reasons", len(decision.Reasons))))
	var progress int
	for _, e := range gateSpan.Events() {
		if e.Name == "progress" {
			progress++
		}
	}
	assert.Equal(t, 2, progress, "one progress event per verified digest")

	for _, s := range spans {
		text := spanText(s)
		assert.NotContains(t, text, string(password), s.Name())
		assert.NotContains(t, text, "ENCRYPTED SIGSTORE PRIVATE KEY", s.Name())
	}
}

// spanText is everything a span says in words: name, status, attributes, events.
func spanText(s sdktrace.ReadOnlySpan) string {
	var sb strings.Builder
	sb.WriteString(s.Name() + " " + s.Status().Description)
	for _, a := range s.Attributes() {
		sb.WriteString(" " + a.Value.String())
	}
	for _, e := range s.Events() {
		sb.WriteString(" " + e.Name)
		for _, a := range e.Attributes {
			sb.WriteString(" " + a.Value.String())
		}
	}
	return sb.String()
}
