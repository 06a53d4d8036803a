package provider_test

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/gitserver"
	"github.com/shipkit/shipkit/internal/testbed"
)

const (
	gitopsRelease = "shipkit_gitops_release.web"
	gitUser       = "deployer"
	gitPassword   = "gitops-token-not-in-output"
	webDigest     = "registry.example/web@sha256:3333333333333333333333333333333333333333333333333333333333333333"
)

func gitopsConfig(repo, files, revision string) string {
	return fmt.Sprintf(`
provider "shipkit" {}

resource "shipkit_gitops_release" "web" {
  repository_url = %q
  path           = "clusters/prod/web"
  username       = %q
  password       = %q
  files          = [%q]
  images         = [%q]
  revision       = %q
  argocd = {
    name                  = "web"
    destination_namespace = "shop"
  }
}
`, repo, gitUser, gitPassword, files, webDigest, revision)
}

// gitTree clones the repository with the git CLI and returns its files and HEAD.
func gitTree(t *testing.T, s *gitserver.Server) (map[string]string, string, error) {
	t.Helper()
	work := t.TempDir()
	if err := s.Git(t.Context(), "", "clone", "--quiet", s.AuthURL("fleet"), work); err != nil {
		return nil, "", err
	}
	head, err := s.Output(t.Context(), work, "rev-parse", "HEAD")
	if err != nil {
		return nil, "", err
	}
	out, err := s.Output(t.Context(), work, "ls-tree", "-r", "--name-only", "HEAD")
	if err != nil {
		return nil, "", err
	}
	files := map[string]string{}
	for _, p := range strings.Fields(out) {
		b, err := os.ReadFile(filepath.Join(work, p))
		if err != nil {
			return nil, "", err
		}
		files[p] = string(b)
	}
	return files, strings.TrimSpace(head), nil
}

