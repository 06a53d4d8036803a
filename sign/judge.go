package sign

import (
	"slices"
)

// Judge applies the attestation rules of the policy — RequiredPredicates and
// Conditions — to what a verifier verified, and returns every reason they fail;
// none when they pass. Signatures, thresholds and trusted keys are the verifier's
// business: a policy holding only attestation rules judges too, which is how the
// deploy gate checks its own RequireAttestations and FailOn.
//
// An image index whose [Verified.Platforms] are set is judged per platform: each
// platform image must meet every rule on its own attestations together with the
// index's (a report attested to the platform image or to the index, provenance
// attested once to the index). A reason about a platform starts with it
// ("linux/arm64: "). Without Platforms the index's own attestations are judged.
func (p *Policy) Judge(v *Verified) []Reason {
	if v == nil {
		return []Reason{{Code: ReasonMissingAttestation, Message: "nothing was verified"}}
	}
	if len(v.Platforms) == 0 {
		return p.judge(v.Attestations, "")
	}
	var reasons []Reason
	for _, pl := range v.Platforms {
		atts := append(slices.Clone(pl.Attestations), v.Attestations...)
		reasons = append(reasons, p.judge(atts, platformLabel(pl)+": ")...)
	}
	return reasons
}

func (p *Policy) judge(atts []Attestation, prefix string) []Reason {
	var reasons []Reason
	for _, t := range p.RequiredPredicates {
		if !slices.ContainsFunc(atts, func(a Attestation) bool { return a.PredicateType == t }) {
			reasons = append(reasons, Reason{Code: ReasonMissingAttestation,
				Message: prefix + "no attestation of predicate type " + t + " by a trusted signer"})
		}
	}
	for _, c := range p.Conditions {
		for _, r := range c.Check(atts) {
			if r.Code == "" {
				r.Code = ReasonCondition
			}
			r.Message = prefix + r.Message
			reasons = append(reasons, r)
		}
	}
	return reasons
}

// platformLabel names a platform image in reasons: its platform, else its digest.
func platformLabel(pl PlatformVerified) string {
	if pl.Platform != nil {
		return pl.Platform.String()
	}
	return pl.Digest.DigestStr()
}
