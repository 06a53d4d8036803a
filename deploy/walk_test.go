package deploy_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/deploy"
)

func obj(t testing.TB, manifest string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(manifest), &m))
	return &unstructured.Unstructured{Object: m}
}

// uses prints each use as "kind path name=image".
func uses(w *deploy.Workload) []string {
	var out []string
	for _, u := range w.Images {
		out = append(out, fmt.Sprintf("%s %s %s=%s", u.Kind, u.Path, u.Name, u.Image))
	}
	return out
}

// pods prints each pod spec as "path: container paths; volume paths".
func pods(w *deploy.Workload) []string {
	var out []string
	for _, p := range w.Pods {
		s := p.Path + ":"
		for _, c := range p.Containers {
			s += " " + c.List + "=" + c.Path
		}
		for _, v := range p.Volumes {
			s += " volume=" + v.Path
		}
		out = append(out, s)
	}
	return out
}

const template = `
    metadata: {labels: {app: web}}
    spec:
      initContainers: [{name: init, image: "init:1"}]
      containers: [{name: web, image: "web:1"}, {name: side, image: "side:1"}]
      volumes:
      - {name: cfg, configMap: {name: cfg}}
      - {name: data, image: {reference: "data:1", pullPolicy: IfNotPresent}}
`

func TestWalk(t *testing.T) {
	deploymentUses := []string{
		"container spec.template.spec.initContainers[name=init].image init=init:1",
		"container spec.template.spec.containers[name=web].image web=web:1",
		"container spec.template.spec.containers[name=side].image side=side:1",
		"volume spec.template.spec.volumes[name=data].image.reference data=data:1",
	}
	deploymentPods := []string{"spec.template.spec: initContainers=spec.template.spec.initContainers[name=init]" +
		" containers=spec.template.spec.containers[name=web] containers=spec.template.spec.containers[name=side]" +
		" volume=spec.template.spec.volumes[name=cfg] volume=spec.template.spec.volumes[name=data]"}
	for _, tt := range []struct {
		name     string
		manifest string
		uses     []string
		pods     []string
	}{
		{
			name:     "Deployment",
			manifest: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:" + template,
			uses:     deploymentUses, pods: deploymentPods,
		},
		{
			name:     "Argo Rollout",
			manifest: "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: web}\nspec:\n  template:" + template,
			uses:     deploymentUses, pods: deploymentPods,
		},
		{
			name:     "any custom resource with spec.template.spec",
			manifest: "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: web}\nspec:\n  template:" + template,
			uses:     deploymentUses, pods: deploymentPods,
		},
		{
			name: "Pod with an ephemeral container",
			manifest: `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  ephemeralContainers: [{name: debug, image: "busybox:1"}]
  containers: [{image: "app:1"}]
`,
			uses: []string{"container spec.containers[0].image =app:1", "container spec.ephemeralContainers[name=debug].image debug=busybox:1"},
			pods: []string{"spec: containers=spec.containers[0] ephemeralContainers=spec.ephemeralContainers[name=debug]"},
		},
		{
			name: "CronJob",
			manifest: `apiVersion: batch/v1
kind: CronJob
metadata: {name: c}
spec: {jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: "c:1"}]}}}}}
`,
			uses: []string{"container spec.jobTemplate.spec.template.spec.containers[name=c].image c=c:1"},
			pods: []string{"spec.jobTemplate.spec.template.spec: containers=spec.jobTemplate.spec.template.spec.containers[name=c]"},
		},
		{
			name: "Knative Service and Revision",
			manifest: `apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: k}
spec: {template: {spec: {containers: [{image: "k:1"}]}}}
`,
			uses: []string{"container spec.template.spec.containers[0].image =k:1"},
			pods: []string{"spec.template.spec: containers=spec.template.spec.containers[0]"},
		},
		{
			name: "Knative Revision: the spec is the pod spec",
			manifest: `apiVersion: serving.knative.dev/v1
kind: Revision
metadata: {name: k}
spec: {containerConcurrency: 0, containers: [{image: "k:1"}]}
`,
			uses: []string{"container spec.containers[0].image =k:1"},
			pods: []string{"spec: containers=spec.containers[0]"},
		},
		{
			name: "Argo Workflow",
			manifest: `apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: wf}
spec:
  entrypoint: main
  securityContext: {runAsNonRoot: true}
  volumes: [{name: tools, image: {reference: "tools:1"}}]
  templates:
  - name: main
    steps: [[{name: a, template: build}]]
  - name: build
    initContainers: [{name: fetch, image: "fetch:1"}]
    container: {image: "golang:1.25"}
    sidecars: [{name: db, image: "postgres:17"}]
  - name: lint
    script: {image: "lint:1", source: "echo"}
    podSpecPatch: '{"containers":[{"name":"main","image":"evil:1"}]}'
  - name: set
    containerSet: {containers: [{name: a, image: "a:1"}, {name: b, image: "b:1"}]}
`,
			uses: []string{
				"container spec.templates[name=build].initContainers[name=fetch].image fetch=fetch:1",
				"container spec.templates[name=build].container.image main=golang:1.25",
				"container spec.templates[name=build].sidecars[name=db].image db=postgres:17",
				"volume spec.volumes[name=tools].image.reference tools=tools:1",
				"container spec.templates[name=lint].script.image main=lint:1",
				"unrecognised spec.templates[name=lint].podSpecPatch =",
				"container spec.templates[name=set].containerSet.containers[name=a].image a=a:1",
				"container spec.templates[name=set].containerSet.containers[name=b].image b=b:1",
			},
			pods: []string{
				"spec.templates[name=build]: initContainers=spec.templates[name=build].initContainers[name=fetch] containers=spec.templates[name=build].container containers=spec.templates[name=build].sidecars[name=db] volume=spec.volumes[name=tools]",
				"spec.templates[name=lint]: containers=spec.templates[name=lint].script volume=spec.volumes[name=tools]",
				"spec.templates[name=set]: containers=spec.templates[name=set].containerSet.containers[name=a] containers=spec.templates[name=set].containerSet.containers[name=b] volume=spec.volumes[name=tools]",
			},
		},
		{
			name: "Argo CronWorkflow",
			manifest: `apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata: {name: cw}
spec: {schedule: "* * * * *", workflowSpec: {templates: [{name: t, container: {image: "t:1"}}]}}
`,
			uses: []string{"container spec.workflowSpec.templates[name=t].container.image main=t:1"},
			pods: []string{"spec.workflowSpec.templates[name=t]: containers=spec.workflowSpec.templates[name=t].container"},
		},
		{
			name: "Tekton Task",
			manifest: `apiVersion: tekton.dev/v1
kind: Task
metadata: {name: build}
spec:
  stepTemplate: {image: "base:1", securityContext: {runAsNonRoot: true}}
  steps:
  - {name: compile, image: "golang:1.25"}
  - {name: test}
  sidecars: [{name: docker, image: "docker:dind"}]
  volumes: [{name: cache, image: {reference: "cache:1"}}]
`,
			uses: []string{
				"container spec.stepTemplate.image stepTemplate=base:1",
				"container spec.steps[name=compile].image compile=golang:1.25",
				"container spec.sidecars[name=docker].image docker=docker:dind",
				"volume spec.volumes[name=cache].image.reference cache=cache:1",
			},
			pods: []string{"spec: containers=spec.steps[name=compile] containers=spec.steps[name=test] containers=spec.sidecars[name=docker] volume=spec.volumes[name=cache]"},
		},
		{
			name: "Tekton Pipeline with an inline task",
			manifest: `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: p}
spec:
  tasks:
  - {name: ref, taskRef: {name: build}}
  - {name: inline, taskSpec: {steps: [{name: s, image: "s:1"}]}}
  finally:
  - {name: notify, taskSpec: {steps: [{name: note, image: "n:1"}]}}
`,
			uses: []string{
				"container spec.tasks[name=inline].taskSpec.steps[name=s].image s=s:1",
				"container spec.finally[name=notify].taskSpec.steps[name=note].image note=n:1",
			},
			pods: []string{"spec.tasks[name=inline].taskSpec: containers=spec.tasks[name=inline].taskSpec.steps[name=s]",
				"spec.finally[name=notify].taskSpec: containers=spec.finally[name=notify].taskSpec.steps[name=note]"},
		},
		{
			name: "Tekton PipelineRun and TaskRun",
			manifest: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: pr}
spec:
  taskRunTemplate: {podTemplate: {hostNetwork: true}}
  pipelineSpec: {tasks: [{name: t, taskSpec: {steps: [{name: s, image: "s:1"}]}}]}
`,
			uses: []string{"container spec.pipelineSpec.tasks[name=t].taskSpec.steps[name=s].image s=s:1"},
			pods: []string{"spec.pipelineSpec.tasks[name=t].taskSpec: containers=spec.pipelineSpec.tasks[name=t].taskSpec.steps[name=s]"},
		},
		{
			name: "Tekton TaskRun and StepAction",
			manifest: `apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: tr}
spec:
  podTemplate: {volumes: [{name: v, image: {reference: "v:1"}}]}
  taskSpec: {steps: [{image: "s:1", computeResources: {requests: {cpu: 1}}}]}
`,
			uses: []string{"container spec.taskSpec.steps[0].image =s:1", "volume spec.podTemplate.volumes[name=v].image.reference v=v:1"},
			pods: []string{"spec.taskSpec: containers=spec.taskSpec.steps[0] volume=spec.podTemplate.volumes[name=v]"},
		},
		{
			name:     "Tekton StepAction",
			manifest: "apiVersion: tekton.dev/v1beta1\nkind: StepAction\nmetadata: {name: sa}\nspec: {image: \"a:1\", script: echo}\n",
			uses:     []string{"container spec.image step=a:1"},
			pods:     []string{"spec: containers=spec"},
		},
		{
			name: "unknown custom resource: images it cannot interpret",
			manifest: `apiVersion: example.com/v1
kind: Thing
metadata: {name: x, annotations: {image: "not-an-image-use"}}
spec:
  deep: {list: [{name: a, nested: {image: "evil:latest"}}]}
  baseImage: "base:2"
  chart: {values: {image: {repository: "nginx", tag: "1.27"}}}
  mount: {image: {reference: "data:3"}}
  empty: {image: ""}
status: {image: "reported:1"}
`,
			uses: []string{
				"unrecognised spec.baseImage =base:2",
				"unrecognised spec.chart.values.image.repository =nginx:1.27",
				"unrecognised spec.deep.list[name=a].nested.image =evil:latest",
				"unrecognised spec.mount.image.reference =data:3",
			},
		},
		{
			name:     "ConfigMap data is opaque",
			manifest: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {image: \"x:1\"}\n",
		},
		{
			name: "a pod spec with something else that looks like an image",
			manifest: `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: "c:1", env: [{name: IMAGE, value: "x"}]}]
  overhead: {image: "odd:1"}
