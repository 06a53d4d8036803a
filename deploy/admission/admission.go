// Package admission serves a [deploy.Gate] as a Kubernetes ValidatingAdmissionWebhook,
// so a team runs the same policy in CI (before apply) and in the cluster (at
// admission, for whatever applies objects: kubectl, Argo CD, a controller).
//
// A [Handler] takes an AdmissionReview (admission.k8s.io/v1) by POST, judges the
// request's object with the gate and answers with an AdmissionReview whose response
// echoes the request's UID, allows or denies it and, when it denies, lists every
// reason in its status message, which the API server passes on to the client:
//
//	admission webhook "gate.shipkit.dev" denied the request: Deployment/shop/web: container app: image nginx:latest: not pinned by digest ...
//
// The gate's warnings (Decision.Warnings: a Rego warn rule, a
// ValidatingAdmissionPolicy's Warn or Audit binding) go back as the response's
// warnings, allowed or denied, which the API server returns as Warning headers and
// kubectl prints ("Warning: deploy gate: ..."). They are kept within the API
// server's bounds ([MaxWarningRunes] each, [MaxWarningsRunes] in all; the ones
// past it are counted) and control characters, which would make the API server
// drop a warning, are replaced by spaces.
//
// The handler has no side effects, so register it with sideEffects: None. Dry-run
// requests (kubectl apply --dry-run=server, deploy/apply's Plan) are judged like real
// ones, so a plan shows what admission would refuse; they are marked as dry runs in
// the handler's events and logs. A request body larger than the limit, or one that is
// not an AdmissionReview v1, gets a 400 (413 when too large) that says what is wrong.
// When the gate cannot decide (a registry that cannot be reached) the request is
// denied with code 500: the webhook fails closed, whatever its failurePolicy says
// about a webhook that cannot be reached. The message then names the image and the
// kind of failure (a gate.VerifyError's Failure, such as "the registry answered
// HTTP 403") and points to the webhook's logs, which hold the error cut to
// [MaxLoggedErrorBytes]: whatever a registry answered is never sent back to the
// requester, nor to the handler's observer (which may put it on a trace span): both
// get the same sanitized message.
//
// Whoever may create a pod chooses the registries the webhook's verifier reads. A
// gate without an allow-list reads any registry over HTTPS and refuses, without a
// request, every image it would read over plain HTTP (localhost, *.localhost,
// loopback and private addresses: gate.ReasonInsecureRegistry). Give the gate an
// allow-list of registries (gate.WithRegistries) AND give the verifier the same
// allow-list's transport (gate.Registries.Transport, for example through
// sign/cosign.WithTransport): the gate checks the names images give, the transport
// where connections really go after redirects and DNS. Nothing checks that both
// are set; without the transport an allowed registry can redirect the webhook
// inside the cluster's network.
//
// At most [DefaultMaxInFlight] requests ([WithMaxInFlight]) are judged at once, so
// the memory of a burst of reviews is bounded per process, not only per
// verification. A request past the bound waits for a slot within its time; if none
// frees, it is denied with code 429 in the AdmissionReview, so it fails closed
// whatever the webhook's failurePolicy says (the API server's clients retry).
package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/observe"
)

// Defaults of a [Handler].
const (
	// DefaultMaxBodyBytes bounds a request body: the API server stores objects of up
	// to about 3 MiB, and an update's review carries the old object too.
	DefaultMaxBodyBytes = 8 << 20
	// DefaultTimeout bounds one decision when the request does not say how long the
	// API server waits (its ?timeout= parameter, 10s by default).
	DefaultTimeout = 10 * time.Second
	// MaxMessageBytes bounds the status message; the reasons past it are counted.
	MaxMessageBytes = 16 << 10
	// MaxLoggedErrorBytes bounds the gate's error in the handler's log (in runes).
	MaxLoggedErrorBytes = 2 << 10
	// DefaultMaxInFlight is how many requests a handler judges at once unless
	// [WithMaxInFlight] says otherwise.
	DefaultMaxInFlight = 8
	// MaxWarningRunes bounds one warning of a response, and MaxWarningsRunes all of
	// them together: the API server cuts every warning to 256 runes once a
	// response's warnings pass 4096 runes (k8s.io/apiserver's warning recorder,
	// endpoints/filters/warning.go). Within both, it passes them on as they are.
	MaxWarningRunes  = 256
	MaxWarningsRunes = 4 << 10
)

