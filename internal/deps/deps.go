//go:build tools

// Package deps pins, for go mod tidy, the packages the stages are about to use.
// It is removed once every stage imports its dependencies for real.
package deps

import (
	_ "github.com/anchore/grype/grype"
	_ "github.com/anchore/grype/grype/db/v6"
	_ "github.com/anchore/grype/grype/matcher"
	_ "github.com/anchore/syft/syft"
	_ "github.com/anchore/syft/syft/format/cyclonedxjson"
	_ "github.com/anchore/syft/syft/format/spdxjson"
	_ "github.com/anchore/syft/syft/format/syftjson"
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/google/go-containerregistry/pkg/v1/layout"
	_ "github.com/google/go-containerregistry/pkg/v1/mutate"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/prometheus/client_golang/api/prometheus/v1"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "github.com/sigstore/cosign/v2/pkg/cosign"
	_ "github.com/sigstore/cosign/v2/pkg/oci/remote"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/fake"
	_ "github.com/stretchr/testify/require"
	_ "go.opentelemetry.io/otel"
	_ "go.opentelemetry.io/otel/sdk/trace/tracetest"
	_ "go.opentelemetry.io/otel/trace"
	_ "istio.io/api/networking/v1"
	_ "istio.io/api/security/v1"
	_ "k8s.io/client-go/dynamic"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/pod-security-admission/policy"
	_ "sigs.k8s.io/controller-runtime/pkg/envtest"
	_ "sigs.k8s.io/gateway-api/apis/v1"
	_ "sigs.k8s.io/kustomize/api/krusty"
)
