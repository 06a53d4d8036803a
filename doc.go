// Package shipkit is a Go SDK that takes software from source to a verified,
// progressively rolled-out workload on Kubernetes, checking security at every step.
//
// It is a set of small packages, one per stage of a DevSecOps pipeline. Each stage
// exposes a small interface from its top package, so a program can use one stage
// alone or swap any stage for its own implementation:
//
//   - build turns a source directory into an OCI image index (one image per platform),
//     reproducible to the digest and without a Docker daemon, and publishes it to a
//     registry, returning its digest.
//   - scan catalogs an image into an SBOM (SPDX, CycloneDX), matches the SBOM against an
//     offline vulnerability database into a Report, and checks Kubernetes manifests
//     against the Pod Security Standards.
//   - sign signs the digest and attaches in-toto attestations (SBOM, vulnerability
//     report, SLSA provenance), and verifies them against a policy.
//   - deploy renders a kustomize directory into objects with every image pinned by
//     digest, gates them on signatures, attestations, scan results and policy, then
//     server-side applies them, waits for health and prunes what is gone.
//   - mesh shifts traffic between stable and canary versions (Gateway API, Istio) and
//     writes mTLS and NetworkPolicy objects from label intent.
//   - observe queries metrics (Prometheus) to judge a rollout, and carries the events
//     every stage reports to the caller's observer.
//
// One artifact moves through the stages as values in memory: a v1.ImageIndex from
// build becomes a name.Digest when published; scan reads the same image value into an
// SBOM and a Report; sign attaches both to the digest; deploy pins the digest into the
// rendered objects, gates them and applies them; a rollout moves traffic to the new
// revision step by step and rolls back by itself when the metrics say so.
//
// The types of go-containerregistry (v1.Image, v1.ImageIndex, name.Digest) and of the
// Kubernetes API machinery (*unstructured.Unstructured) are the shared vocabulary.
//
// examples/pipeline wires every stage together; it is the README's main job.
package shipkit
