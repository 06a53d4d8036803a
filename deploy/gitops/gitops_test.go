package gitops_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gitops"
	"github.com/shipkit/shipkit/internal/gitserver"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/sign"
)

const (
	user     = "deployer"
	password = "s3cret-token-do-not-print"
	digestA  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digestB  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func startServer(t *testing.T) *gitserver.Server {
	t.Helper()
	s, err := gitserver.Start(t.Context(), t.TempDir(), user, password)
	testbed.Check(t, err)
	t.Cleanup(s.Close)
	return s
}

// seed creates repository name with a README committed by the git CLI.
func seed(t *testing.T, s *gitserver.Server, name string) string {
	t.Helper()
	ctx := t.Context()
	u, err := s.Init(ctx, name)
	require.NoError(t, err)
	work := t.TempDir()
	require.NoError(t, s.Git(ctx, "", "clone", "--quiet", s.AuthURL(name), work))
	require.NoError(t, os.WriteFile(filepath.Join(work, "README.md"), []byte("kept\n"), 0o644))
	require.NoError(t, s.Git(ctx, work, "add", "README.md"))
	require.NoError(t, s.Git(ctx, work, "commit", "--quiet", "-m", "seed"))
	require.NoError(t, s.Git(ctx, work, "push", "--quiet", "origin", "HEAD:main"))
	return u
}

// readBack clones the repository with the git CLI and returns its files (path in
// the repository -> content) and the clone's directory.
func readBack(t *testing.T, s *gitserver.Server, name string) (map[string]string, string) {
	t.Helper()
	work := t.TempDir()
	require.NoError(t, s.Git(t.Context(), "", "clone", "--quiet", "--branch", "main", s.AuthURL(name), work))
	out, err := s.Output(t.Context(), work, "ls-tree", "-r", "--name-only", "HEAD")
	require.NoError(t, err)
	files := map[string]string{}
	for _, p := range strings.Fields(out) {
		b, err := os.ReadFile(filepath.Join(work, p))
		require.NoError(t, err)
		files[p] = string(b)
	}
	return files, work
}

func git(t *testing.T, s *gitserver.Server, dir string, args ...string) string {
	t.Helper()
	out, err := s.Output(t.Context(), dir, args...)
	require.NoError(t, err)
	return strings.TrimSpace(out)
}

func obj(apiVersion, kind, ns, name string, extra map[string]any) *unstructured.Unstructured {
	o := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name}}
	if ns != "" {
		o["metadata"].(map[string]any)["namespace"] = ns
	}
	for k, v := range extra {
		o[k] = v
	}
	return &unstructured.Unstructured{Object: o}
}

func release(digest string) []*unstructured.Unstructured {
	dep := obj("apps/v1", "Deployment", "shop", "web", map[string]any{"spec": map[string]any{
		"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
		"template": map[string]any{
			"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
			"spec": map[string]any{"containers": []any{
				map[string]any{"name": "web", "image": "registry.example/shop/web@" + digest},
			}},
		},
	}})
	dep.SetAnnotations(map[string]string{deploy.RevisionAnnotation: "r1"})
	return []*unstructured.Unstructured{
		obj("v1", "Namespace", "", "shop", nil),
		dep,
		obj("v1", "Service", "shop", "web", map[string]any{"spec": map[string]any{"ports": []any{map[string]any{"port": int64(80)}}}}),
		obj("v1", "ConfigMap", "shop", "web-config", map[string]any{"data": map[string]any{"mode": "fast"}}),
		obj("rbac.authorization.k8s.io/v1", "ClusterRole", "", "system:shop:reader", nil),
	}
}

// expected returns what the directory must hold for objs: file name -> YAML.
func expected(t *testing.T, dir string, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, o := range objs {
		name, err := gitops.FileName(o)
		require.NoError(t, err)
		b, err := yaml.Marshal(o.Object)
		require.NoError(t, err)
		m[dir+"/"+name] = string(b)
	}
	return m
}

func inDir(files map[string]string, dir string) map[string]string {
	m := map[string]string{}
	for p, c := range files {
		if strings.HasPrefix(p, dir+"/") {
			m[p] = c
		}
	}
	return m
}

