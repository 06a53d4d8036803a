package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMainJob runs the README's main job on its defaults and checks what it promises:
// a two-platform index pushed by digest.
func TestMainJob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, config{source: "../hello", platforms: "linux/amd64,linux/arm64", timeout: time.Minute}, &out)
	require.NoError(t, err, out.String())

	digest := regexp.MustCompile(`(?m)^image  (127\.0\.0\.1:\d+/shipkit/hello@sha256:[0-9a-f]{64})$`).FindStringSubmatch(out.String())
	require.NotNil(t, digest, "no image digest in the output:\n%s", out.String())
	assert.Regexp(t, `(?m)^  linux/amd64\s+sha256:[0-9a-f]{64}$`, out.String())
	assert.Regexp(t, `(?m)^  linux/arm64\s+sha256:[0-9a-f]{64}$`, out.String())
}

func TestMainJobBadSource(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), config{source: "../nosuchdir", platforms: "linux/amd64"}, &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nosuchdir")
}