`,
			uses: []string{"container spec.containers[name=c].image c=c:1", "unrecognised spec.overhead.image =odd:1"},
			pods: []string{"spec: containers=spec.containers[name=c]"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := deploy.Walk(obj(t, tt.manifest))
			require.NoError(t, err)
			assert.Equal(t, tt.uses, uses(w))
			assert.Equal(t, tt.pods, pods(w))
			for _, u := range w.Images {
				assert.Equal(t, w.Object, u.Object)
				assert.NotEmpty(t, u.Object.Name)
			}
		})
	}
}

// TestWalkOrder: the same object walks the same way every time (Go's map order is
// random).
func TestWalkOrder(t *testing.T) {
	o := obj(t, `apiVersion: example.com/v1
kind: Thing
metadata: {name: x}
spec:
  a: {template: {spec: {containers: [{name: c1, image: "1"}, {name: c2, image: "2"}], volumes: [{name: v, image: {reference: "3"}}]}}}
  b: {image: "4", c: {zImage: "5", aImage: "6"}}
  d: {template: {spec: {initContainers: [{name: i, image: "7"}]}}}
`)
	first, err := deploy.Walk(o)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"container spec.a.template.spec.containers[name=c1].image c1=1",
		"container spec.a.template.spec.containers[name=c2].image c2=2",
		"volume spec.a.template.spec.volumes[name=v].image.reference v=3",
		"container spec.d.template.spec.initContainers[name=i].image i=7",
		"unrecognised spec.b.c.aImage =6",
		"unrecognised spec.b.c.zImage =5",
		"unrecognised spec.b.image =4",
	}, uses(first))
	for range 50 {
		again, err := deploy.Walk(o)
		require.NoError(t, err)
		require.Equal(t, uses(first), uses(again))
		require.Equal(t, pods(first), pods(again))
	}
}

// TestSetImage rewrites images in place, in containers, image volumes and Tekton
// step templates; an unrecognised use cannot be set.
func TestSetImage(t *testing.T) {
	o := obj(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:"+template+
		"      ephemeralContainers: [{name: e, image: {bad: 1}}]\n")
	w, err := deploy.Walk(o)
	require.NoError(t, err)
	for i := range w.Images {
		u := &w.Images[i]
		if u.Kind == deploy.UnrecognisedImage {
			assert.Error(t, u.SetImage("x"))
			continue
		}
		require.NoError(t, u.SetImage(u.Image+"@sha256:0"))
	}
	again, err := deploy.Walk(o)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"container spec.template.spec.initContainers[name=init].image init=init:1@sha256:0",
		"container spec.template.spec.containers[name=web].image web=web:1@sha256:0",
		"container spec.template.spec.containers[name=side].image side=side:1@sha256:0",
		"unrecognised spec.template.spec.ephemeralContainers[name=e].image =map[bad:1]",
		"volume spec.template.spec.volumes[name=data].image.reference data=data:1@sha256:0",
	}, uses(again))
	assert.Equal(t, "the image is a map[string]interface {}, not a string", again.Images[3].Note)
}

// TestWalkShape: a core workload without a readable pod template is a ShapeError;
// what looks like an image in it is still found.
func TestWalkShape(t *testing.T) {
	for _, tt := range []struct{ manifest, err string }{
		{`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"once"},"spec":{}}`, "Job.batch/once: spec.template: no pod template"},
		{`{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db"},"spec":{"template":[{"spec":{"containers":[{"image":"evil:1"}]}}]}}`,
			"StatefulSet/db: spec.template: the pod template is a []interface {}, not an object"},
	} {
		w, err := deploy.Walk(obj(t, tt.manifest))
		var se *deploy.ShapeError
		require.True(t, errors.As(err, &se), "%v", err)
		assert.EqualError(t, err, tt.err)
		assert.Empty(t, w.Pods)
		if w.Object.Kind == "StatefulSet" {
			assert.Equal(t, []string{"unrecognised spec.template[0].spec.containers[0].image =evil:1"}, uses(w))
		}
	}
	// Images walks on past it.
	got := deploy.Images([]*unstructured.Unstructured{
		obj(t, `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"once"},"spec":{}}`),
		nil,
		obj(t, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"c:1"}]}}`),
	})
	require.Len(t, got, 1)
	assert.Equal(t, deploy.ObjectRef{Kind: "Pod", Name: "p"}, got[0].Object)
}

// Walk a Tekton Task: each step is a container of the pod Tekton builds, and its
// image can be rewritten in place, for example to pin it.
func ExampleWalk() {
	var task map[string]any
	_ = yaml.Unmarshal([]byte(`
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: build, namespace: ci}
spec:
  steps:
  - {name: test, image: "golang:1.25"}
  volumes:
  - {name: tools, image: {reference: "registry.example/tools:v2"}}