func TestWriteReadBackWithGitCLI(t *testing.T) {
	s := startServer(t)
	u := seed(t, s, "fleet")
	ctx := t.Context()
	w, err := gitops.New(u, "clusters/prod/shop",
		gitops.WithBasicAuth(user, password),
		gitops.WithAuthor("release-bot", "bot@shop.example"),
		gitops.WithArgoCDApplication(gitops.ArgoCDApplication{Name: "shop", DestinationNamespace: "shop"}))
	require.NoError(t, err)

	objs := release(digestA)
	res, err := w.Write(ctx, objs, &deploy.Decision{})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Equal(t, 1, res.Attempts)
	assert.Len(t, res.Added, len(objs)+1)

	files, work := readBack(t, s, "fleet")
	assert.Equal(t, expected(t, "clusters/prod/shop", objs), inDir(files, "clusters/prod/shop"), "the tree holds exactly the rendered objects")
	assert.Equal(t, "kept\n", files["README.md"], "a file outside the directory is kept")
	assert.Contains(t, files, "clusters/prod/shop/shop_deployment.apps_web.yaml")
	assert.Contains(t, files, "clusters/prod/shop/namespace_shop.yaml")
	assert.Contains(t, files, "clusters/prod/shop/clusterrole.rbac.authorization.k8s.io_system:shop:reader.yaml")
	var app map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(files["clusters/prod/shop.argocd.yaml"]), &app))
	assert.Equal(t, "Application", app["kind"])
	assert.Equal(t, map[string]any{"repoURL": u, "targetRevision": "main", "path": "clusters/prod/shop"}, app["spec"].(map[string]any)["source"])

	assert.Equal(t, res.Commit, git(t, s, work, "rev-parse", "HEAD"))
	msg := git(t, s, work, "log", "-1", "--format=%an <%ae>%n%B")
	assert.Contains(t, msg, "release-bot <bot@shop.example>")
	assert.Contains(t, msg, "revision r1")
	assert.Contains(t, msg, "Gate: allowed")
	assert.Contains(t, msg, "registry.example/shop/web@"+digestA)
	assert.Contains(t, msg, "Added:\n  clusters/prod/shop.argocd.yaml")
	assert.Equal(t, "2", git(t, s, work, "rev-list", "--count", "HEAD"))

	// The same release again, objects in another order: no commit, no push.
	pushes := s.Pushes()
	shuffled := slices.Clone(objs)
	slices.Reverse(shuffled)
	again, err := w.Write(ctx, shuffled, &deploy.Decision{})
	require.NoError(t, err)
	assert.False(t, again.Changed)
	assert.Equal(t, 0, again.Attempts)
	assert.Equal(t, res.Commit, again.Commit)
	assert.Equal(t, pushes, s.Pushes())

	// A new digest and an object less: one file changes, one goes.
	next := release(digestB)
	next = slices.DeleteFunc(next, func(o *unstructured.Unstructured) bool { return o.GetKind() == "ConfigMap" })
	res2, err := w.Write(ctx, next, &deploy.Decision{})
	require.NoError(t, err)
	assert.True(t, res2.Changed)
	assert.Equal(t, []string{"clusters/prod/shop/shop_deployment.apps_web.yaml"}, res2.Modified)
	assert.Equal(t, []string{"clusters/prod/shop/shop_configmap_web-config.yaml"}, res2.Removed)
	assert.Empty(t, res2.Added)
	files, work = readBack(t, s, "fleet")
	assert.Equal(t, expected(t, "clusters/prod/shop", next), inDir(files, "clusters/prod/shop"))
	assert.Contains(t, git(t, s, work, "log", "-1", "--format=%B"), digestB)
	assert.Equal(t, res.Commit, git(t, s, work, "rev-parse", "HEAD^"), "a fast-forward on the previous release")

	// Read returns what the directory holds; Render what Write would write.
	read, head, err := w.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, res2.Commit, head)
	rendered, err := w.Render(next)
	require.NoError(t, err)
	assert.Equal(t, rendered, read)
	want := map[string][]byte{}
	for p, c := range expected(t, "clusters/prod/shop", next) {
		want[strings.TrimPrefix(p, "clusters/prod/shop/")] = []byte(c)
	}
	assert.Equal(t, want, read)

	// No objects: the directory goes, the rest stays.
	res3, err := w.Write(ctx, nil, &deploy.Decision{})
	require.NoError(t, err)
	assert.True(t, res3.Changed)
	files, _ = readBack(t, s, "fleet")
	assert.Empty(t, inDir(files, "clusters/prod/shop"))
	assert.Contains(t, files, "README.md")
	assert.Contains(t, files, "clusters/prod/shop.argocd.yaml")
	read, _, err = w.Read(ctx)
	require.NoError(t, err)
	assert.Empty(t, read)

	// Remove takes the Application too; a second Remove makes no commit.
	_, err = w.Write(ctx, next, &deploy.Decision{})
	require.NoError(t, err)
	rm, err := w.Remove(ctx)
	require.NoError(t, err)
	assert.True(t, rm.Changed)
	assert.Contains(t, rm.Removed, "clusters/prod/shop.argocd.yaml")
	files, work = readBack(t, s, "fleet")
	assert.Equal(t, map[string]string{"README.md": "kept\n"}, files)
	assert.Equal(t, "shipkit: remove clusters/prod/shop", git(t, s, work, "log", "-1", "--format=%s"))
	rm2, err := w.Remove(ctx)
	require.NoError(t, err)
	assert.False(t, rm2.Changed)
	assert.Equal(t, rm.Commit, rm2.Commit)
}

