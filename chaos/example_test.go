package chaos_test

import (
	"context"
	"fmt"
	"time"

	"github.com/squall-dev/squall/chaos"
)

// A cohort dials the proxy instead of the gateway; the timeline adds and
// removes a latency toxic and cuts the proxy, and every step is recorded.
func ExampleRunner() {
	ctx := context.Background()
	gateway, _ := chaos.NewEchoServer("") // stands in for the gateway
	defer gateway.Close()

	proxies := chaos.NewEmbedded(nil, chaos.EmbeddedOptions{})
	defer proxies.Close()
	cohort, err := proxies.Proxy(ctx, "cohort-a", "127.0.0.1:0", gateway.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = cohort.Listen // the cohort's clients dial this address

	tl := chaos.Timeline{
		{At: 0, Action: chaos.ActionAddToxic, Target: "cohort-a", Toxic: chaos.Toxic{
			Name: "lag", Type: chaos.Latency, Attributes: map[string]int64{"latency": 100, "jitter": 10}}},
		{At: 20 * time.Millisecond, Action: chaos.ActionRemoveToxic, Target: "cohort-a", Toxic: chaos.Toxic{Name: "lag"}},
		{At: 40 * time.Millisecond, Action: chaos.ActionDisableProxy, Target: "cohort-a"},
		{At: 40 * time.Millisecond, Action: chaos.ActionEnableProxy, Target: "cohort-b"}, // fails: recorded, run goes on
	}
	r := &chaos.Runner{Proxies: proxies}
	events, err := r.Run(ctx, time.Time{}, tl)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range events {
		fmt.Printf("%v %s %s %v error=%q\n", e.At, e.Action, e.Target, e.Params, e.Error)
	}
	// Output:
	// 0s add_toxic cohort-a map[jitter:10 latency:100 stream:downstream toxic:lag toxicity:1 type:latency] error=""
	// 20ms remove_toxic cohort-a map[toxic:lag] error=""
	// 40ms disable_proxy cohort-a map[] error=""
	// 40ms enable_proxy cohort-b map[] error="chaos: proxy \"cohort-b\": proxy not found"
}
