package sign

import (
	"fmt"
	"time"

	"github.com/shipkit/shipkit/scan/report"
)

// DefaultMaxReportAge is how old the newest vulnerability report may be unless a
// [VulnRule] says otherwise: a week.
const DefaultMaxReportAge = 7 * 24 * time.Hour

// NoMaxReportAge is the [VulnRule.MaxReportAge] that accepts a report of any age.
// Choose it knowingly: .att is a mutable tag, so whoever can push to the repository can
// delete the newest report and let an older, cleaner one decide (see [VulnRule]).
const NoMaxReportAge time.Duration = -1

// ReportClockSkew is how far in the future a report's scan time may be (clocks
// differ); a report dated later is denied.
const ReportClockSkew = 5 * time.Minute

// VulnRule is the one vulnerability judgement of shipkit: the [Condition] a
// [Policy] holds and the check deploy/gate's FailOn delegates to.
//
// It reads every trusted vulnerability attestation ([PredicateVuln], decoded by
// [DecodeVulnPredicate]: shipkit, grype or Trivy reports) and judges the newest by
// its scan time. An image passes when that report can be read, is no older than
// MaxReportAge, is not dated in the future (beyond [ReportClockSkew]), and has no
// finding at or above FailOn. Otherwise the reasons say which: [ReasonNoReport],
// [ReasonUnreadableReport], [ReasonStaleReport] or [ReasonVulnerable].
//
// "Newest" needs every report's date. A report whose date cannot be read might be
// the newest, so it denies the image ([ReasonUnreadableReport]); one whose date is
// known but whose findings cannot be read denies it when it is the newest. Reports
// of the same newest time are all judged.
//
// The age bound is the answer to a mutable tag: cosign keeps attestations under
// the image's .att tag, which anyone who can push to the repository can rewrite,
// for example to delete the newest report so that an older, clean one decides. The
// bound limits how old that older report can be; scan and attest images again at
// least that often (a rebuild, or a scheduled re-scan of what is deployed).
type VulnRule struct {
	// FailOn denies findings at or above this severity: Negligible to Critical
	// (report.ParseThreshold reads it). Unknown is not a threshold.
	FailOn report.Severity
	// MaxReportAge bounds the newest report's age, by its scan time
	// (metadata.scanFinishedOn). Zero means [DefaultMaxReportAge]; [NoMaxReportAge]
	// turns the bound off.
	MaxReportAge time.Duration
	// Now is the clock ages are measured with; nil means time.Now.
	Now func() time.Time
}

var _ Condition = VulnRule{}

// Validate checks that FailOn is a threshold and MaxReportAge is positive, zero or
// [NoMaxReportAge].
func (r VulnRule) Validate() error {
	if !r.FailOn.IsThreshold() {
		return fmt.Errorf("vulnerability rule: %s is not a severity threshold (want Negligible to Critical)", r.FailOn)
	}
	if r.MaxReportAge < 0 && r.MaxReportAge != NoMaxReportAge {
		return fmt.Errorf("vulnerability rule: maximum report age %s is negative: use sign.NoMaxReportAge to accept any age", r.MaxReportAge)
	}
	return nil
}

// maxAge returns the bound in force, 0 for none.
func (r VulnRule) maxAge() time.Duration {
	switch r.MaxReportAge {
	case 0:
		return DefaultMaxReportAge
	case NoMaxReportAge:
		return 0
	}
	return r.MaxReportAge
}

// String describes the rule; it is part of a policy's cache key.
func (r VulnRule) String() string {
	age := "of any age"
	if d := r.maxAge(); d > 0 {
		age = "at most " + d.String() + " old"
	}
	return fmt.Sprintf("no vulnerability at or above %s in the newest report, %s", r.FailOn, age)
}

// dated is one vulnerability attestation as read: its report, or why it cannot be
// read, and its scan time when known.
type dated struct {
	att      Attestation
	report   *report.Report
	err      error
	finished time.Time
}

// Check judges the attestations; see [VulnRule].
func (r VulnRule) Check(atts []Attestation) []Reason {
	if err := r.Validate(); err != nil {
		return []Reason{{Code: ReasonCondition, Message: err.Error()}}
	}
	var all []dated
	for _, a := range atts {
		if a.PredicateType != PredicateVuln {
			continue
		}
		rep, finished, err := decodeVuln(a.Predicate)
		all = append(all, dated{att: a, report: rep, err: err, finished: finished})
	}
	if len(all) == 0 {
		return []Reason{{Code: ReasonNoReport, Message: fmt.Sprintf(
			"no vulnerability report (%s) by a trusted signer to check for findings at or above %s", PredicateVuln, r.FailOn)}}
	}
	var newest time.Time
	var reasons []Reason
	for _, d := range all {
		if d.finished.IsZero() {
			// Without a date it may be the newest report: it cannot be passed over.
			why := "has no scan time (metadata.scanFinishedOn), so it may be the newest"
			if d.err != nil {
				why = fmt.Sprintf("cannot be read, nor its scan time: %v", d.err)
			}
			reasons = append(reasons, Reason{Code: ReasonUnreadableReport, Message: fmt.Sprintf(
				"vulnerability report signed by %s %s; an unreadable report is not a clean one", d.att.Signer, why)})
			continue
		}
		if d.finished.After(newest) {
			newest = d.finished
		}
	}
	if len(reasons) > 0 {
		return reasons
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	t := now()
	for _, d := range all {
		if !d.finished.Equal(newest) {
			continue // an older report does not decide
		}
		reasons = append(reasons, r.judge(d, t)...)
	}
	return reasons
}

// judge checks one newest report at time now.
func (r VulnRule) judge(d dated, now time.Time) []Reason {
	when := d.finished.UTC().Format(time.RFC3339)
	if d.err != nil {
		return []Reason{{Code: ReasonUnreadableReport, Message: fmt.Sprintf(
			"newest vulnerability report signed by %s (scan of %s) cannot be read: %v; an unreadable report is not a clean one",
			d.att.Signer, when, d.err)}}
	}
	if d.finished.After(now.Add(ReportClockSkew)) {
		return []Reason{{Code: ReasonStaleReport, Message: fmt.Sprintf(
			"newest vulnerability report signed by %s is dated %s, %s in the future: a report cannot be newer than now",
			d.att.Signer, when, d.finished.Sub(now).Round(time.Second))}}
	}
	if max := r.maxAge(); max > 0 && now.Sub(d.finished) > max {
		return []Reason{{Code: ReasonStaleReport, Message: fmt.Sprintf(
			"newest vulnerability report signed by %s is from %s, %s ago, older than the maximum report age %s: scan and attest the image again",
			d.att.Signer, when, now.Sub(d.finished).Round(time.Minute), max)}}
	}
	if err := d.report.FailOn(r.FailOn); err != nil {
		return []Reason{{Code: ReasonVulnerable, Message: fmt.Sprintf(
			"vulnerability report signed by %s (%s report, scan of %s): %v", d.att.Signer, d.report.Format, when, err)}}
	}
	return nil
}