func TestWriteEmptyRepositoryAndNewBranch(t *testing.T) {
	s := startServer(t)
	u, err := s.Init(t.Context(), "empty")
	require.NoError(t, err)
	w, err := gitops.New(u, "apps/shop", gitops.WithBasicAuth(user, password),
		gitops.WithFluxKustomization(gitops.FluxKustomization{Name: "shop", SecretName: "git-creds"}))
	require.NoError(t, err)
	objs := release(digestA)
	res, err := w.Write(t.Context(), objs, &deploy.Decision{})
	require.NoError(t, err)
	require.True(t, res.Changed)
	files, work := readBack(t, s, "empty")
	assert.Equal(t, expected(t, "apps/shop", objs), inDir(files, "apps/shop"))
	assert.Equal(t, "1", git(t, s, work, "rev-list", "--count", "HEAD"))
	docs := strings.Split(files["apps/shop.flux.yaml"], "---\n")
	require.Len(t, docs, 2)
	var ks map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(docs[1]), &ks))
	assert.Equal(t, "Kustomization", ks["kind"])
	assert.Equal(t, "./apps/shop", ks["spec"].(map[string]any)["path"])

	// Remove or an empty release on a branch that does not exist makes none.
	wn, err := gitops.New(u, "apps/shop", gitops.WithBasicAuth(user, password), gitops.WithBranch("none"))
	require.NoError(t, err)
	for _, f := range []func() (*gitops.Result, error){
		func() (*gitops.Result, error) { return wn.Remove(t.Context()) },
		func() (*gitops.Result, error) { return wn.Write(t.Context(), nil, &deploy.Decision{}) },
	} {
		r, err := f()
		require.NoError(t, err)
		assert.False(t, r.Changed)
		assert.Empty(t, r.Commit)
	}
	read, head, err := wn.Read(t.Context())
	require.NoError(t, err)
	assert.Empty(t, read)
	assert.Empty(t, head)

	// Another branch of the same repository starts from nothing.
	wb, err := gitops.New(u, "apps/shop", gitops.WithBasicAuth(user, password), gitops.WithBranch("staging"))
	require.NoError(t, err)
	rb, err := wb.Write(t.Context(), objs[:1], &deploy.Decision{})
	require.NoError(t, err)
	assert.True(t, rb.Changed)
	assert.Equal(t, rb.Commit, strings.Fields(git(t, s, work, "ls-remote", "origin", "refs/heads/staging"))[0])
}

