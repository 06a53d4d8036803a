package fleet

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	deployfleet "github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/scan/report"
)

// Report is the fleet's vulnerabilities, by advisory, and what became of each
// image. It is plain data: [Report.WriteJSON] and [ReadJSON] round-trip it, so a
// caller keeps today's report to [Compare] tomorrow's with.
type Report struct {
	// Generated is when the report was made.
	Generated time.Time `json:"generated"`
	// Scanner is the tool and database that matched (times cleared).
	Scanner *report.Tool `json:"scanner,omitempty"`
	// Advisories are the advisories affecting at least one image, most severe
	// first, then by ID.
	Advisories []Advisory `json:"advisories"`
	// Images are the inventory's images, each with its status and uses, sorted.
	Images []ImageStatus `json:"images"`
	// Unresolved are the inventory's references that no digest was found for:
	// not checked.
	Unresolved []deployfleet.Unresolved `json:"unresolved,omitempty"`
	// Clusters are the inventory's clusters, with the errors of those that could
	// not be read.
	Clusters []deployfleet.ClusterInventory `json:"clusters,omitempty"`
	// Diff is the difference from the previous report, when one was given.
	Diff *Diff `json:"diff,omitempty"`
}

// Advisory is one vulnerability and everything it affects.
type Advisory struct {
	ID          string          `json:"id"`
	Aliases     []string        `json:"aliases,omitempty"`
	Severity    report.Severity `json:"severity"`
	CVSS        []report.CVSS   `json:"cvss,omitempty"`
	Description string          `json:"description,omitempty"`
	DataSource  string          `json:"dataSource,omitempty"`
	URLs        []string        `json:"urls,omitempty"`
	// FixedIn are the fix versions, over every package affected.
	FixedIn []string `json:"fixedIn,omitempty"`
	// Affected are the images (per platform and package) it affects.
	Affected []Affected `json:"affected"`
}

// Affected is one package of one image an advisory affects.
type Affected struct {
	// Image is the image by digest, as the inventory names it.
	Image string `json:"image"`
	// Platform is the platform image's (os/arch), when the image is an index.
	Platform  string   `json:"platform,omitempty"`
	Package   string   `json:"package"`
	Version   string   `json:"version"`
	Type      string   `json:"type"`
	PURL      string   `json:"purl,omitempty"`
	Locations []string `json:"locations,omitempty"`
	FixedIn   []string `json:"fixedIn,omitempty"`
	FixState  string   `json:"fixState,omitempty"`
	// Source says where the packages came from: [SourceAttestation] or
	// [SourceLayers].
	Source string `json:"source"`
	// Workloads are where the image runs or is declared.
	Workloads []Workload `json:"workloads"`
}

