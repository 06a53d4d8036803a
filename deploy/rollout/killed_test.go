//go:build linux

package rollout_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/prom"
	"github.com/shipkit/shipkit/mesh/replicas"
	"github.com/shipkit/shipkit/observe/prometheus"
)

// childEnv holds, in the test binary re-executed by TestCanaryProcessKilledAfterStep2,
// the JSON of the rollout it runs (a childConfig).
const childEnv = "SHIPKIT_ROLLOUT_TEST_CHILD"

// childConfig is what a rollout process needs to run the env's canary on its own.
type childConfig struct {
	Kubeconfig string `json:"kubeconfig"`
	Namespace  string `json:"namespace"`
	Prometheus string `json:"prometheus"`
	App        string `json:"app"` // the instance label of the app Prometheus scrapes
	Identity   string `json:"identity"`
}

// TestRolloutProcess is not a test: it is the rollout process that
// TestCanaryProcessKilledAfterStep2 starts (and kills), and does nothing unless
// started that way.
func TestRolloutProcess(t *testing.T) {
	raw := os.Getenv(childEnv)
	if raw == "" {
		return
	}
	var c childConfig
	require.NoError(t, json.Unmarshal([]byte(raw), &c))
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	require.NoError(t, err)
	cfg.QPS, cfg.Burst = 1000, 2000 // as the test bed's own clients
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	metrics, err := prometheus.New(c.Prometheus, prometheus.WithTimeout(2*time.Second))
	require.NoError(t, err)
	router, err := replicas.New(cfg, replicas.Workload{Namespace: c.Namespace, Service: "web", Stable: "web", Canary: "web-canary"},
		replicas.WithTotal(total))
	require.NoError(t, err)
	e := &env{client: client, ns: c.Namespace, app: &prom.App{Addr: c.App}, metrics: metrics,
		router: &loggedRouter{Router: router, client: client, ns: c.Namespace}}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	res, err := e.canary(t, e.plan(3), rollout.WithIdentity(c.Identity), rollout.WithLogger(log)).Run(t.Context())
	t.Logf("the rollout process was not killed: %v\n%v", err, res)
}

// Killing the rollout process (SIGKILL, so it releases nothing) after step 2 is
// recorded, and running the rollout again from another process, ends in the same
// state as an uninterrupted rollout: the second process waits for the dead one's
// Lease to expire, takes it over, resumes at the recorded step, and the canary never
// gets more traffic than the plan allows at any time.
func TestCanaryProcessKilledAfterStep2(t *testing.T) {
	e := newEnv(t)
	changes := e.router.watchWeight(t) // the canary's replicas, whichever process sets them
	ctx := t.Context()
	cms := e.client.CoreV1().ConfigMaps(e.ns)
	w, err := cms.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=web-rollout"})
	require.NoError(t, err)
	defer w.Stop()

	child := startRolloutProcess(t, childConfig{Kubeconfig: e.cluster.Kubeconfig, Namespace: e.ns,
		Prometheus: promServer.Get(t).URL, App: e.app.Addr, Identity: "process-1"})
	recorded := waitState(t, w, child, 2*time.Minute, func(st *rollout.Status) bool { return st.Step >= 2 })
	require.NoError(t, syscall.Kill(child.PID(), syscall.SIGKILL))
	<-child.Done()
	killed := time.Now()
	var exit *exec.ExitError
	require.ErrorAs(t, child.Exited(), &exit)
	ws, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "the rollout process died of %v", exit)
	t.Logf("killed the rollout process when its state recorded steps 1-%d done, canary at %d%%", recorded.Step, recorded.Weight)

	// What the dead process left: its state at step 2 (the step it was in when it
	// died records at most the weight of step 3 as intent), its Lease held.
	st, err := rollout.ReadStatus(ctx, e.client, e.ns, "web")
	require.NoError(t, err)
	require.NotNil(t, st)
	assert.Equal(t, rollout.Progressing, st.Phase)
	assert.Equal(t, "process-1", st.Holder)
	require.Equal(t, 2, st.Step)
	require.Contains(t, []int32{10, 50}, st.Weight)
	canaryAtKill := canaryPercent(t, e)
	assert.LessOrEqual(t, canaryAtKill, int(st.Weight), "the live weight is never above the recorded one")
	l, err := e.client.CoordinationV1().Leases(e.ns).Get(ctx, "web-rollout", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, l.Spec.HolderIdentity, "the killed process released its Lease")
	assert.Equal(t, "process-1", *l.Spec.HolderIdentity)

	var logs syncBuffer
	second := e.canary(t, e.plan(3), rollout.WithIdentity("process-2"), rollout.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	_, err = second.Run(ctx)
	var locked *rollout.LockedError
	require.ErrorAs(t, err, &locked, "a run while the dead process's Lease is valid")
	assert.Equal(t, "process-1", locked.Holder)
	assert.Empty(t, e.router.weights(), "the refused run moved nothing")

	time.Sleep(time.Until(locked.Until) + 100*time.Millisecond) // the Lease's own expiry, by this clock
	assert.Equal(t, canaryAtKill, canaryPercent(t, e), "nothing moved while no process ran the rollout")
	res, err := second.Run(ctx)
	require.NoError(t, err)
	t.Log(res)
	t.Logf("resumed %v after the kill", res.Started.Sub(killed).Round(time.Millisecond))
	assert.Equal(t, rollout.Promoted, res.Phase, res.String())
	assert.True(t, res.Resumed)
	assert.Equal(t, 2, res.ResumedAt)
	assert.Contains(t, logs.String(), `msg="taking over expired lease"`)
	assert.Contains(t, logs.String(), "holder=process-1")
	assert.Equal(t, []int{int(st.Weight), 50, 100, 0}, e.router.weights(), "the recorded weight again, then the plan")
	l, err = e.client.CoordinationV1().Leases(e.ns).Get(ctx, "web-rollout", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, l.Spec.LeaseTransitions)
	assert.Equal(t, int32(1), *l.Spec.LeaseTransitions, "one hand-over, process-1 to process-2")

	e.assertPromoted(t, second)
	assert.Equal(t, promotedOutcome(e.plan(3)), e.outcome(t), "the state an uninterrupted rollout leaves")

	// The canary's weight in the API server, over both processes: only the plan's
	// weights, in its order, each raised only after the analysis before it passed.
	final, err := rollout.ReadStatus(ctx, e.client, e.ns, "web")
	require.NoError(t, err)
	finished := map[int]time.Time{}
	for _, s := range final.Steps {
		finished[s.Index] = s.Finished
	}
	seen := distinctWeights(changes)
	var got []int
	for _, c := range seen {
		got = append(got, c.Weight)
	}
	require.Equal(t, []int{10, 50, 100, 0}, got, "the canary's weights in the API server")
	assert.True(t, seen[1].At.After(finished[1]), "50%% at %v, before the analysis at 10%% ended at %v", seen[1].At, finished[1])
	assert.True(t, seen[2].At.After(finished[3]), "100%% at %v, before the analysis at 50%% ended at %v", seen[2].At, finished[3])
}