`), &task)
	w, err := deploy.Walk(&unstructured.Unstructured{Object: task})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := range w.Images {
		u := &w.Images[i]
		fmt.Println(u.Object, u.Kind, u.Path, u.Name, u.Image)
	}
	_ = w.Images[0].SetImage("golang@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	steps, _, _ := unstructured.NestedSlice(task, "spec", "steps")
	fmt.Println(steps[0].(map[string]any)["image"])
	// Output:
	// Task.tekton.dev/ci/build container spec.steps[name=test].image test golang:1.25
	// Task.tekton.dev/ci/build volume spec.volumes[name=tools].image.reference tools registry.example/tools:v2
	// golang@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
}

// TestWalkBypasses: the shapes a review found the walker missed (issue 13 item 3):
// Tekton bundles and remote resolvers, Crossplane packages, image lists and
// imageName/imageRef keys, Argo resource templates, a Pod's own annotations.
func TestWalkBypasses(t *testing.T) {
	for _, tt := range []struct {
		name     string
		manifest string
		uses     []string
		pods     []string
	}{
		{
			name: "Tekton TaskRun: the bundles resolver",
			manifest: `apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: tr}
spec:
  taskRef:
    resolver: bundles
    params:
    - {name: bundle, value: docker.io/evil/task-bundle:latest}
    - {name: name, value: build}
    - {name: kind, value: task}
