package rego_test

import (
	"context"
	"fmt"
	"testing/fstest"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/scan/policy/rego"
)

// A conftest policy, embedded (an embed.FS works the same), judging a Deployment
// in a deploy gate beside the built-in rules.
func Example() {
	ctx := context.Background()
	policies := fstest.MapFS{"policy/k8s.rego": {Data: []byte(`package main

deny contains sprintf("%s: containers must not run as root", [input.metadata.name]) if {
	some c in input.spec.template.spec.containers
	not c.securityContext.runAsNonRoot
}

warn contains "no owner label" if not input.metadata.labels.owner
`)}}
	p, err := rego.LoadFS(ctx, policies)
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := gate.New(gate.WithObjectPolicy(p))
	if err != nil {
		fmt.Println(err)
		return
	}
	web := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "shop"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": "app", "image": "registry.example/app@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}},
		}}},
	}}
	d, err := g.Check(ctx, []*unstructured.Unstructured{web})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d)
	// Output:
	// denied:
	//   Deployment/shop/web: [rego:main.deny] web: containers must not run as root
	// warnings:
	//   Deployment/shop/web: [rego:main.warn] no owner label
}