// Workload is one workload of one cluster.
type Workload struct {
	Cluster   string `json:"cluster"`
	Namespace string `json:"namespace,omitempty"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	// Running is set when a pod of the workload runs the image (not only its
	// template declares it).
	Running bool `json:"running"`
}

// String is cluster/namespace/Kind/name.
func (w Workload) String() string {
	return strings.Join([]string{w.Cluster, cmp.Or(w.Namespace, "-"), w.Kind, w.Name}, "/")
}

// ImageStatus is what became of one image.
type ImageStatus struct {
	Image  string `json:"image"`
	Status Status `json:"status"`
	// Reasons say why an image was not scanned from a verified SBOM (the
	// verifier's reasons, the decoder's errors).
	Reasons []Reason `json:"reasons,omitempty"`
	// SBOMFormats are the formats of the SBOMs decoded.
	SBOMFormats []string `json:"sbomFormats,omitempty"`
	// Source is where the packages matched came from (empty: none matched).
	Source string `json:"source,omitempty"`
	// Findings counts the findings.
	Findings int               `json:"findings"`
	Uses     []deployfleet.Use `json:"uses"`
}

// Reason is one reason an image was not scanned from a verified SBOM.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Unverified returns the images that were not scanned from a verified SBOM.
func (r *Report) Unverified() []ImageStatus {
	var out []ImageStatus
	for _, s := range r.Images {
		if s.Status != Scanned {
			out = append(out, s)
		}
	}
	return out
}

// ErrUnchecked is wrapped by [Report.FailOn]'s error when images of the fleet were
// not checked: a fleet where nothing could be checked must not pass the gate.
var ErrUnchecked = errors.New("fleet images not checked")

// ErrUnreadClusters is wrapped by [Report.FailOn]'s error when clusters of the
// inventory could not be read: what runs there was not checked at all.
var ErrUnreadClusters = errors.New("fleet clusters not read")

// FailOnOption changes what [Report.FailOn] counts.
type FailOnOption func(*failOn)

type failOn struct{ allowUnchecked, allowUnread bool }

// AllowUnreadClusters makes [Report.FailOn] judge the clusters that were read,
// ignoring those that could not be (they stay listed in [Report.Clusters] with
// their errors).
func AllowUnreadClusters() FailOnOption {
	return func(f *failOn) { f.allowUnread = true }
}

// AllowUnchecked makes [Report.FailOn] judge only the images that were checked,
// ignoring those it could not check (they stay listed in [Report.Unverified]
// and [Report.Unresolved]).
func AllowUnchecked() FailOnOption {
	return func(f *failOn) { f.allowUnchecked = true }
}

// FailOn answers the gate as scan/report's does: nil when no advisory at or above
// threshold affects an image and every image was checked. An advisory at or
// above threshold gives a *report.SeverityError (errors.Is report.ErrSeverity)
// listing one finding per advisory and package, most severe first. An image not
// checked (no verified SBOM matched, and no layer fallback scanned it; or a
// reference no digest was found for) gives an error wrapping [ErrUnchecked] that
// names them, unless [AllowUnchecked] is given. A cluster of the inventory that
// could not be read gives an error wrapping [ErrUnreadClusters] that names it and
// its error, unless [AllowUnreadClusters] is given. The errors are joined
// (errors.Join) when several apply.
func (r *Report) FailOn(threshold report.Severity, opts ...FailOnOption) error {
	var o failOn
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	var hit []report.Finding
	for _, a := range r.Advisories {
		if a.Severity < threshold {
			continue
		}
		seen := map[string]bool{}
		for _, af := range a.Affected {
			if k := af.Package + "@" + af.Version; !seen[k] {
				seen[k] = true
				hit = append(hit, a.finding(af))
			}
		}
	}
	var errs []error
	if len(hit) > 0 {
		sort.SliceStable(hit, func(i, j int) bool { return hit[i].Severity > hit[j].Severity })
		errs = append(errs, &report.SeverityError{Threshold: threshold, Findings: hit})
	}
	if !o.allowUnchecked {
		errs = append(errs, r.unchecked())
	}
	if !o.allowUnread {
		errs = append(errs, r.unread())
	}
	return errors.Join(errs...)
}

// unread returns the error naming the clusters that could not be read, or nil.
func (r *Report) unread() error {
	var names []string
	for _, c := range r.Clusters {
		if c.Error != "" || c.Err != nil {
			msg := c.Error
			if msg == "" {
				msg = c.Err.Error()
			}
			names = append(names, c.Name+" ("+msg+")")
		}
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d of the fleet's clusters could not be read (AllowUnreadClusters to judge only the others): %s",
		ErrUnreadClusters, len(names), strings.Join(names, "; "))
}

// unchecked returns the error naming the images that were not checked, or nil.
func (r *Report) unchecked() error {
	var names []string
	for _, s := range r.Images {
		if s.Status == Scanned || (s.Source == SourceLayers && s.Status != Failed) {
			continue
		}
		names = append(names, s.Image+" ("+string(s.Status)+")")
	}
	for _, u := range r.Unresolved {
		names = append(names, u.Image+" (unresolved)")
	}
	if len(names) == 0 {
		return nil
	}
	n := len(names)
	const shown = 10
	if n > shown {
		names = append(names[:shown:shown], fmt.Sprintf("and %d more", n-shown))
	}
	return fmt.Errorf("%w: %d of the fleet's images were not checked (see the report's statuses; AllowUnchecked to judge only the others): %s",
		ErrUnchecked, n, strings.Join(names, ", "))
}

// finding is the scan/report finding of one affected package.
func (a Advisory) finding(af Affected) report.Finding {
	return report.Finding{
		ID: a.ID, Aliases: a.Aliases, Package: af.Package, Version: af.Version, Type: af.Type, PURL: af.PURL,
		Locations: af.Locations, FixedIn: af.FixedIn, FixState: af.FixState, Severity: a.Severity, CVSS: a.CVSS,
		DataSource: a.DataSource, URLs: a.URLs, Description: a.Description,
	}
}

// workloads turns an image's uses into its workloads, one per cluster and
// workload, running if any use runs.
func workloads(uses []deployfleet.Use) []Workload {
	idx := map[Workload]int{}
	var out []Workload
	for _, u := range uses {
		w := Workload{Cluster: u.Cluster, Namespace: u.Workload.Namespace, Kind: u.Workload.Kind, Name: u.Workload.Name}
		if i, ok := idx[w]; ok {
			out[i].Running = out[i].Running || u.Running
			continue
		}
		idx[w] = len(out)
		w.Running = u.Running
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Workload) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// assemble groups the images' findings by advisory.
func assemble(inv *deployfleet.Inventory, results []imageResult, now time.Time) *Report {
	rep := &Report{Generated: now.UTC(), Advisories: []Advisory{}, Images: make([]ImageStatus, 0, len(results)),
		Unresolved: inv.Unresolved, Clusters: inv.Clusters}
	byID := map[string]*Advisory{}
	for _, r := range results {
		rep.Images = append(rep.Images, r.status)
		if rep.Scanner == nil {
			rep.Scanner = r.tool
		}
		if len(r.findings) == 0 {
			continue
		}
		wls := workloads(r.status.Uses)
		seen := map[string]bool{}
		for _, pf := range r.findings {
			f := pf.f
			key := f.ID + "\x00" + pf.platform + "\x00" + f.Package + "\x00" + f.Version + "\x00" + f.Type
			if seen[key] {
				continue
			}
			seen[key] = true
			a := byID[f.ID]
			if a == nil {
				a = &Advisory{ID: f.ID, Aliases: f.Aliases, Severity: f.Severity, CVSS: f.CVSS, Description: f.Description,
					DataSource: f.DataSource, URLs: f.URLs}
				byID[f.ID] = a
			}
			a.Severity = max(a.Severity, f.Severity)
			for _, v := range f.FixedIn {
				a.FixedIn = appendNew(a.FixedIn, v)
			}
			a.Affected = append(a.Affected, Affected{
				Image: r.status.Image, Platform: pf.platform, Package: f.Package, Version: f.Version, Type: f.Type,
				PURL: f.PURL, Locations: f.Locations, FixedIn: f.FixedIn, FixState: f.FixState, Source: pf.source,
				Workloads: wls,
			})
		}
	}
	for _, a := range byID {
		slices.Sort(a.FixedIn)
		slices.SortFunc(a.Affected, func(x, y Affected) int {
			return cmp.Or(strings.Compare(x.Image, y.Image), strings.Compare(x.Platform, y.Platform),
				strings.Compare(x.Package, y.Package), strings.Compare(x.Version, y.Version))
		})
		rep.Advisories = append(rep.Advisories, *a)
	}
	slices.SortFunc(rep.Advisories, func(x, y Advisory) int {
		return cmp.Or(cmp.Compare(y.Severity, x.Severity), strings.Compare(x.ID, y.ID))
	})
	slices.SortFunc(rep.Images, func(x, y ImageStatus) int { return strings.Compare(x.Image, y.Image) })
	return rep
}

// Diff is what changed between two reports.
type Diff struct {
	// Previous is when the previous report was made.
	Previous time.Time `json:"previous"`
	// New are the advisories affecting an image (platform, package) now that did
	// not before: a new advisory, or a new image.
	New []Change `json:"new,omitempty"`
	// Fixed are those that affected an image before and do not now: the image was
	// checked and is clean of it, or no longer runs anywhere.
	Fixed []Change `json:"fixed,omitempty"`
	// Unchecked are those that affected an image before that is still in the
	// fleet but could not be checked now (see its status): neither new nor fixed.
	Unchecked []Change `json:"unchecked,omitempty"`
}

// Change is one advisory affecting one package of one image.
type Change struct {
	Advisory  string          `json:"advisory"`
	Severity  report.Severity `json:"severity"`
	Image     string          `json:"image"`
	Platform  string          `json:"platform,omitempty"`
	Package   string          `json:"package"`
	Version   string          `json:"version"`
	FixedIn   []string        `json:"fixedIn,omitempty"`
	Workloads []Workload      `json:"workloads,omitempty"`
}

func (c Change) key() string {
	return strings.Join([]string{c.Advisory, c.Image, c.Platform, c.Package, c.Version}, "\x00")
}

func (r *Report) changes() map[string]Change {
	out := map[string]Change{}
	for _, a := range r.Advisories {
		for _, af := range a.Affected {
			c := Change{Advisory: a.ID, Severity: a.Severity, Image: af.Image, Platform: af.Platform,
				Package: af.Package, Version: af.Version, FixedIn: af.FixedIn, Workloads: af.Workloads}
			out[c.key()] = c
		}
	}
	return out
}

// Compare returns what changed from prev to cur: each advisory, image, platform
// and package affected now and not before (New), before and not now (Fixed),
// or before, on an image still in the fleet that cur could not check
// (Unchecked). Each list is sorted most severe first.
func Compare(prev, cur *Report) *Diff {
	d := &Diff{Previous: prev.Generated}
	before, now := prev.changes(), cur.changes()
	checked := map[string]bool{}
	present := map[string]bool{}
	for _, s := range cur.Images {
		present[s.Image] = true
		checked[s.Image] = s.Source != ""
	}
	for k, c := range now {
		if _, ok := before[k]; !ok {
			d.New = append(d.New, c)
		}
	}
	for k, c := range before {
		if _, ok := now[k]; ok {
			continue
		}
		if present[c.Image] && !checked[c.Image] {
			d.Unchecked = append(d.Unchecked, c)
		} else {
			d.Fixed = append(d.Fixed, c)
		}
	}
	for _, l := range [][]Change{d.New, d.Fixed, d.Unchecked} {
		slices.SortFunc(l, func(x, y Change) int {
			return cmp.Or(cmp.Compare(y.Severity, x.Severity), strings.Compare(x.key(), y.key()))
		})
	}
	return d
}