// checkTree checks the branch holds exactly names under the directory (besides
// README.md and the Application), each the state's objects entry, and that the
// state's commit is the branch's head.
func checkTree(t *testing.T, s *gitserver.Server, names ...string) resource.TestCheckFunc {
	return func(st *terraform.State) error {
		files, head, err := gitTree(t, s)
		if err != nil {
			return err
		}
		attrs := st.RootModule().Resources[gitopsRelease].Primary.Attributes
		if attrs["commit"] != head {
			return fmt.Errorf("commit %s, the branch is at %s", attrs["commit"], head)
		}
		var got []string
		for p, c := range files {
			name, ok := strings.CutPrefix(p, "clusters/prod/web/")
			if !ok {
				continue
			}
			got = append(got, name)
			if attrs["objects."+name] != c {
				return fmt.Errorf("%s in the branch:\n%s\nin the state:\n%s", p, c, attrs["objects."+name])
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, names) {
			return fmt.Errorf("the directory holds %v, want %v", got, names)
		}
		if files["README.md"] != "kept\n" || files["clusters/prod/web.argocd.yaml"] == "" {
			return errors.New("README.md or the Argo CD Application is missing")
		}
		return nil
	}
}

// TestAccGitOpsRelease: a release committed to a real Git server (git
// http-backend) and read back with the git CLI; an unchanged plan is empty; a
// dropped object is removed in the next commit; someone's edit to the directory
// shows as a diff and is written back; destroy removes the directory and the
// Application, keeping the rest of the repository.
func TestAccGitOpsRelease(t *testing.T) {
	accEnv(t)
	s, err := gitserver.Start(t.Context(), t.TempDir(), gitUser, gitPassword)
	if errors.Is(err, testbed.ErrMissing) {
		missing(t, "%v", err)
	}
	require.NoError(t, err)
	t.Cleanup(s.Close)
	repo, err := s.Init(t.Context(), "fleet")
	require.NoError(t, err)
	seedDir := t.TempDir()
	require.NoError(t, s.Git(t.Context(), "", "clone", "--quiet", s.AuthURL("fleet"), seedDir))
	write(t, seedDir, "README.md", "kept\n")
	require.NoError(t, s.Git(t.Context(), seedDir, "add", "README.md"))
	require.NoError(t, s.Git(t.Context(), seedDir, "commit", "--quiet", "-m", "seed"))
	require.NoError(t, s.Git(t.Context(), seedDir, "push", "--quiet", "origin", "HEAD:main"))

	dir := filepath.Join(t.TempDir(), "manifests")
	write(t, dir, "deployment.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: registry.example/web:latest}
`)
	write(t, dir, "configmap.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra, namespace: shop}\ndata: {greeting: hello}\n")
	const dep, cm = "shop_deployment.apps_web.yaml", "shop_configmap_extra.yaml"
	var first string

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: providers,
		CheckDestroy: func(*terraform.State) error {
			files, _, err := gitTree(t, s)
			if err != nil {
				return err
			}
			if len(files) != 1 || files["README.md"] != "kept\n" {
				return fmt.Errorf("after destroy the branch holds %v, want README.md alone", slices.Sorted(maps.Keys(files)))
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				// A Secret is refused at plan time, and nothing is written.
				PreConfig: func() {
					write(t, dir, "secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: shop}\nstringData: {password: hunter2}\n")
				},
				Config:      gitopsConfig(repo, dir, "r1"),
				ExpectError: regexp.MustCompile(`refusing to write a Secret`),
			},
			{
				PreConfig: func() { require.NoError(t, os.Remove(filepath.Join(dir, "secret.yaml"))) },
				Config:    gitopsConfig(repo, dir, "r1"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(gitopsRelease, plancheck.ResourceActionCreate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkTree(t, s, cm, dep),
					resource.TestCheckResourceAttr(gitopsRelease, "id", repo+"#main:clusters/prod/web"),
					resource.TestCheckResourceAttr(gitopsRelease, "objects.%", "2"),
					resource.TestCheckResourceAttrWith(gitopsRelease, "objects."+dep, func(v string) error {
						if !strings.Contains(v, "image: "+webDigest) || !strings.Contains(v, "deploy.shipkit.dev/revision: r1") {
							return fmt.Errorf("the Deployment is not pinned and annotated:\n%s", v)
						}
						return nil
					}),
					func(st *terraform.State) error {
						first = st.RootModule().Resources[gitopsRelease].Primary.Attributes["commit"]
						return nil
					},
				),
			},
			{
				// The ConfigMap is dropped: one commit removes its file.
				PreConfig: func() { require.NoError(t, os.Remove(filepath.Join(dir, "configmap.yaml"))) },
				Config:    gitopsConfig(repo, dir, "r2"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(gitopsRelease, plancheck.ResourceActionUpdate),
					expectObjects(gitopsRelease, func(before, after map[string]string) error {
						if before[cm] == "" || after[cm] != "" {
							return errors.New("want the ConfigMap's file planned away")
						}
						return nil
					}),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkTree(t, s, dep),
					func(st *terraform.State) error {
						if c := st.RootModule().Resources[gitopsRelease].Primary.Attributes["commit"]; c == first {
							return errors.New("no new commit")
						}
						return nil
					},
				),
			},
			{
				// Someone edits the Deployment's file in Git: the refresh shows it, and
				// the apply writes the release back (on top of their commit).
				PreConfig: func() {
					work := t.TempDir()
					require.NoError(t, s.Git(t.Context(), "", "clone", "--quiet", s.AuthURL("fleet"), work))
					write(t, filepath.Join(work, "clusters/prod/web"), dep, "edited: by hand\n")
					require.NoError(t, s.Git(t.Context(), work, "commit", "--quiet", "-am", "hand edit"))
					require.NoError(t, s.Git(t.Context(), work, "push", "--quiet", "origin", "HEAD:main"))
				},
				Config: gitopsConfig(repo, dir, "r2"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(gitopsRelease, plancheck.ResourceActionUpdate),
					expectObjects(gitopsRelease, func(before, after map[string]string) error {
						if before[dep] != "edited: by hand\n" || !strings.Contains(after[dep], webDigest) {
							return fmt.Errorf("want the hand edit planned back, got\n%s\n->\n%s", before[dep], after[dep])
						}
						return nil
					}),
				}},
				Check: checkTree(t, s, dep),
			},
		},
	})
}