`,
			uses: []string{"package spec.taskRef.params[name=bundle].value =docker.io/evil/task-bundle:latest"},
		},
		{
			name:     "Tekton v1beta1 TaskRun: taskRef.bundle",
			manifest: "apiVersion: tekton.dev/v1beta1\nkind: TaskRun\nmetadata: {name: tr}\nspec: {taskRef: {name: build, bundle: \"docker.io/evil/task-bundle:latest\"}}\n",
			uses:     []string{"package spec.taskRef.bundle =docker.io/evil/task-bundle:latest"},
		},
		{
			name:     "Tekton v1beta1 PipelineRun: pipelineRef.bundle",
			manifest: "apiVersion: tekton.dev/v1beta1\nkind: PipelineRun\nmetadata: {name: pr}\nspec: {pipelineRef: {name: p, bundle: \"docker.io/evil/p:latest\"}}\n",
			uses:     []string{"package spec.pipelineRef.bundle =docker.io/evil/p:latest"},
		},
		{
			name:     "Tekton PipelineRun: the git resolver",
			manifest: "apiVersion: tekton.dev/v1\nkind: PipelineRun\nmetadata: {name: pr}\nspec: {pipelineRef: {resolver: git, params: [{name: url, value: \"https://example.com/p.git\"}]}}\n",
			uses:     []string{"unrecognised spec.pipelineRef.resolver ="},
		},
		{
			name: "Tekton Pipeline: taskRefs by bundle, resolver, cluster and name",
			manifest: `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: p}