func TestWriteWithCloneDir(t *testing.T) {
	s := startServer(t)
	u := seed(t, s, "cached")
	dir := filepath.Join(t.TempDir(), "clone")
	w, err := gitops.New(u, "shop", gitops.WithBasicAuth(user, password), gitops.WithCloneDir(dir))
	require.NoError(t, err)
	r1, err := w.Write(t.Context(), release(digestA), &deploy.Decision{})
	require.NoError(t, err)
	require.True(t, r1.Changed)
	// A second Writer (a new run of the program) opens the clone.
	w2, err := gitops.New(u, "shop", gitops.WithBasicAuth(user, password), gitops.WithCloneDir(dir))
	require.NoError(t, err)
	r2, err := w2.Write(t.Context(), release(digestA), &deploy.Decision{})
	require.NoError(t, err)
	assert.False(t, r2.Changed)
	r3, err := w2.Write(t.Context(), release(digestB), &deploy.Decision{})
	require.NoError(t, err)
	assert.True(t, r3.Changed)
	_, work := readBack(t, s, "cached")
	assert.Equal(t, r3.Commit, git(t, s, work, "rev-parse", "HEAD"))

	// A clone of another repository is refused.
	other := seed(t, s, "other")
	w3, err := gitops.New(other, "shop", gitops.WithBasicAuth(user, password), gitops.WithCloneDir(dir))
	require.NoError(t, err)
	_, err = w3.Write(t.Context(), release(digestA), &deploy.Decision{})
	require.ErrorContains(t, err, "its origin is not")
}

func TestWriteRefusals(t *testing.T) {
	s := startServer(t)
	u := seed(t, s, "refuse")
	ctx := t.Context()
	w, err := gitops.New(u, "shop", gitops.WithBasicAuth(user, password))
	require.NoError(t, err)
	secret := obj("v1", "Secret", "shop", "db", map[string]any{"data": map[string]any{"password": "aHVudGVyMg=="}})

	t.Run("secret", func(t *testing.T) {
		_, err := w.Write(ctx, append(release(digestA), secret), &deploy.Decision{})
		require.ErrorIs(t, err, gitops.ErrSecret)
		assert.Contains(t, err.Error(), "Secret/shop/db")
		assert.NotContains(t, err.Error(), "aHVudGVyMg==")
		ws, err := gitops.New(u, "shop", gitops.WithBasicAuth(user, password), gitops.WithSecrets())
		require.NoError(t, err)
		res, err := ws.Write(ctx, []*unstructured.Unstructured{secret}, &deploy.Decision{})
		require.NoError(t, err)
		assert.Equal(t, []string{"shop/shop_secret_db.yaml"}, res.Added)
	})
	t.Run("denied", func(t *testing.T) {
		before := s.Pushes()
		d := &deploy.Decision{}
		d.Deny(deploy.Reason{Reason: sign.Reason{Code: deploy.ReasonNotPinned, Message: "by tag"}})
		_, err := w.Write(ctx, release(digestA), d)
		require.ErrorIs(t, err, sign.ErrDenied)
		_, err = w.Write(ctx, release(digestA), nil)
		require.ErrorContains(t, err, "no gate decision")
		assert.Equal(t, before, s.Pushes())
	})
	t.Run("wrong password", func(t *testing.T) {
		const wrong = "wrong-password-never-printed"
		wb, err := gitops.New(u, "shop", gitops.WithBasicAuth(user, wrong))
		require.NoError(t, err)
		_, err = wb.Write(ctx, release(digestA), &deploy.Decision{})
		require.Error(t, err)
		assert.True(t, errors.Is(err, transport.ErrAuthorizationFailed) || errors.Is(err, transport.ErrAuthenticationRequired), "%v", err)
		assert.NotContains(t, err.Error(), wrong)
	})
	t.Run("bad file name", func(t *testing.T) {
		_, err := w.Write(ctx, []*unstructured.Unstructured{obj("v1", "ConfigMap", "shop", "../../etc", nil)}, &deploy.Decision{})
		require.ErrorContains(t, err, "cannot be a file name")
		_, err = w.Write(ctx, []*unstructured.Unstructured{obj("v1", "ConfigMap", "shop", "a", nil), obj("v1", "ConfigMap", "shop", "a", nil)}, &deploy.Decision{})
		require.ErrorContains(t, err, "both go to file shop_configmap_a.yaml")
	})
	t.Run("cancelled", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx)
		cancel()
		_, err := w.Write(c, release(digestA), &deploy.Decision{})
		require.ErrorIs(t, err, context.Canceled)
	})
	t.Run("unreachable", func(t *testing.T) {
		wu, err := gitops.New("http://127.0.0.1:1/none.git", "shop", gitops.WithBasicAuth(user, password))
		require.NoError(t, err)
		_, err = wu.Write(ctx, release(digestA), &deploy.Decision{})
		require.ErrorContains(t, err, "fetch branch main of http://127.0.0.1:1/none.git")
		assert.NotContains(t, err.Error(), password)
	})
}

