package dockertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
)

// FDLimit is the open-file limit of every container a test starts: what one process may hold on
// these machines.
const FDLimit = 20000

// Network is a Docker network with a subnet of its own, so that containers get fixed addresses
// that survive a restart and a reconnect (tests and clients reach them by address from the host).
type Network struct {
	Name   string
	Subnet netip.Prefix
	net    *testcontainers.DockerNetwork

	mu   sync.Mutex
	next netip.Addr
}

// NewNetwork creates a network with a free /24 subnet and removes it when the test ends.
func NewNetwork(t testing.TB) *Network {
	t.Helper()
	Engine(t)
	ctx := t.Context()
	var lastErr error
	for range 8 {
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 28 + byte(rand.IntN(3)), byte(rand.IntN(256)), 0}), 24)
		gw := subnet.Addr().Next()
		nw, err := network.New(ctx, network.WithIPAM(&mobynet.IPAM{Config: []mobynet.IPAMConfig{{Subnet: subnet, Gateway: gw}}}),
			network.WithLabels(map[string]string{"squall.test": t.Name()}))
		if err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "overlap") {
				continue
			}
			break
		}
		n := &Network{Name: nw.Name, Subnet: subnet, net: nw, next: gw.Next()}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := nw.Remove(cctx); err != nil {
				t.Logf("removing network %s: %v", nw.Name, err)
			}
		})
		return n
	}
	t.Fatalf("creating a Docker network: %v", lastErr)
	return nil
}

// Container is a container a test started on a Network.
type Container struct {
	*testcontainers.DockerContainer
	Name string
	IP   netip.Addr
}

// Addr is IP:port.
func (c *Container) Addr(port int) string { return netip.AddrPortFrom(c.IP, uint16(port)).String() }

// Spec is a container to start on a Network.
type Spec struct {
	Name  string   // its name on the network (a DNS alias there)
	Image string   // an image reference (BuildImages)
	Cmd   []string // the image's arguments
	Env   map[string]string
	// IP is its address (Reserve); zero takes the next free one.
	IP netip.Addr
	// Binds are host:container[:ro] bind mounts.
	Binds []string
}

// Reserve takes the next free address of the network, for a container started later (a
// certificate must name it first).
func (n *Network) Reserve() netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	ip := n.next
	n.next = ip.Next()
	return ip
}

// Run starts s on the network at its address, with an open-file limit of FDLimit; the container
// is terminated when the test ends (its last lines logged when the test failed). It does not wait
// for the container to serve: use WaitHTTP or WaitTCP.
func (n *Network) Run(t testing.TB, s Spec) *Container {
	t.Helper()
	ip := s.IP
	if !ip.IsValid() {
		ip = n.Reserve()
	}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithName(fmt.Sprintf("%s-%s", n.Name, s.Name)),
		network.WithNetwork([]string{s.Name}, n.net),
		testcontainers.WithEndpointSettingsModifier(func(m map[string]*mobynet.EndpointSettings) {
			if ep := m[n.Name]; ep != nil {
				ep.IPAMConfig = &mobynet.EndpointIPAMConfig{IPv4Address: ip}
			}
		}),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.Ulimits = append(hc.Ulimits, &container.Ulimit{Name: "nofile", Soft: FDLimit, Hard: FDLimit})
			hc.Binds = append(hc.Binds, s.Binds...)
		}),
		testcontainers.WithCmd(s.Cmd...),
		testcontainers.WithLabels(map[string]string{"squall.test": t.Name()}),
	}
	if len(s.Env) > 0 {
		opts = append(opts, testcontainers.WithEnv(s.Env))
	}
	c, err := testcontainers.Run(t.Context(), s.Image, opts...)
	if c != nil {
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if t.Failed() {
				t.Logf("--- last lines of %s:\n%s", s.Name, Logs(cctx, c, 30))
			}
			if err := c.Terminate(cctx); err != nil {
				t.Logf("terminating %s: %v", s.Name, err)
			}
		})
	}
	if err != nil {
		t.Fatalf("starting %s (%s): %v", s.Name, s.Image, err)
	}
	return &Container{DockerContainer: c, Name: s.Name, IP: ip}
}

// WaitHTTP polls url from the test process until it answers 200 or timeout passes.
func WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	if err := PollHTTP(t.Context(), url, timeout); err != nil {
		t.Fatal(err)
	}
}

// PollHTTP polls url until it answers 200, ctx ends or timeout passes.
func PollHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl := &http.Client{Timeout: time.Second}
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := cl.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer 200 within %v: %v", url, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitTCP dials addr from the test process until it accepts or timeout passes.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not accept within %v: %v", addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