spec:
  tasks:
  - {name: byname, taskRef: {name: build}}
  - {name: cluster, taskRef: {resolver: cluster, params: [{name: name, value: build}]}}
  - {name: bundle, taskRef: {resolver: bundles, params: [{name: bundle, value: "reg.example/t@sha256:0"}]}}
  - {name: param, taskRef: {resolver: bundles, params: [{name: bundle, value: "$(params.b)"}]}}
  - {name: nobundle, taskRef: {resolver: bundles, params: [{name: name, value: x}]}}
  - {name: hub, taskRef: {resolver: hub, params: [{name: name, value: git-clone}]}}
  - {name: inner, pipelineRef: {resolver: http, params: [{name: url, value: "https://x/p.yaml"}]}}
  finally:
  - {name: old, taskRef: {bundle: "reg.example/old:1"}}
`,
			uses: []string{
				"package spec.tasks[name=bundle].taskRef.params[name=bundle].value =reg.example/t@sha256:0",
				"unrecognised spec.tasks[name=param].taskRef.params[name=bundle].value =$(params.b)",
				"unrecognised spec.tasks[name=nobundle].taskRef.params =",
				"unrecognised spec.tasks[name=hub].taskRef.resolver =",
				"unrecognised spec.tasks[name=inner].pipelineRef.resolver =",
				"package spec.finally[name=old].taskRef.bundle =reg.example/old:1",
			},
		},
		{
			name:     "Tekton Task: a step's remote StepAction",
			manifest: "apiVersion: tekton.dev/v1\nkind: Task\nmetadata: {name: t}\nspec: {steps: [{name: s, ref: {resolver: git, params: []}}]}\n",
			uses:     []string{"unrecognised spec.steps[name=s].ref.resolver ="},
			pods:     []string{"spec: containers=spec.steps[name=s]"},
		},
		{
			name:     "Crossplane Provider",
			manifest: "apiVersion: pkg.crossplane.io/v1\nkind: Provider\nmetadata: {name: aws}\nspec: {package: \"xpkg.upbound.io/evil/provider-aws:latest\", packagePullPolicy: Always}\n",
			uses:     []string{"package spec.package =xpkg.upbound.io/evil/provider-aws:latest"},
		},
		{
			name:     "Crossplane Function",
			manifest: "apiVersion: pkg.crossplane.io/v1beta1\nkind: Function\nmetadata: {name: f}\nspec: {package: \"xpkg.upbound.io/fn:v1\"}\n",
			uses:     []string{"package spec.package =xpkg.upbound.io/fn:v1"},
		},
		{
			name:     "Crossplane Configuration",
			manifest: "apiVersion: pkg.crossplane.io/v1\nkind: Configuration\nmetadata: {name: c}\nspec: {package: \"xpkg.upbound.io/c:v1\"}\n",
			uses:     []string{"package spec.package =xpkg.upbound.io/c:v1"},
		},
		{
			name: "custom resource: image lists, imageName, imageRef",
			manifest: `apiVersion: example.com/v1