// startRolloutProcess runs TestRolloutProcess in a new process of this test binary.
// The kernel kills it if this process dies first.
func startRolloutProcess(t *testing.T, c childConfig) *testbed.Process {
	t.Helper()
	raw, err := json.Marshal(c)
	require.NoError(t, err)
	p, err := testbed.StartProcess(t.Context(), testbed.ProcessConfig{
		Name:      "rollout process " + c.Identity,
		Bin:       os.Args[0],
		Args:      []string{"-test.run=^TestRolloutProcess$", "-test.count=1", "-test.v", "-test.timeout=5m"},
		Env:       append(os.Environ(), childEnv+"="+string(raw)),
		LogFile:   filepath.Join(t.TempDir(), "rollout-process.log"),
		StopGrace: time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(p.Stop)
	return p
}

// waitState waits on w (a watch of the state ConfigMap) for a recorded Status that
// satisfies ok, failing if the process p exits first.
func waitState(t *testing.T, w watch.Interface, p *testbed.Process, d time.Duration, ok func(*rollout.Status) bool) *rollout.Status {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case <-p.Done():
			require.FailNow(t, "the rollout process ended first", "%v", p.Exited())
		case <-timeout:
			require.FailNow(t, "no such state recorded", "within %v\n%s", d, p.WithLog(errors.New("waiting")))
		case ev, open := <-w.ResultChan():
			require.True(t, open, "the watch of the state ended")
			cm, isCM := ev.Object.(*corev1.ConfigMap)
			if !isCM || cm.Data["state"] == "" {
				continue
			}
			var st rollout.Status
			require.NoError(t, json.Unmarshal([]byte(cm.Data["state"]), &st))
			if ok(&st) {
				return &st
			}
		}
	}
}

// canaryPercent is the canary's share of the total replicas in the API server. Unlike
// loggedRouter.live it does not need the stable Deployment scaled yet: a process
// killed between the two scales leaves them apart.
func canaryPercent(t *testing.T, e *env) int {
	t.Helper()
	return int(replicasOf(t, e.client, e.ns, "web-canary") * 100 / total)
}

// distinctWeights drains changes and returns each weight change once: the first
// time the canary was seen at a weight other than the one before, leading zeros (the
// canary's state before any step) dropped.
func distinctWeights(changes <-chan weightChange) []weightChange {
	var out []weightChange
	for {
		select {
		case c := <-changes:
			if (len(out) == 0 && c.Weight == 0) || (len(out) > 0 && out[len(out)-1].Weight == c.Weight) {
				continue
			}
			out = append(out, c)
		default:
			return out
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the rollout's goroutines to log to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