// Handler is an http.Handler for a ValidatingAdmissionWebhook. It is safe for
// concurrent use when its gate is.
type Handler struct {
	gate        deploy.Gate
	maxBody     int64
	timeout     time.Duration
	maxInFlight int
	slots       chan struct{} // one per request being judged
	obs         observe.Observer
	log         *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// Option configures a [Handler].
type Option func(*Handler)

// WithMaxBodyBytes bounds the request body (default [DefaultMaxBodyBytes]); n must
// be at least 1.
func WithMaxBodyBytes(n int64) Option { return func(h *Handler) { h.maxBody = n } }

// WithTimeout bounds a decision when the request names no timeout (default
// [DefaultTimeout]); d must be positive.
func WithTimeout(d time.Duration) Option { return func(h *Handler) { h.timeout = d } }

// WithMaxInFlight bounds how many requests the handler judges at once (default
// [DefaultMaxInFlight]); n must be at least 1. Each judged request holds one gate
// check, whose verifications have their own bounds (the gate's WithConcurrency, the
// verifier's limits): n times that bounds the handler's verification memory. A
// request waiting for a slot holds only its body (at most [WithMaxBodyBytes]; how
// many wait is bounded by the API server's own limits). A request past the bound waits for a slot within its decision's
// time, then is denied with code 429 (StatusReasonTooManyRequests), which the API
// server passes on as a denial whatever the webhook's failurePolicy.
func WithMaxInFlight(n int) Option { return func(h *Handler) { h.maxInFlight = n } }

// WithObserver reports each decision to o as one event of stage
// [observe.StageDeploy], step "admission": Finished, or Failed when the gate could
// not decide, with the request and the verdict as its message.
func WithObserver(o observe.Observer) Option { return func(h *Handler) { h.obs = o } }

// WithLogger logs to l (default: nowhere).
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// OptionError is [NewHandler]'s error for a gate or options it cannot use. It
// names every one at once, and matches deploy.ErrInvalidOption (errors.Is).
type OptionError struct {
	// Problems says what is wrong, one entry per option, such as
	// "WithTimeout(0s): want a positive duration".
	Problems []string
}

// Error lists the problems.
func (e *OptionError) Error() string {
	return fmt.Sprintf("admission: %v: %s", deploy.ErrInvalidOption, strings.Join(e.Problems, "; "))
}

// Unwrap returns deploy.ErrInvalidOption.
func (e *OptionError) Unwrap() error { return deploy.ErrInvalidOption }

// NewHandler returns a handler that judges admission requests with g. A nil gate, or
// an option given a value that would refuse every request (a body limit below 1
// byte, a timeout of zero or less, fewer than 1 request in flight), is an
// *[OptionError] naming each.
func NewHandler(g deploy.Gate, opts ...Option) (*Handler, error) {
	h := &Handler{gate: g, maxBody: DefaultMaxBodyBytes, timeout: DefaultTimeout, maxInFlight: DefaultMaxInFlight}
	for _, o := range opts {
		o(h)
	}
	var problems []string
	if g == nil {
		problems = append(problems, "no gate")
	}
	if h.maxBody < 1 {
		problems = append(problems, fmt.Sprintf("WithMaxBodyBytes(%d): want at least 1", h.maxBody))
	}
	if h.timeout <= 0 {
		problems = append(problems, fmt.Sprintf("WithTimeout(%s): want a positive duration", h.timeout))
	}
	if h.maxInFlight < 1 {
		problems = append(problems, fmt.Sprintf("WithMaxInFlight(%d): want at least 1", h.maxInFlight))
	}
	if len(problems) > 0 {
		return nil, &OptionError{Problems: problems}
	}
	h.slots = make(chan struct{}, h.maxInFlight)
	h.obs = observe.OrDiscard(h.obs)
	h.log = observe.OrDiscardLogger(h.log)
	return h, nil
}

// ServeHTTP judges one AdmissionReview.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "admission: an AdmissionReview is sent by POST", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			http.Error(w, fmt.Sprintf("admission: content type %q, want application/json", ct), http.StatusUnsupportedMediaType)
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		http.Error(w, fmt.Sprintf("admission: request body larger than %d bytes", tooBig.Limit), http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "admission: read request: "+err.Error(), http.StatusBadRequest)
		return
	}
	review, err := decodeReview(body)
	if err != nil {
		h.log.WarnContext(r.Context(), "bad admission request", "err", err)
		http.Error(w, "admission: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout(r, h.timeout))
	defer cancel()
	resp := h.judge(ctx, review.Request)
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(w, "admission: encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// decodeReview reads an AdmissionReview v1 with a request that has a UID.
func decodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, errors.New("empty request body, want an AdmissionReview")
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("request body is not an AdmissionReview: %w", err)
	}
	gv := admissionv1.SchemeGroupVersion.String()
	if review.APIVersion != gv || review.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("request is apiVersion %q kind %q, want %s AdmissionReview (set admissionReviewVersions: [v1])", review.APIVersion, review.Kind, gv)
	}
	if review.Request == nil {
		return nil, errors.New("AdmissionReview has no request")
	}
	if review.Request.UID == "" {
		return nil, errors.New("AdmissionReview request has no uid")
	}
	return &review, nil
}