kind: Thing
metadata: {name: x}
spec:
  images: ["evil/a:latest", "", "gcr.io/allowed/*"]
  extraImages: [{name: side, image: "evil/b:1"}, {reference: "evil/c:1"}]
  builder: {imageName: "evil/d:1", runImageRef: "evil/e:1", imageReference: "evil/f:1"}
`,
			uses: []string{
				"unrecognised spec.builder.imageName =evil/d:1",
				"unrecognised spec.builder.imageReference =evil/f:1",
				"unrecognised spec.builder.runImageRef =evil/e:1",
				"unrecognised spec.extraImages[name=side].image =evil/b:1",
				"unrecognised spec.extraImages[1].reference =evil/c:1",
				"unrecognised spec.images[0] =evil/a:latest",
			},
		},
		{
			name: "custom resource: ordinary fields are not images",
			manifest: `apiVersion: example.com/v1
kind: Thing
metadata: {name: x}
spec:
  imagePullPolicy: Always
  imagePullSecrets: [{name: regcred}]
  imageTag: v1
  imageCount: 3
  imageNamespace: team
  images: [{name: app, newTag: v2}, 7, ""]
  exemptImages: ["docker.io/library/*"]
  imageName: ""
  imageRefs: {policy: strict}
  pageImages: []
`,
		},
		{
			name: "Argo resource templates",
			manifest: `apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: wf}
spec:
  templates:
  - name: pod
    resource:
      action: create
      manifest: |
        apiVersion: v1
        kind: Pod
        metadata: {generateName: x-, annotations: {sidecar.istio.io/proxyImage: "evil/proxy:1"}}
        spec: {containers: [{name: main, image: "docker.io/evil/pod:latest"}]}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: c}
        data: {image: "not-run:1"}
  - name: params
    resource: {action: apply, manifest: "apiVersion: v1\nkind: Pod\nmetadata: {name: '{{workflow.name}}'}\nspec: {containers: [{name: c, image: 'ok:1'}]}\n"}
  - name: gone
    resource: {action: delete, manifest: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: 'x:1'}]}\n"}
  - name: garbage
    resource: {action: create, manifest: "[1, 2"}
  - name: artifact
    resource: {action: create, manifestFrom: {artifact: {name: m}}}