func TestNewOptions(t *testing.T) {
	_, err := gitops.New("https://deployer:hunter2@git.example/r.git", "",
		gitops.WithMaxAttempts(0), gitops.WithBranch("a..b"), gitops.WithBasicAuth("", ""),
		gitops.WithAuthor("x", ""), gitops.WithLogger(nil), gitops.WithClock(nil),
		gitops.WithArgoCDApplication(gitops.ArgoCDApplication{Name: "a", File: "x/../../up.yaml"}),
		gitops.WithFluxKustomization(gitops.FluxKustomization{Name: "", Interval: "soon"}))
	require.ErrorIs(t, err, gitops.ErrInvalidOption)
	require.ErrorIs(t, err, deploy.ErrInvalidOption)
	for _, want := range []string{"WithMaxAttempts(0)", `WithBranch("a..b")`, "WithBasicAuth", "WithAuthor", "WithLogger(nil)", "WithClock(nil)",
		"holds a password", `directory ""`, "WithArgoCDApplication: file", "WithFluxKustomization: name", `interval "soon"`} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), "hunter2")

	for _, c := range []struct{ url, dir string }{
		{"ftp://git.example/r.git", "shop"},
		{"https://git.example/r.git", "/abs"},
		{"https://git.example/r.git", "../up"},
		{"https://git.example/r.git", "."},
		{"https://git.example/r.git", "a/.git/b"},
	} {
		_, err := gitops.New(c.url, c.dir)
		assert.ErrorIs(t, err, gitops.ErrInvalidOption, "%s %s", c.url, c.dir)
	}
	_, err = gitops.New("http://git.example/r.git", "shop", gitops.WithBasicAuth("u", "p"))
	assert.ErrorContains(t, err, "would send the password in clear")
	for _, a := range []transport.AuthMethod{&githttp.BasicAuth{Username: "u", Password: "p"}, &githttp.TokenAuth{Token: "t"}} {
		_, err = gitops.New("http://git.example/r.git", "shop", gitops.WithAuth(a))
		assert.ErrorContains(t, err, "would send the password in clear", a.Name())
		assert.ErrorIs(t, err, gitops.ErrInvalidOption, a.Name())
		_, err = gitops.New("http://127.0.0.1:8080/r.git", "shop", gitops.WithAuth(a))
		assert.NoError(t, err, a.Name())
		_, err = gitops.New("https://git.example/r.git", "shop", gitops.WithAuth(a))
		assert.NoError(t, err, a.Name())
	}
	for _, loop := range []string{"http://127.0.0.1:8080/r.git", "http://localhost/r.git", "http://[::1]/r.git"} {
		_, err = gitops.New(loop, "shop", gitops.WithBasicAuth("u", "p"))
		assert.NoError(t, err, loop)
	}
	_, err = gitops.New("https://git.example/r.git", "shop", gitops.WithArgoCDApplication(gitops.ArgoCDApplication{Name: "a", File: "shop/app.yaml"}))
	assert.ErrorContains(t, err, "must be outside directory shop")
	for _, ok := range []string{"https://git.example/r.git", "ssh://git@git.example/r.git", "git@git.example:r.git"} {
		_, err := gitops.New(ok, "clusters/prod")
		assert.NoError(t, err, ok)
	}
}

func TestFileName(t *testing.T) {
	for _, c := range []struct {
		obj  *unstructured.Unstructured
		want string
	}{
		{obj("v1", "Namespace", "", "shop", nil), "namespace_shop.yaml"},
		{obj("apps/v1", "Deployment", "shop", "web", nil), "shop_deployment.apps_web.yaml"},
		{obj("cert-manager.io/v1", "Certificate", "shop", "web.example.com", nil), "shop_certificate.cert-manager.io_web.example.com.yaml"},
	} {
		got, err := gitops.FileName(c.obj)
		require.NoError(t, err)
		assert.Equal(t, c.want, got)
	}
	for _, bad := range []*unstructured.Unstructured{
		obj("v1", "ConfigMap", "shop", "a/b", nil),
		obj("v1", "ConfigMap", "shop", ".hidden", nil),
		obj("v1", "ConfigMap", "sh/op", "a", nil),
		obj("v1", "Config/Map", "shop", "a", nil),
		obj("v1", "ConfigMap", "shop", strings.Repeat("a", 300), nil),
	} {
		_, err := gitops.FileName(bad)
		assert.Error(t, err, "%v", bad.Object)
	}
}

