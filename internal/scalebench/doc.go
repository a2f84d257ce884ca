// Package scalebench measures how many idle-but-alive WebSocket clients this machine holds and
// what each one costs: it runs a scale scenario with the loadgen binary, samples every process of
// the run from /proc while it goes (resident memory and CPU of the gateway nodes and of the
// generator's workers separately, the kernel's TCP memory from /proc/net/sockstat and
// /proc/slabinfo), runs a lean gorilla/websocket server and client pair at the same count as the
// reference, and writes the figures as a section of docs/bench.md (`make bench-scale`).
//
// Nothing forces a garbage collection: the memory figures are the peak of the periodic VmRSS
// samples during the hold (and VmHWM), as an operator would see them.
//
// Concurrency: a Sampler is driven by one goroutine (Run); its Samples may be read once Run has
// returned. The lean pair's roles (ServeLean, DialLean) run in child processes of the bench binary.
package scalebench
