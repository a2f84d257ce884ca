package dockerchaos_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/chaos/dockerchaos"
	"github.com/squall-dev/squall/internal/dockertest"
)

// TestContainerFaults runs every container fault through a chaos timeline on a real gateway
// container and checks, after each step, what the engine and the gateway's /healthz say.
func TestContainerFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containers")
	}
	img := dockertest.BuildImages(t, "refserver")
	eng := dockertest.Engine(t)
	nw := dockertest.NewNetwork(t)
	gw := nw.Run(t, dockertest.Spec{Name: "node-0", Image: img.Refserver, Cmd: []string{"--addr", "0.0.0.0:8080", "--auth-secret", "s"}})
	health := "http://" + gw.Addr(8080) + "/healthz"
	dockertest.WaitHTTP(t, health, 30*time.Second)

	c := dockerchaos.New(eng, gw.GetContainerID(), "node-0", dockerchaos.Options{StopTimeout: 2 * time.Second})
	r := &chaos.Runner{Containers: map[string]chaos.Container{"node-0": c}, StepTimeout: 30 * time.Second}

	state := func() string {
		in, err := eng.ContainerInspect(t.Context(), gw.GetContainerID(), client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return string(in.Container.State.Status)
	}
	answers := func() bool {
		cl := &http.Client{Timeout: 500 * time.Millisecond}
		resp, err := cl.Get(health)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	onNet := func() bool {
		in, err := eng.ContainerInspect(t.Context(), gw.GetContainerID(), client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ep := in.Container.NetworkSettings.Networks[nw.Name]
		return ep != nil && ep.IPAddress == gw.IP
	}
	net := map[string]string{chaos.ParamNetwork: nw.Name}
	steps := []struct {
		step  chaos.Step
		check func() error
	}{
		{chaos.Step{Action: chaos.ActionContainerKill}, func() error { return expect(state() == "exited", "killed container is %s", state()) }},
		{chaos.Step{Action: chaos.ActionContainerStart}, func() error { return dockertest.PollHTTP(t.Context(), health, 20*time.Second) }},
		{chaos.Step{Action: chaos.ActionContainerPause}, func() error {
			return expect(state() == "paused" && !answers(), "paused container is %s, answers %v", state(), answers())
		}},
		{chaos.Step{Action: chaos.ActionContainerResume}, func() error { return dockertest.PollHTTP(t.Context(), health, 20*time.Second) }},
		{chaos.Step{Action: chaos.ActionNetworkDisconnect, Params: net}, func() error {
			return expect(!onNet() && !answers(), "disconnected container on the network: %v, answers %v", onNet(), answers())
		}},
		{chaos.Step{Action: chaos.ActionNetworkConnect, Params: net}, func() error {
			if !onNet() {
				return expect(false, "reconnected container did not get %s back", gw.IP)
			}
			return dockertest.PollHTTP(t.Context(), health, 20*time.Second)
		}},
		{chaos.Step{Action: chaos.ActionContainerRestart}, func() error { return dockertest.PollHTTP(t.Context(), health, 20*time.Second) }},
		{chaos.Step{Action: chaos.ActionContainerStop}, func() error { return expect(state() == "exited", "stopped container is %s", state()) }},
	}
	for _, s := range steps {
		s.step.Target = "node-0"
		evs, err := r.Run(t.Context(), time.Time{}, chaos.Timeline{s.step})
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s: %v (%d events)", s.step.Action, err, len(evs))
		}
		if evs[0].Error != "" {
			t.Fatalf("%s failed: %s", s.step.Action, evs[0].Error)
		}
		if err := s.check(); err != nil {
			t.Fatalf("after %s: %v", s.step.Action, err)
		}
		t.Logf("%s took %v", s.step.Action, evs[0].Took.Round(time.Millisecond))
	}

	// Connect without a disconnect has no address to restore.
	if err := c.Connect(context.WithoutCancel(t.Context()), nw.Name); err == nil {
		t.Error("Connect of a network never disconnected succeeded")
	}
}

func expect(ok bool, format string, a ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, a...)
}
