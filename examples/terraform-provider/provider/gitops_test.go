package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/internal/gitserver"
	"github.com/shipkit/shipkit/internal/testbed"
)

func gitopsTestModel(url string) gitopsModel {
	null := types.StringNull()
	return gitopsModel{
		RepositoryURL: types.StringValue(url), Path: types.StringValue("clusters/prod/web"),
		Branch: null, Username: null, Password: null, SSHKey: null, SSHKnownHosts: null,
		AllowSecrets: types.BoolNull(),
		ArgoCD:       types.ObjectNull(map[string]attr.Type{}), Flux: types.ObjectNull(map[string]attr.Type{}),
	}
}

// The resource's SSH settings: a key and known_hosts lines reach the real SSH
// server; a server whose key is not listed is refused; a key without known_hosts
// and a key beside a password are configuration errors.
func TestGitOpsWriterSSH(t *testing.T) {
	ctx := context.Background()
	s, err := gitserver.Start(ctx, t.TempDir(), "u", "p")
	if errors.Is(err, testbed.ErrMissing) && !testbed.InCI() {
		t.Skip(err)
	}
	require.NoError(t, err)
	t.Cleanup(s.Close)
	_, err = s.Init(ctx, "fleet")
	require.NoError(t, err)
	x, err := s.StartSSH(ctx)
	require.NoError(t, err)
	t.Cleanup(x.Close)
	host, port, _ := strings.Cut(x.Addr, ":")
	line := knownhosts.Line([]string{knownhosts.Normalize(fmt.Sprintf("[%s]:%s", host, port))}, x.HostKey)

	r := &GitOpsReleaseResource{}
	m := gitopsTestModel(x.URL("fleet"))
	m.SSHKey, m.SSHKnownHosts = types.StringValue(string(x.ClientKey)), types.StringValue(line+"\n")
	w, ok, diags := r.writer(ctx, &m)
	require.False(t, diags.HasError(), "%v", diags)
	require.True(t, ok)
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "a", "namespace": "shop"}}}
	res, err := w.Write(ctx, []*unstructured.Unstructured{cm}, &deploy.Decision{})
	require.NoError(t, err)
	assert.Equal(t, []string{"clusters/prod/web/shop_configmap_a.yaml"}, res.Added)

	// Another host key listed for the address: refused.
	other, err := ssh.ParsePrivateKey(x.ClientKey)
	require.NoError(t, err)
	m.SSHKnownHosts = types.StringValue(knownhosts.Line([]string{knownhosts.Normalize(x.Addr)}, other.PublicKey()) + "\n")
	w, ok, diags = r.writer(ctx, &m)
	require.False(t, diags.HasError(), "%v", diags)
	require.True(t, ok)
	_, err = w.Write(ctx, nil, &deploy.Decision{})
	require.ErrorContains(t, err, "key mismatch")

	m.SSHKnownHosts = types.StringNull()
	_, _, diags = r.writer(ctx, &m)
	require.True(t, diags.HasError())
	assert.Contains(t, fmt.Sprint(diags), "needs ssh_known_hosts")
	m.SSHKnownHosts, m.Password = types.StringValue(line), types.StringValue("p")
	_, _, diags = r.writer(ctx, &m)
	require.True(t, diags.HasError())
	assert.Contains(t, fmt.Sprint(diags), "not both")
	assert.NotContains(t, fmt.Sprint(diags), "PRIVATE KEY")
}