// requestTimeout is the API server's ?timeout= (how long it waits for us) less a
// margin to answer in, or def.
func requestTimeout(r *http.Request, def time.Duration) time.Duration {
	d, err := time.ParseDuration(r.URL.Query().Get("timeout"))
	if err != nil || d <= 0 {
		return def
	}
	return max(d-d/10, d/2)
}

// errBusy is the observers' error for a request denied because every slot was
// taken until its time ran out.
var errBusy = errors.New("admission: too many requests in flight")

// judge answers one request.
func (h *Handler) judge(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	dryRun := req.DryRun != nil && *req.DryRun
	subject := fmt.Sprintf("%s %s %s", req.Operation, req.Kind.Kind, objectName(req.Namespace, req.Name))
	if dryRun {
		subject += " (dry run)"
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update || len(req.Object.Raw) == 0 {
		h.decided(ctx, subject, "allowed: nothing to judge", nil)
		return resp
	}
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	case <-ctx.Done():
		h.log.WarnContext(ctx, "admission: every slot taken until the request's time ran out", "request", subject, "max_in_flight", h.maxInFlight)
		return h.deny(ctx, resp, subject, http.StatusTooManyRequests,
			fmt.Sprintf("the deploy gate is judging %d requests already and had no room for this one in time; try again", h.maxInFlight), errBusy)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(req.Object.Raw); err != nil {
		return h.deny(ctx, resp, subject, http.StatusBadRequest, "admission: the request's object cannot be read: "+err.Error(), err)
	}
	if obj.GetNamespace() == "" && req.Namespace != "" {
		obj.SetNamespace(req.Namespace)
	}
	if obj.GetName() == "" && req.Name != "" {
		obj.SetName(req.Name)
	}
	d, err := h.gate.Check(ctx, []*unstructured.Unstructured{obj})
	if err == nil && d == nil {
		err = errors.New("the gate returned neither a decision nor an error")
	}
	if err != nil {
		// The error can hold what a registry sent (an error page, up to tens of
		// kilobytes, from wherever the object's images point): it goes to the log,
		// cut, never to the requester.
		h.log.ErrorContext(ctx, "the deploy gate could not decide", "request", subject, "err", fmt.Sprintf("%.*s", MaxLoggedErrorBytes, err.Error()))
		msg := undecided(err)
		return h.deny(ctx, resp, subject, http.StatusInternalServerError, msg, sanitized(msg, err))
	}
	resp.Warnings = warnings(d.Warnings)
	if d.Allowed() {
		verdict := "allowed"
		if n := len(d.Warnings); n > 0 {
			verdict += fmt.Sprintf(" with %d warning(s)", n)
		}
		h.decided(ctx, subject, verdict, nil)
		return resp
	}
	return h.deny(ctx, resp, subject, http.StatusForbidden, message(d.Reasons), nil)
}

func (h *Handler) deny(ctx context.Context, resp *admissionv1.AdmissionResponse, subject string, code int32, msg string, err error) *admissionv1.AdmissionResponse {
	resp.Allowed = false
	reason := metav1.StatusReasonForbidden
	switch code {
	case http.StatusBadRequest:
		reason = metav1.StatusReasonBadRequest
	case http.StatusInternalServerError:
		reason = metav1.StatusReasonInternalError
	case http.StatusTooManyRequests:
		reason = metav1.StatusReasonTooManyRequests
	}
	resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: msg}
	h.decided(ctx, subject, "denied: "+msg, err)
	return resp
}