// The child process of TestConcurrentWritersFromTwoProcesses: it writes one
// release and prints its Result as JSON.
func TestHelperProcessWriter(t *testing.T) {
	spec := os.Getenv("SHIPKIT_GITOPS_CHILD")
	if spec == "" {
		t.Skip("run by TestConcurrentWritersFromTwoProcesses as a child process")
	}
	var args struct{ URL, Dir, Digest string }
	require.NoError(t, json.Unmarshal([]byte(spec), &args))
	w, err := gitops.New(args.URL, args.Dir, gitops.WithBasicAuth(user, os.Getenv("SHIPKIT_GITOPS_PASSWORD")))
	require.NoError(t, err)
	res, err := w.Write(t.Context(), release(args.Digest), &deploy.Decision{})
	require.NoError(t, err)
	b, err := json.Marshal(res)
	require.NoError(t, err)
	fmt.Printf("RESULT %s\n", b)
}

func TestConcurrentWritersFromTwoProcesses(t *testing.T) {
	// Both writers' pushes wait until both have fetched the same head: one lands,
	// the other must rebase on it.
	s := startServer(t)
	u := seed(t, s, "race")
	s.HoldPushes(2)
	pushes := s.Pushes()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	type out struct {
		res *gitops.Result
		err error
	}
	results := make(chan out, 2)
	for i, dir := range []string{"team-a", "team-b"} {
		spec, err := json.Marshal(map[string]string{"URL": u, "Dir": dir, "Digest": []string{digestA, digestB}[i]})
		require.NoError(t, err)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcessWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SHIPKIT_GITOPS_CHILD="+string(spec), "SHIPKIT_GITOPS_PASSWORD="+password)
		go func() {
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			cmd.Stderr = &stdout
			if err := cmd.Run(); err != nil {
				results <- out{err: fmt.Errorf("child %s: %w\n%s", dir, err, stdout.String())}
				return
			}
			for _, line := range strings.Split(stdout.String(), "\n") {
				if r, ok := strings.CutPrefix(line, "RESULT "); ok {
					var res gitops.Result
					results <- out{res: &res, err: json.Unmarshal([]byte(r), &res)}
					return
				}
			}
			results <- out{err: fmt.Errorf("child %s printed no result:\n%s", dir, stdout.String())}
		}()
	}
	var attempts []int
	for range 2 {
		o := <-results
		require.NoError(t, o.err)
		assert.True(t, o.res.Changed)
		attempts = append(attempts, o.res.Attempts)
	}
	slices.Sort(attempts)
	assert.Equal(t, []int{1, 2}, attempts, "one writer's push landed, the other rebased and pushed again")
	assert.Equal(t, 3, s.Pushes()-pushes)

	files, work := readBack(t, s, "race")
	assert.Equal(t, expected(t, "team-a", release(digestA)), inDir(files, "team-a"))
	assert.Equal(t, expected(t, "team-b", release(digestB)), inDir(files, "team-b"))
	assert.Equal(t, "kept\n", files["README.md"])
	assert.Equal(t, "3", git(t, s, work, "rev-list", "--count", "HEAD"))
	assert.Empty(t, git(t, s, work, "rev-list", "--merges", "HEAD"), "linear history: a rebase, no merge")
}

