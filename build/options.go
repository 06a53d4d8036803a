package build

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
)

// DefaultUser is the user images run as unless [WithUser] says otherwise: the
// "nonroot" user of distroless and Chainguard bases.
const DefaultUser = "65532:65532"

// Option configures a builder.
type Option func(*options) error

type options struct {
	platforms   []v1.Platform
	base        Base
	user        string
	entrypoint  []string
	cmd         []string
	workdir     string
	ports       []string
	env         []string
	labels      map[string]string
	annotations map[string]string
	ldflags     string
	tags        []string
	created     time.Time
	createdSet  bool
	jobs        int
	binCache    string
	goEnv       []string
	goOnly      []string // names of the Go-only options given, for NewFiles to refuse
	observer    observe.Observer
	logger      *slog.Logger
}

func newOptions(opts []Option) (*options, error) {
	o := &options{
		platforms: []v1.Platform{{OS: "linux", Architecture: "amd64"}},
		base:      Static(),
		user:      DefaultUser,
		jobs:      2,
	}
	var bad option.List
	for _, opt := range opts {
		bad.Add(opt(o))
	}
	if err := bad.Err(""); err != nil {
		return nil, err
	}
	o.logger = observe.OrDiscardLogger(o.logger)
	if !o.createdSet {
		t, err := SourceDateEpoch()
		if err != nil {
			return nil, err
		}
		o.created = t
	}
	return o, nil
}

// SourceDateEpoch returns the time in the SOURCE_DATE_EPOCH environment variable,
// or the Unix epoch when it is unset. Builders use it unless [WithCreationTime] is given.
func SourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds: %w", s, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// WithPlatforms sets the platforms to build, e.g. "linux/amd64", "linux/arm64",
// "linux/arm/v7". The default is linux/amd64.
func WithPlatforms(platforms ...string) Option {
	return func(o *options) error {
		if len(platforms) == 0 {
			return fmt.Errorf("WithPlatforms: no platform given")
		}
		o.platforms = o.platforms[:0]
		seen := map[string]bool{}
		for _, s := range platforms {
			p, err := v1.ParsePlatform(s)
			if err != nil || p.OS == "" || p.Architecture == "" {
				return fmt.Errorf("platform %q: want os/arch[/variant]", s)
			}
			if seen[p.String()] {
				continue
			}
			seen[p.String()] = true
			o.platforms = append(o.platforms, *p)
		}
		return nil
	}
}

// WithBase sets the base image (default [Static]: CA certificates, tzdata and a
// nonroot user; [Scratch] for an image that holds only what the build adds).
func WithBase(b Base) Option {
	return func(o *options) error {
		if b == nil {
			return fmt.Errorf("WithBase: nil base")
		}
		o.base = b
		return nil
	}
}

// WithUser sets the user the image runs as (default [DefaultUser]), as USER[:GROUP]
// by name or number. Use "0" or "root" only when you must; an empty user (which
// would mean root) is refused.
func WithUser(user string) Option {
	return func(o *options) error {
		if user == "" {
			return fmt.Errorf("WithUser: empty user (say \"0\" for root)")
		}
		o.user = user
		return nil
	}
}

// WithEntrypoint sets the image's entrypoint. The Go builder sets it to its binary
// unless this option is given.
func WithEntrypoint(args ...string) Option {
	return func(o *options) error { o.entrypoint = slices.Clone(args); return nil }
}

// WithCmd sets the image's default arguments.
func WithCmd(args ...string) Option {
	return func(o *options) error { o.cmd = slices.Clone(args); return nil }
}

// WithWorkdir sets the image's working directory.
func WithWorkdir(dir string) Option {
	return func(o *options) error {
		if !path.IsAbs(dir) {
			return fmt.Errorf("WithWorkdir(%q): want an absolute path", dir)
		}
		o.workdir = dir
		return nil
	}
}

