package vuln

import (
	"fmt"
	"io"

	"github.com/anchore/grype/grype"
	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/db/v6/distribution"
	"github.com/anchore/grype/grype/db/v6/installation"
	"github.com/anchore/grype/grype/vulnerability"
	"gorm.io/gorm"
)

// lowLevelReader is what grype's own code asserts of a v6 Reader to load rows by
// id (v6's unexported lowLevelReader): the store's gorm handle.
type lowLevelReader interface {
	GetDB() *gorm.DB
}

// store is grype's vulnerability provider over a v6 store whose small lookup
// tables are remembered (see lookupMemo). prov is grype's own provider value over
// the store's own reader, so what grype asserts of either (its EOL checker, its
// data provenance, its gorm handle) holds as for grype.LoadVulnerabilityDB's.
type store struct {
	prov vulnerability.Provider
	memo *lookupMemo // nil when the store did not expose its gorm handle
}

// Close closes the database, then the memo.
func (s *store) Close() error {
	err := s.prov.Close()
	if s.memo != nil {
		if cerr := s.memo.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// loadStore opens the installed v6 database of inst as
// grype.LoadVulnerabilityDB(distribution.Config{}, inst, false) does (the same
// checks of the description, age and checksum, the same reader and provider),
// and routes the store's queries through a lookupMemo of at most maxEntries
// results of at most maxRows rows each.
func loadStore(inst installation.Config, maxEntries, maxRows int) (*store, *vulnerability.ProviderStatus, error) {
	client, err := distribution.NewClient(distribution.Config{})
	if err != nil {
		return nil, nil, fmt.Errorf("unable to create distribution client: %w", err)
	}
	cur, err := installation.NewCurator(inst, client)
	if err != nil {
		return nil, nil, fmt.Errorf("unable to create curator: %w", err)
	}
	st := cur.Status()
	if st.Error != nil {
		return nil, nil, st.Error
	}
	rdr, err := cur.Reader()
	if err != nil {
		return nil, nil, fmt.Errorf("unable to create db reader: %w", err)
	}
	s := &store{}
	if ll, ok := rdr.(lowLevelReader); ok {
		s.memo = installLookupMemo(ll.GetDB(), maxEntries, maxRows)
	}
	s.prov = v6.NewVulnerabilityProvider(rdr)
	return s, &st, nil
}

// load opens the installed database of inst for Open: with loadStore, or with
// grype's own loader when the config says so (the tests compare the two).
func load(inst installation.Config, c config) (vulnerability.Provider, io.Closer, *vulnerability.ProviderStatus, error) {
	if c.grypeLoader {
		prov, st, err := grype.LoadVulnerabilityDB(distribution.Config{}, inst, false)
		if err != nil {
			return nil, nil, nil, err
		}
		return prov, prov, st, nil
	}
	entries, rows := c.memoEntries, c.memoRows
	if entries == 0 {
		entries = maxLookupEntries
	}
	if rows == 0 {
		rows = maxLookupRows
	}
	s, st, err := loadStore(inst, entries, rows)
	if err != nil {
		return nil, nil, nil, err
	}
	return s.prov, s, st, nil
}