func TestWriteOverSSH(t *testing.T) {
	s := startServer(t)
	seed(t, s, "fleet")
	x, err := s.StartSSH(t.Context())
	require.NoError(t, err)
	t.Cleanup(x.Close)

	w, err := gitops.New(x.URL("fleet"), "shop", gitops.WithSSHKey("git", x.ClientKey, "", ssh.FixedHostKey(x.HostKey)))
	require.NoError(t, err)
	objs := release(digestA)
	res, err := w.Write(t.Context(), objs, &deploy.Decision{})
	require.NoError(t, err)
	require.True(t, res.Changed)
	files, work := readBack(t, s, "fleet")
	assert.Equal(t, expected(t, "shop", objs), inDir(files, "shop"))
	assert.Equal(t, res.Commit, git(t, s, work, "rev-parse", "HEAD"))
	again, err := w.Write(t.Context(), objs, &deploy.Decision{})
	require.NoError(t, err)
	assert.False(t, again.Changed)

	// Another host key: refused before anything is sent.
	_, otherHost, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	otherSigner, err := ssh.NewSignerFromKey(otherHost)
	require.NoError(t, err)
	wh, err := gitops.New(x.URL("fleet"), "shop", gitops.WithSSHKey("git", x.ClientKey, "", ssh.FixedHostKey(otherSigner.PublicKey())))
	require.NoError(t, err)
	_, err = wh.Write(t.Context(), release(digestB), &deploy.Decision{})
	require.ErrorContains(t, err, "host key mismatch")

	// A key that does not parse is an invalid option, and is not printed.
	_, err = gitops.New(x.URL("fleet"), "shop", gitops.WithSSHKey("git", []byte("not-a-key-material"), "", ssh.FixedHostKey(x.HostKey)))
	require.ErrorIs(t, err, gitops.ErrInvalidOption)
	assert.NotContains(t, err.Error(), "not-a-key-material")
	_, err = gitops.New(x.URL("fleet"), "shop", gitops.WithSSHKey("git", x.ClientKey, "", nil))
	require.ErrorIs(t, err, gitops.ErrInvalidOption)
}

type recorder struct {
	mu     sync.Mutex
	events []observe.Event
}

func (r *recorder) Observe(e observe.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Phase.String()+" "+e.Message)
	}
	return out
}

// race runs two Writers of different directories whose pushes the server holds
// until both have fetched the same head.
func race(t *testing.T, s *gitserver.Server, u, digest string, opts ...gitops.Option) ([2]*gitops.Result, [2]error, [2]*recorder) {
	t.Helper()
	s.HoldPushes(2)
	var (
		res  [2]*gitops.Result
		errs [2]error
		recs [2]*recorder
		wg   sync.WaitGroup
	)
	for i := range 2 {
		recs[i] = &recorder{}
		w, err := gitops.New(u, fmt.Sprintf("team-%d", i), append([]gitops.Option{
			gitops.WithBasicAuth(user, password), gitops.WithObserver(recs[i]),
		}, opts...)...)
		require.NoError(t, err)
		wg.Go(func() { res[i], errs[i] = w.Write(t.Context(), release(digest), &deploy.Decision{}) })
	}
	wg.Wait()
	return res, errs, recs
}

func TestRaceInProcessBoundedAndObserved(t *testing.T) {
	s := startServer(t)
	u := seed(t, s, "bounded")

	// One push attempt each: the loser gives up with ErrConflict instead of rebasing.
	_, errs, recs := race(t, s, u, digestA, gitops.WithMaxAttempts(1))
	var lost int
	for i, err := range errs {
		if err == nil {
			msgs := recs[i].messages()
			assert.Equal(t, "started ", msgs[0])
			assert.Contains(t, msgs[1], "progress push ")
			assert.Contains(t, msgs[len(msgs)-1], "finished commit ")
			continue
		}
		lost++
		require.ErrorIs(t, err, gitops.ErrConflict)
		assert.NotContains(t, err.Error(), password)
		msgs := recs[i].messages()
		assert.Contains(t, msgs[len(msgs)-1], "failed ")
	}
	assert.Equal(t, 1, lost, "one push lands, the other is refused as not a fast-forward")

	// With retries (and a new digest, so both have something to push) both land,
	// one after a rebase.
	res, errs, recs := race(t, s, u, digestB)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	rebased := 0
	for i := range 2 {
		if slices.ContainsFunc(recs[i].messages(), func(m string) bool { return strings.Contains(m, ": rebase") }) {
			rebased++
			assert.Equal(t, 2, res[i].Attempts)
		}
	}
	assert.Equal(t, 1, rebased)
	files, _ := readBack(t, s, "bounded")
	assert.Equal(t, expected(t, "team-0", release(digestB)), inDir(files, "team-0"))
	assert.Equal(t, expected(t, "team-1", release(digestB)), inDir(files, "team-1"))
}
