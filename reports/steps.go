package reports

import "time"

// StepRamp is a capacity run graded step by step: every hold phase of a step ramp, with the ramp
// before it, graded on the figures of its own window, and the knee — the last step of the run of
// passing steps from the first, the capacity the scenario's SLOs allow.
type StepRamp struct {
	Steps []RampStep `json:"steps"`
	// Knee is the index in Steps of the last step of the run of passing steps from the first;
	// -1 when the first step already broke an SLO.
	Knee int `json:"knee"`
	// KneeReached is false when every step held: the knee lies beyond the last step, and Knee
	// names the last step, the most the run proved.
	KneeReached bool `json:"knee_reached"`
}

// RampStep is one step of a StepRamp.
type RampStep struct {
	// Phase is the hold phase's name.
	Phase string `json:"phase"`
	// Start and End bound the step's window: its ramp and its hold.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Connections is the most connections open in any second of the step.
	Connections int64 `json:"connections"`
	// SentRate and DeliveredRate are broadcasts sent and received by the clients per second over
	// the step.
	SentRate      float64 `json:"sent_per_second"`
	DeliveredRate float64 `json:"delivered_per_second"`
	// Pass is set when every SLO held over the step; SLOs are the verdicts of the step's window.
	Pass bool         `json:"pass"`
	SLOs []SLOVerdict `json:"slos,omitempty"`
}
