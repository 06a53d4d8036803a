// Package sigstoretest runs a virtual sigstore in process, on 127.0.0.1, for tests
// of keyless signing and verification: an OIDC issuer that mints ID tokens, a
// Fulcio that turns a token into a short-lived code-signing certificate, a Rekor
// (v1 API) that logs entries and returns signed entry timestamps and inclusion
// proofs, and an RFC 3161 timestamp authority, together with the trusted root
// (sigstore's trusted_root.json) a verifier needs for all of them.
//
// Everything is signed with real keys and verifies with sigstore-go. It is built on
// sigstore-go's pkg/testing/ca: its root CA generator, and its VirtualSigstore's
// Rekor log key, signed entry timestamps and checkpoints. The Fulcio intermediate
// and the timestamp authority's certificates are generated here, because the
// VirtualSigstore keeps their keys to itself and issues only for keys it generates.
//
// It is a test double, not a server to trust: the OIDC issuer mints a token for
// whoever asks ([Sigstore.IDToken]), each log entry is logged in a tree of its own
// (index 0 of a tree of size 1, with the entry's own log index in the signed entry
// timestamp), and the Fulcio embeds no signed certificate timestamps (the trusted
// root lists no CT log).
package sigstoretest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/go-openapi/runtime"
	"github.com/go-openapi/strfmt"
	"github.com/go-openapi/swag/conv"
	"github.com/sigstore/rekor/pkg/generated/models"
	"github.com/sigstore/rekor/pkg/types"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/merkle/rfc6962"

	// The entry kinds the virtual Rekor accepts (those sigstore-go's signer writes).
	_ "github.com/sigstore/rekor/pkg/types/dsse/v0.0.1"
	_ "github.com/sigstore/rekor/pkg/types/hashedrekord/v0.0.1"
)

// DefaultIssuer is the OIDC issuer the virtual sigstore's tokens name, and so the
// issuer its certificates carry, unless [WithIssuer] says otherwise.
const DefaultIssuer = "https://oidc.sigstoretest.invalid"

// maxRequest bounds what a handler reads of a request body.
const maxRequest = 1 << 20

// Sigstore is a running virtual sigstore. Its methods are safe for concurrent use.
type Sigstore struct {
	// URL is the base URL of all its services (http://127.0.0.1:PORT): Fulcio's
	// /api/v2/signingCert and Rekor's /api/v1/log/entries are under it, as for
	// sigstore-go's sign.NewFulcio and sign.NewRekor BaseURL.
	URL string
	// TSAURL is the timestamp authority's full URL (URL + "/api/v1/timestamp"), as for
	// sigstore-go's sign.NewTimestampAuthority.
	TSAURL string

	srv *httptest.Server
	cfg config

	oidcKey *ecdsa.PrivateKey

	fulcioRoot, fulcioInter *x509.Certificate
	fulcioInterKey          *ecdsa.PrivateKey

	tsaRoot, tsaInter, tsaLeaf *x509.Certificate
	tsaLeafKey                 *ecdsa.PrivateKey

	rekor *ca.VirtualSigstore

	trustedRoot *root.TrustedRoot

	mu       sync.Mutex
	logIndex int64
	entries  int
}

type config struct {
	issuer   string
	now      func() time.Time
	lifetime time.Duration
}

// Option configures a virtual sigstore.
type Option func(*config)

// WithIssuer sets the OIDC issuer URL its tokens and certificates name.
func WithIssuer(iss string) Option { return func(c *config) { c.issuer = iss } }

// WithClock sets the clock of its Fulcio (a certificate's notBefore), Rekor
// (integrated time) and timestamp authority (the time stamped). The trusted root's
// validity periods span from 24 hours before the start to 24 hours after it, so a
// clock within that window yields material the root accepts.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithCertificateLifetime sets how long Fulcio's certificates are valid (default 10
// minutes, as sigstore's public Fulcio).
func WithCertificateLifetime(d time.Duration) Option { return func(c *config) { c.lifetime = d } }

