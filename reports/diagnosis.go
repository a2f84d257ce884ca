package reports

// Finding classes: where in the path from the browser tab to the gateway the trouble lies, as the
// 3 AM flowchart of a WebSocket incident splits it (client side, load balancer/proxy, server side).
const (
	// ClassClient: the clients make the trouble worse or cause it — reconnect storms, constant
	// retry without backoff, clients backing off in lock step.
	ClassClient = "client-side"
	// ClassBetween: something between clients and gateway cuts connections — 1006 closes at a
	// regular connection age while the gateway counted no heartbeat timeout: a proxy or load
	// balancer idle timeout.
	ClassBetween = "between"
	// ClassServer: the gateway itself — memory growth, orphaned subscriptions, slow consumers,
	// shedding and rejections, event-loop (scheduling) lag.
	ClassServer = "server-side"
)

// Finding severities.
const (
	SeverityInfo     = "info"     // worth knowing; not a fault on its own
	SeverityWarning  = "warning"  // a fault that degrades the service
	SeverityCritical = "critical" // a fault that breaks the service for many clients
)

// Diagnosis is what the run's figures say went wrong, classified the way an on-call engineer
// triages a WebSocket incident: each Finding names a class (client side, between, server side),
// a title and the evidence — the figures of this run — that point there. A nil Diagnosis in a
// Result means none was made (an older result); an empty Findings means nothing pointed anywhere.
type Diagnosis struct {
	Findings []Finding `json:"findings"`
}

// Finding is one conclusion of a Diagnosis.
type Finding struct {
	// Class is ClassClient, ClassBetween or ClassServer.
	Class string `json:"class"`
	// Code is a stable identifier of the rule that found it ("reconnect_storm",
	// "proxy_idle_timeout", "memory_growth", ...), for tests and tooling.
	Code string `json:"code"`
	// Title is one line for people ("Reconnect storm: 740 reconnects/s at the peak").
	Title string `json:"title"`
	// Severity is SeverityInfo, SeverityWarning or SeverityCritical.
	Severity string `json:"severity"`
	// Evidence are the figures that point there, one sentence each.
	Evidence []string `json:"evidence"`
	// Fix is what the flowchart suggests doing about it, one sentence.
	Fix string `json:"fix,omitempty"`
}

// Classes lists the finding classes in the flowchart's order.
var Classes = []string{ClassClient, ClassBetween, ClassServer}