// WithPorts declares the ports the image listens on, e.g. "8080/tcp" or "53/udp"
// ("8080" means tcp).
func WithPorts(ports ...string) Option {
	return func(o *options) error {
		for _, p := range ports {
			num, proto, found := strings.Cut(p, "/")
			if !found {
				proto = "tcp"
			}
			n, err := strconv.Atoi(num)
			if err != nil || n < 1 || n > 65535 || (proto != "tcp" && proto != "udp" && proto != "sctp") {
				return fmt.Errorf("port %q: want NUMBER[/tcp|udp|sctp]", p)
			}
			o.ports = append(o.ports, fmt.Sprintf("%d/%s", n, proto))
		}
		return nil
	}
}

// WithEnv adds KEY=VALUE environment variables to the image config.
func WithEnv(env ...string) Option {
	return func(o *options) error {
		for _, kv := range env {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return fmt.Errorf("WithEnv(%q): want KEY=VALUE", kv)
			}
		}
		o.env = append(o.env, env...)
		return nil
	}
}

// WithLabels adds labels to the image config.
func WithLabels(labels map[string]string) Option {
	return func(o *options) error { o.labels = merge(o.labels, labels); return nil }
}

// WithAnnotations adds annotations to every image manifest and to the index.
func WithAnnotations(a map[string]string) Option {
	return func(o *options) error { o.annotations = merge(o.annotations, a); return nil }
}

// WithLdflags sets the -ldflags passed to go build, e.g. "-s -w -X main.version=1.2".
// Go builder only.
func WithLdflags(flags string) Option {
	return func(o *options) error { o.ldflags = flags; o.goOnly = append(o.goOnly, "WithLdflags"); return nil }
}

// WithBuildTags sets the -tags passed to go build. Go builder only.
func WithBuildTags(tags ...string) Option {
	return func(o *options) error {
		for _, t := range tags {
			if t == "" || strings.ContainsAny(t, ", \t\n\"'") {
				return fmt.Errorf("WithBuildTags(%q): want one build tag per argument", t)
			}
		}
		o.tags = append(o.tags, tags...)
		o.goOnly = append(o.goOnly, "WithBuildTags")
		return nil
	}
}

// WithCreationTime sets the time recorded in the image and its tar entries,
// instead of SOURCE_DATE_EPOCH or the Unix epoch.
func WithCreationTime(t time.Time) Option {
	return func(o *options) error { o.created, o.createdSet = t.UTC(), true; return nil }
}

// WithJobs sets how many platforms build at once (default 2).
func WithJobs(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("WithJobs(%d): want at least 1", n)
		}
		o.jobs = n
		return nil
	}
}

// WithBinaryCache keeps the Go builder's binaries in dir between builds, so that a
// rebuild with no source change skips the link step too: go build leaves an
// up-to-date output alone. Off by default; the directory is never pruned (one
// binary per source directory, package, platform and flags). Go builder only.
func WithBinaryCache(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return fmt.Errorf("WithBinaryCache: empty directory (leave the option out for no cache)")
		}
		o.binCache = dir
		o.goOnly = append(o.goOnly, "WithBinaryCache")
		return nil
	}
}

// WithGoEnv sets KEY=VALUE variables for the go command, e.g. GOCACHE, GOPROXY or
// GOFLAGS, over the caller's environment and the builder's reproducible defaults.
// CGO_ENABLED, GOOS and GOARCH stay the builder's. Go builder only.
func WithGoEnv(env ...string) Option {
	return func(o *options) error {
		for _, kv := range env {
			k, _, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("WithGoEnv(%q): want KEY=VALUE", kv)
			}
			if k == "CGO_ENABLED" || k == "GOOS" || k == "GOARCH" {
				return fmt.Errorf("WithGoEnv(%q): %s is set by the builder", kv, k)
			}
		}
		o.goEnv = append(o.goEnv, env...)
		o.goOnly = append(o.goOnly, "WithGoEnv")
		return nil
	}
}

// WithObserver sends the build's events to obs (nil: none): a step per platform,
// named after what it runs and the platform ("go build linux/arm64").
func WithObserver(obs observe.Observer) Option {
	return func(o *options) error { o.observer = obs; return nil }
}

// WithLogger logs what the builder runs at debug level (nil: nothing).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.logger = l; return nil }
}

// merge copies src into dst (a new map when dst is nil) and returns dst.
func merge(dst, src map[string]string) map[string]string {
	if dst == nil {
		dst = make(map[string]string, len(src))
	}
	maps.Copy(dst, src)
	return dst
}