// Start starts a virtual sigstore on 127.0.0.1. Close stops it.
func Start(opts ...Option) (*Sigstore, error) {
	s := &Sigstore{cfg: config{issuer: DefaultIssuer, now: time.Now, lifetime: 10 * time.Minute}}
	for _, o := range opts {
		o(&s.cfg)
	}
	if s.cfg.issuer == "" || s.cfg.now == nil || s.cfg.lifetime <= 0 {
		return nil, errors.New("sigstoretest: empty issuer, nil clock or lifetime not above 0")
	}
	if err := s.generate(); err != nil {
		return nil, fmt.Errorf("sigstoretest: generating keys and certificates: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/signingCert", s.signingCert)
	mux.HandleFunc("POST /api/v1/log/entries", s.logEntry)
	mux.HandleFunc("POST /api/v1/timestamp", s.timestamp)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	s.TSAURL = s.srv.URL + "/api/v1/timestamp"
	return s, nil
}

// Close stops the servers.
func (s *Sigstore) Close() { s.srv.Close() }

// generate makes the CAs: Fulcio's root and intermediate, the TSA's root,
// intermediate and leaf, and the Rekor log (sigstore-go's VirtualSigstore).
func (s *Sigstore) generate() error {
	start := time.Now()
	var err error
	s.oidcKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	var rootKey *ecdsa.PrivateKey
	if s.fulcioRoot, rootKey, err = ca.GenerateRootCa(); err != nil {
		return err
	}
	// sigstore-go's intermediates are valid from 2 minutes ago: too short for a
	// clock set back, so the intermediates are made here with a wider window.
	if s.fulcioInter, s.fulcioInterKey, err = intermediate(s.fulcioRoot, rootKey, "sigstoretest-fulcio-intermediate", x509.ExtKeyUsageCodeSigning, start); err != nil {
		return err
	}
	var tsaRootKey, tsaInterKey *ecdsa.PrivateKey
	if s.tsaRoot, tsaRootKey, err = ca.GenerateRootCa(); err != nil {
		return err
	}
	if s.tsaInter, tsaInterKey, err = intermediate(s.tsaRoot, tsaRootKey, "sigstoretest-tsa-intermediate", x509.ExtKeyUsageTimeStamping, start); err != nil {
		return err
	}
	if s.tsaLeafKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	if s.tsaLeaf, err = tsaLeaf(s.tsaInter, tsaInterKey, &s.tsaLeafKey.PublicKey); err != nil {
		return err
	}
	if s.rekor, err = ca.NewVirtualSigstore(); err != nil {
		return err
	}
	// The VirtualSigstore's own RekorLogs names the log by the bytes of its hex ID,
	// which trusted_root.json would carry as the key ID: the log is described here
	// with the raw ID (the SHA-256 of the key's DER).
	rekorLogs := map[string]*root.TransparencyLog{}
	for id, l := range s.rekor.RekorLogs() {
		raw, err := hex.DecodeString(id)
		if err != nil {
			return err
		}
		rekorLogs[id] = &root.TransparencyLog{
			BaseURL:             l.BaseURL,
			ID:                  raw,
			ValidityPeriodStart: start.Add(-24 * time.Hour),
			HashFunc:            l.HashFunc,
			PublicKey:           l.PublicKey,
			SignatureHashFunc:   l.SignatureHashFunc,
		}
	}
	s.trustedRoot, err = root.NewTrustedRoot(root.TrustedRootMediaType01,
		[]root.CertificateAuthority{&root.FulcioCertificateAuthority{
			Root:                s.fulcioRoot,
			Intermediates:       []*x509.Certificate{s.fulcioInter},
			ValidityPeriodStart: start.Add(-24 * time.Hour),
			URI:                 "https://fulcio.sigstoretest.invalid",
		}},
		map[string]*root.TransparencyLog{},
		[]root.TimestampingAuthority{&root.SigstoreTimestampingAuthority{
			Root:                s.tsaRoot,
			Intermediates:       []*x509.Certificate{s.tsaInter},
			Leaf:                s.tsaLeaf,
			ValidityPeriodStart: start.Add(-24 * time.Hour),
			URI:                 "https://tsa.sigstoretest.invalid",
		}},
		rekorLogs)
	return err
}

func intermediate(parent *x509.Certificate, parentKey crypto.Signer, cn string, eku x509.ExtKeyUsage, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(24 * time.Hour)
	if notAfter.After(parent.NotAfter) {
		notAfter = parent.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"sigstoretest"}},
		NotBefore:             parent.NotBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{eku},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	c, err := create(tmpl, parent, &key.PublicKey, parentKey)
	return c, key, err
}

func tsaLeaf(parent *x509.Certificate, parentKey crypto.Signer, pub crypto.PublicKey) (*x509.Certificate, error) {
	// An RFC 3161 signer's EKU extension must be critical and name only time stamping.
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(3),
		Subject:         pkix.Name{CommonName: "sigstoretest-tsa", Organization: []string{"sigstoretest"}},
		NotBefore:       parent.NotBefore,
		NotAfter:        parent.NotAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}},
	}
	return create(tmpl, parent, pub, parentKey)
}

