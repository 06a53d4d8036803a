// Package option owns what every stage's options share: the one sentinel an
// option given a value it cannot use wraps ([ErrInvalid], re-exported as
// ErrInvalidOption by deploy, mesh and sign/cosign), and the list that
// gathers every such option into one error, so a constructor names them all at once.
package option

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by the error about an option given a value it cannot use.
// The stages re-export it (deploy.ErrInvalidOption, mesh.ErrInvalidOption, ...): it
// is the same value everywhere, so errors.Is(err, deploy.ErrInvalidOption) holds
// for an invalid option of any stage.
var ErrInvalid = errors.New("invalid option")

// Errorf returns an error wrapping [ErrInvalid] (and whatever the format wraps with
// %w) that reads "invalid option: " and the formatted message.
func Errorf(format string, args ...any) error {
	return Wrap(fmt.Errorf(format, args...))
}

// Wrap returns err wrapping [ErrInvalid], read "invalid option: " and err's
// message; err already wrapping it, or nil, is returned as is.
func Wrap(err error) error {
	if err == nil || errors.Is(err, ErrInvalid) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrInvalid, err)
}

// List gathers the errors of the options given values they cannot use. The zero
// value is empty and ready to use.
type List struct {
	errs []error
}

// Addf records an option given a value it cannot use, as [Errorf] does.
func (l *List) Addf(format string, args ...any) {
	l.errs = append(l.errs, Errorf(format, args...))
}

// Add records err (a nil err is ignored), wrapped as [Wrap] does.
func (l *List) Add(err error) {
	if err != nil {
		l.errs = append(l.errs, Wrap(err))
	}
}

// Err returns nil when nothing was recorded, else one error joining every
// recorded one (one per line, as errors.Join writes them) and others (nil ones
// are left out, and others need not be about options), each prefixed with prefix
// and ": " unless prefix is empty.
func (l *List) Err(prefix string, others ...error) error {
	all := make([]error, 0, len(l.errs)+len(others))
	for _, err := range append(l.errs[:len(l.errs):len(l.errs)], others...) {
		if err == nil {
			continue
		}
		if prefix != "" {
			err = fmt.Errorf("%s: %w", prefix, err)
		}
		all = append(all, err)
	}
	return errors.Join(all...)
}