// decided reports and logs a decision: one event, not an [observe.Step], since a
// webhook's observer wants its verdicts, named by request, not a start per request.
// err must hold nothing a registry sent: observers put it on spans.
func (h *Handler) decided(ctx context.Context, subject, verdict string, err error) {
	e := observe.Event{Stage: observe.StageDeploy, Step: "admission", Phase: observe.Finished, Message: subject + ": " + verdict, Time: time.Now()}
	if err != nil {
		e.Phase, e.Err = observe.Failed, err
	}
	h.obs.Observe(e)
	h.log.InfoContext(ctx, "admission", "request", subject, "verdict", verdict)
}

// undecided says why the gate could not decide without the error's text, which can
// hold what a registry sent: the image and the kind of failure, when the gate says.
func undecided(err error) string {
	var ve *gate.VerifyError
	switch {
	case errors.As(err, &ve):
		return fmt.Sprintf("the deploy gate could not decide: image %s: %s; see the webhook's logs", ve.Image, ve.Failure)
	case errors.Is(err, context.DeadlineExceeded):
		return "the deploy gate could not decide in time; see the webhook's logs"
	}
	return "the deploy gate could not decide; see the webhook's logs"
}

// undecidedError is what observers get when the gate could not decide: the
// requester's message, and what can be matched of the cause (errors.Is a context
// error, errors.As a *gate.VerifyError whose Err is its Failure) without its text.
type undecidedError struct {
	msg    string
	causes []error
}

func (e *undecidedError) Error() string   { return e.msg }
func (e *undecidedError) Unwrap() []error { return e.causes }

// sanitized returns the gate's error err as observers get it: msg, the
// requester's message, matching what err matched without err's text.
func sanitized(msg string, err error) error {
	e := &undecidedError{msg: "admission: " + msg}
	var ve *gate.VerifyError
	if errors.As(err, &ve) {
		e.causes = append(e.causes, &gate.VerifyError{Image: ve.Image, Failure: ve.Failure, Err: errors.New(ve.Failure)})
	}
	for _, c := range []error{context.DeadlineExceeded, context.Canceled} {
		if errors.Is(err, c) {
			e.causes = append(e.causes, c)
		}
	}
	return e
}

// message lists the reasons, as many as fit in MaxMessageBytes.
func message(reasons []deploy.Reason) string {
	var b strings.Builder
	if len(reasons) == 1 {
		b.WriteString("denied by the deploy gate: ")
	} else {
		fmt.Fprintf(&b, "denied by the deploy gate (%d reasons): ", len(reasons))
	}
	for i, r := range reasons {
		s := r.String()
		if i > 0 {
			s = "; " + s
		}
		if b.Len()+len(s) > MaxMessageBytes {
			fmt.Fprintf(&b, "; and %d more", len(reasons)-i)
			break
		}
		b.WriteString(s)
	}
	return b.String()
}

// warnings returns the gate's warnings as the API server passes them on: each
// "deploy gate: <reason>", valid UTF-8 without control characters, cut to
// MaxWarningRunes, as many as fit in MaxWarningsRunes with a last one counting the
// others.
func warnings(reasons []deploy.Reason) []string {
	if len(reasons) == 0 {
		return nil
	}
	out := make([]string, 0, len(reasons))
	total := 0
	for i, r := range reasons {
		w := warningText("deploy gate: " + r.String())
		n := utf8.RuneCountInString(w)
		// Keep room for the count of the ones left out, unless this is the last.
		room := MaxWarningsRunes - total
		if i < len(reasons)-1 {
			room -= len(moreWarnings(len(reasons)))
		}
		if n > room {
			out = append(out, moreWarnings(len(reasons)-i))
			break
		}
		out = append(out, w)
		total += n
	}
	return out
}

func moreWarnings(n int) string {
	return fmt.Sprintf("deploy gate: and %d more warning(s)", n)
}

// warningText makes s a warning the API server keeps: valid UTF-8, control
// characters as spaces, at most MaxWarningRunes runes (a cut one ends in "…").
func warningText(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if utf8.RuneCountInString(s) <= MaxWarningRunes {
		return s
	}
	return string([]rune(s)[:MaxWarningRunes-1]) + "…"
}

func objectName(ns, name string) string {
	if name == "" {
		name = "(generated name)"
	}
	if ns == "" {
		return name
	}
	return ns + "/" + name
}