func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// TrustedRoot returns the trusted root of the virtual sigstore: its Fulcio CA, its
// Rekor log key and its timestamp authority, as sigstore-go's root.TrustedRoot.
func (s *Sigstore) TrustedRoot() *root.TrustedRoot { return s.trustedRoot }

// TrustedRootJSON returns the trusted root as trusted_root.json holds it
// (application/vnd.dev.sigstore.trustedroot+json;version=0.1).
func (s *Sigstore) TrustedRootJSON() ([]byte, error) { return s.trustedRoot.MarshalJSON() }

// FulcioRootPEM returns Fulcio's root certificate, PEM encoded.
func (s *Sigstore) FulcioRootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.fulcioRoot.Raw})
}

// LogEntries says how many entries its Rekor has logged.
func (s *Sigstore) LogEntries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries
}

// IDToken mints an OIDC ID token (a JWT signed with ES256) for subject, from the
// virtual issuer, valid for 10 minutes by the sigstore's clock. A subject with an
// "@" is put in a verified email claim, as Google's and Dex's tokens carry it, and
// Fulcio certifies it as an email SAN; any other subject is the token's sub, and
// Fulcio certifies it as a URI SAN (as for CI workload identities).
func (s *Sigstore) IDToken(subject string) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.oidcKey}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	now := s.cfg.now()
	claims := map[string]any{
		"iss": s.cfg.issuer,
		"sub": subject,
		"aud": "sigstore",
		"iat": now.Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(10 * time.Minute).Unix(),
	}
	if strings.Contains(subject, "@") {
		claims["email"] = subject
		claims["email_verified"] = true
	}
	return jwt.Signed(sig).Claims(claims).Serialize()
}

// tokenClaims are the claims Fulcio reads.
type tokenClaims struct {
	Issuer        string `json:"iss"`
	Subject       string `json:"sub"`
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
	Expiry        int64  `json:"exp"`
}

// identity checks the bearer token and returns the subject it certifies.
func (s *Sigstore) identity(r *http.Request) (string, error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", errors.New("no bearer token")
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	var c tokenClaims
	if err := tok.Claims(&s.oidcKey.PublicKey, &c); err != nil {
		return "", fmt.Errorf("token signature: %w", err)
	}
	if c.Issuer != s.cfg.issuer {
		return "", fmt.Errorf("token from issuer %q, want %q", c.Issuer, s.cfg.issuer)
	}
	if s.cfg.now().Unix() > c.Expiry {
		return "", errors.New("token expired")
	}
	if c.Email != "" {
		if !c.EmailVerified {
			return "", errors.New("email not verified")
		}
		return c.Email, nil
	}
	if c.Subject == "" {
		return "", errors.New("token names no subject")
	}
	return c.Subject, nil
}

// fulcioRequest is Fulcio's v2 signingCert request, public key form.
type fulcioRequest struct {
	PublicKeyRequest struct {
		PublicKey struct {
			Algorithm string `json:"algorithm"`
			Content   string `json:"content"`
		} `json:"publicKey"`
		ProofOfPossession []byte `json:"proofOfPossession"`
	} `json:"publicKeyRequest"`
}

