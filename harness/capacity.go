package harness

// What one connection costs, behind the resources the Kubernetes manifests (ci/k8s) give an agent.
// DESIGN §8 and loadgen's benchmarks hold the measurements; loadgen doctor's estimate uses the
// scale bench's measurements of idle-but-alive clients (docs/bench.md, cmd/loadgen/doctor.go).
const (
	// ClientMemory is the load generator's resident memory per idle simulated client: the peak
	// during the ramp (VmHWM) of the scale bench's 100 000 clients on epoll loops, 7.5 KB, rounded
	// up (docs/bench.md).
	ClientMemory = 8 << 10
	// GatewayConnMemory is the reference gateway's memory per idle connection: the same run's
	// peak, 5.9 KB on the nbio transport, rounded up.
	GatewayConnMemory = 6 << 10
	// KernelLoopbackConnMemory is the kernel's memory per idle loopback connection (both sockets,
	// ~3.6 KB each), which no process's resident memory shows.
	KernelLoopbackConnMemory = 7680
	// AgentBaseMemory is what an agent holds besides its clients: runtime, HTTP server, histograms.
	AgentBaseMemory = 64 << 20
)

// AgentMemory is the memory an agent (or worker process) needs for clients simulated clients
// against a gateway elsewhere: its clients' resident memory, the kernel's for their one socket
// each, and the base. A container's memory limit must cover it: the kernel's socket memory is
// charged to the container.
func AgentMemory(clients int) uint64 {
	return uint64(clients)*(ClientMemory+KernelLoopbackConnMemory/2) + AgentBaseMemory
}
