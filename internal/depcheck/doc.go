// Package depcheck holds a test that keeps the stages' dependencies apart: a
// program that imports one stage must not link another stage's heavy dependencies
// (a deploy-only program links no syft, grype or cosign).
package depcheck
