package analysis

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// measurementJSON is the JSON form of a Measurement: a value that is not a finite
// number is null (JSON has no NaN) and the error is its message.
type measurementJSON struct {
	Check string    `json:"check"`
	Time  time.Time `json:"time"`
	Value *float64  `json:"value"`
	Phase Phase     `json:"phase"`
	Error string    `json:"error,omitempty"`
}

// MarshalJSON writes m as {"check", "time", "value", "phase", "error"}, with a null
// value when it is NaN or ±Inf, so a rollout can record its measurements.
func (m Measurement) MarshalJSON() ([]byte, error) {
	j := measurementJSON{Check: m.Check, Time: m.Time, Phase: m.Phase}
	if !math.IsNaN(m.Value) && !math.IsInf(m.Value, 0) {
		j.Value = &m.Value
	}
	if m.Err != nil {
		j.Error = m.Err.Error()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes; a null value becomes NaN and the error
// comes back as its message only.
func (m *Measurement) UnmarshalJSON(b []byte) error {
	var j measurementJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("analysis: measurement: %w", err)
	}
	*m = Measurement{Check: j.Check, Time: j.Time, Value: math.NaN(), Phase: j.Phase}
	if j.Value != nil {
		m.Value = *j.Value
	}
	if j.Error != "" {
		m.Err = errors.New(j.Error)
	}
	return nil
}