// signingCert is Fulcio's POST /api/v2/signingCert: it checks the token and the
// proof that the caller holds the key (a signature over the subject), and issues a
// code-signing certificate naming the subject and the issuer.
func (s *Sigstore) signingCert(w http.ResponseWriter, r *http.Request) {
	subject, err := s.identity(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var req fulcioRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequest)).Decode(&req); err != nil {
		http.Error(w, "request: "+err.Error(), http.StatusBadRequest)
		return
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey([]byte(req.PublicKeyRequest.PublicKey.Content))
	if err != nil {
		http.Error(w, "public key: "+err.Error(), http.StatusBadRequest)
		return
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		http.Error(w, "public key: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := v.VerifySignature(strings.NewReader(string(req.PublicKeyRequest.ProofOfPossession)), strings.NewReader(subject)); err != nil {
		http.Error(w, "proof of possession: "+err.Error(), http.StatusBadRequest)
		return
	}
	leaf, err := s.issue(subject, pub)
	if err != nil {
		http.Error(w, "issuing: "+err.Error(), http.StatusInternalServerError)
		return
	}
	var chain []string
	for _, c := range []*x509.Certificate{leaf, s.fulcioInter, s.fulcioRoot} {
		chain = append(chain, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	resp := map[string]any{"signedCertificateDetachedSct": map[string]any{"chain": map[string]any{"certificates": chain}}}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// Fulcio's certificate extensions naming the OIDC issuer.
var (
	oidIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// issue makes a Fulcio certificate for pub naming subject (an email or URI SAN) and
// the issuer, valid for the configured lifetime from the clock's now.
func (s *Sigstore) issue(subject string, pub crypto.PublicKey) (*x509.Certificate, error) {
	issuerV2, err := asn1.MarshalWithParams(s.cfg.issuer, "utf8")
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := s.cfg.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    now,
		NotAfter:     now.Add(s.cfg.lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{
			{Id: oidIssuerV1, Value: []byte(s.cfg.issuer)},
			{Id: oidIssuerV2, Value: issuerV2},
		},
	}
	if strings.Contains(subject, "@") {
		tmpl.EmailAddresses = []string{subject}
	} else {
		u, err := url.Parse(subject)
		if err != nil || u.Scheme == "" {
			return nil, fmt.Errorf("subject %q is neither an email nor a URI", subject)
		}
		tmpl.URIs = []*url.URL{u}
	}
	return create(tmpl, s.fulcioInter, pub, s.fulcioInterKey)
}

// logEntry is Rekor's POST /api/v1/log/entries: the proposed entry is checked (the
// entry kind's own validation verifies its signature) and canonicalized, and the
// answer carries the entry with a signed entry timestamp and an inclusion proof.
func (s *Sigstore) logEntry(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	pe, err := models.UnmarshalProposedEntry(io.LimitReader(r.Body, maxRequest), runtime.JSONConsumer())
	if err != nil {
		http.Error(w, "proposed entry: "+err.Error(), http.StatusBadRequest)
		return
	}
	entry, err := types.CreateVersionedEntry(pe)
	if err != nil {
		http.Error(w, "proposed entry: "+err.Error(), http.StatusBadRequest)
		return
	}
	body, err := types.CanonicalizeEntry(ctx, entry)
	if err != nil {
		http.Error(w, "canonicalizing: "+err.Error(), http.StatusBadRequest)
		return
	}
	// The entry as logged must verify too (its signature against its key).
	logged, err := models.UnmarshalProposedEntry(strings.NewReader(string(body)), runtime.JSONConsumer())
	if err == nil {
		_, err = types.UnmarshalEntry(logged)
	}
	if err != nil {
		http.Error(w, "logged entry: "+err.Error(), http.StatusBadRequest)
		return
	}
	logID, err := s.rekor.RekorLogID()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	index := s.logIndex
	s.logIndex++
	s.entries++
	s.mu.Unlock()
	integrated := s.cfg.now().Unix()
	b64 := base64.StdEncoding.EncodeToString(body)
	set, err := s.rekor.RekorSignPayload(tlog.RekorPayload{Body: b64, IntegratedTime: integrated, LogIndex: index, LogID: logID})
	if err != nil {
		http.Error(w, "signing entry timestamp: "+err.Error(), http.StatusInternalServerError)
		return
	}
	proof, err := s.rekor.GetInclusionProof(body)
	if err != nil {
		http.Error(w, "inclusion proof: "+err.Error(), http.StatusInternalServerError)
		return
	}
	uuid := hex.EncodeToString(rfc6962.DefaultHasher.HashLeaf(body))
	resp := models.LogEntry{uuid: models.LogEntryAnon{
		Body:           b64,
		IntegratedTime: conv.Pointer(integrated),
		LogID:          conv.Pointer(logID),
		LogIndex:       conv.Pointer(index),
		Verification: &models.LogEntryAnonVerification{
			SignedEntryTimestamp: strfmt.Base64(set),
			InclusionProof:       proof,
		},
	}}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", uuid)
	w.Header().Set("Location", "/api/v1/log/entries/"+uuid)
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(resp)
}

// timestamp is the timestamp authority's POST /api/v1/timestamp: an RFC 3161
// request in, a signed time-stamp response out.
func (s *Sigstore) timestamp(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxRequest))
	if err != nil {
		http.Error(w, "request: "+err.Error(), http.StatusBadRequest)
		return
	}
	req, err := timestamp.ParseRequest(raw)
	if err != nil {
		http.Error(w, "timestamp request: "+err.Error(), http.StatusBadRequest)
		return
	}
	ts := timestamp.Timestamp{
		HashAlgorithm:     req.HashAlgorithm,
		HashedMessage:     req.HashedMessage,
		Time:              s.cfg.now(),
		Nonce:             req.Nonce,
		Policy:            asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 2},
		AddTSACertificate: req.Certificates,
		ExtraExtensions:   req.Extensions,
	}
	resp, err := ts.CreateResponseWithOpts(s.tsaLeaf, s.tsaLeafKey, crypto.SHA256)
	if err != nil {
		http.Error(w, "timestamp: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/timestamp-reply")
	_, _ = w.Write(resp)
}