`,
			uses: []string{
				"container spec.templates[name=pod].resource.manifest[0].spec.containers[name=main].image main=docker.io/evil/pod:latest",
				"unrecognised spec.templates[name=pod].resource.manifest[0].metadata.annotations.sidecar.istio.io/proxyImage =evil/proxy:1",
				"unrecognised spec.templates[name=params].resource.manifest =",
				"unrecognised spec.templates[name=garbage].resource.manifest =",
				"unrecognised spec.templates[name=artifact].resource.manifestFrom =",
			},
			pods: []string{"spec.templates[name=pod].resource.manifest[0].spec: containers=spec.templates[name=pod].resource.manifest[0].spec.containers[name=main]"},
		},
		{
			name: "Pod: its own annotations",
			manifest: "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {sidecar.istio.io/proxyImage: \"docker.io/evil/proxy:latest\", note: x, " +
				"config.linkerd.io/proxy-image: \"evil/l:1\", vault.hashicorp.com/agent-image: \"evil/v:1\", example.com/image: \"evil/e:1\", " +
				"argocd-image-updater.argoproj.io/image-list: \"app=nginx\", kubectl.kubernetes.io/default-container: c}}\nspec: {containers: [{name: c, image: \"c:1\"}]}\n",
			uses: []string{"container spec.containers[name=c].image c=c:1",
				"unrecognised metadata.annotations.config.linkerd.io/proxy-image =evil/l:1",
				"unrecognised metadata.annotations.example.com/image =evil/e:1",
				"unrecognised metadata.annotations.sidecar.istio.io/proxyImage =docker.io/evil/proxy:latest",
				"unrecognised metadata.annotations.vault.hashicorp.com/agent-image =evil/v:1"},
			pods: []string{"spec: containers=spec.containers[name=c]"},
		},
		{
			name:     "Tekton TaskRun: its annotations reach the pod",
			manifest: "apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {name: tr, annotations: {sidecar.istio.io/proxyImage: \"evil/proxy:1\"}}\nspec: {taskRef: {name: build}}\n",
			uses:     []string{"unrecognised metadata.annotations.sidecar.istio.io/proxyImage =evil/proxy:1"},
		},
		{
			name:     "Deployment: its own annotations reach no pod",
			manifest: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, annotations: {sidecar.istio.io/proxyImage: \"evil/proxy:1\"}}\nspec: {template: {spec: {containers: [{name: c, image: \"c:1\"}]}}}\n",
			uses:     []string{"container spec.template.spec.containers[name=c].image c=c:1"},
			pods:     []string{"spec.template.spec: containers=spec.template.spec.containers[name=c]"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := deploy.Walk(obj(t, tt.manifest))
			require.NoError(t, err)
			assert.Equal(t, tt.uses, uses(w))
			assert.Equal(t, tt.pods, pods(w))
			for _, u := range w.Images {
				assert.Equal(t, w.Object, u.Object)
				if u.Kind == deploy.UnrecognisedImage && u.Image == "" {
					assert.NotEmpty(t, u.Note, u.Path)
				}
			}
		})
	}
}

// TestSetImageBeyondContainers pins a Tekton bundle, a Crossplane package and an
// image in an Argo resource template's manifest in place.
func TestSetImageBeyondContainers(t *testing.T) {
	for _, manifest := range []string{
		"apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {name: tr}\nspec: {taskRef: {resolver: bundles, params: [{name: bundle, value: \"b:1\"}]}}\n",
		"apiVersion: tekton.dev/v1beta1\nkind: PipelineRun\nmetadata: {name: pr}\nspec: {pipelineRef: {name: p, bundle: \"b:1\"}}\n",
		"apiVersion: pkg.crossplane.io/v1\nkind: Provider\nmetadata: {name: p}\nspec: {package: \"b:1\"}\n",
		"apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: wf}\nspec: {templates: [{name: t, resource: {action: create, manifest: \"" +
			`apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec: {template: {spec: {containers: [{name: c, image: 'b:1'}]}}}\n` + "\"}}]}\n",
	} {
		o := obj(t, manifest)
		w, err := deploy.Walk(o)
		require.NoError(t, err)
		require.Len(t, w.Images, 1, manifest)
		require.NoError(t, w.Images[0].SetImage("b:1@sha256:0"))
		again, err := deploy.Walk(o)
		require.NoError(t, err)
		require.Len(t, again.Images, 1)
		assert.Equal(t, "b:1@sha256:0", again.Images[0].Image, manifest)
		assert.Equal(t, w.Images[0].Path, again.Images[0].Path)
	}
}
