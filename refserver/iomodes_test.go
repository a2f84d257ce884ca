package refserver

import "testing"

// TestIOModes runs the core lifecycle tests against a gateway with the goroutine-per-connection
// WebSocket transport (IOGoroutine); the rest of the package runs them with the default (IONbio).
// The whole package runs under one model with SQUALL_TEST_IO=goroutine (or nbio), and then this
// test runs the core tests under the other.
func TestIOModes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the lifecycle tests again under the other I/O model")
	}
	core := []struct {
		name string
		run  func(*testing.T)
	}{
		{"RoomPresenceBroadcastAck", TestRoomPresenceBroadcastAck},
		{"ShutdownClosesEveryone", TestShutdownClosesEveryone},
		{"ShutdownWithoutGrace", TestShutdownWithoutGrace},
		{"ReconnectsCounted", TestReconnectsCounted},
		{"TCPCloseAnnouncedWithinOneSecond", TestTCPCloseAnnouncedWithinOneSecond},
		{"SilentClientClosedWithinTimeoutPlusInterval", TestSilentClientClosedWithinTimeoutPlusInterval},
		{"ServerPingsKeepQuietClientAlive", TestServerPingsKeepQuietClientAlive},
		{"BadInput", TestBadInput},
		{"RoomLimit", TestRoomLimit},
		{"PerUserConnLimit", TestPerUserConnLimit},
		{"PerIPConnLimit", TestPerIPConnLimit},
		{"MaxConnsAnswers503BeforeUpgrade", TestMaxConnsAnswers503BeforeUpgrade},
		{"SeqReorderAndDuplicate", TestSeqReorderAndDuplicate},
		{"SeqGapNeverFills", TestSeqGapNeverFills},
		{"ResumeWithinWindow", TestResumeWithinWindow},
		{"HelloWithSession", TestHelloWithSession},
		{"DrainAdminEndpoint", TestDrainAdminEndpoint},
		{"FlawNoDrain", TestFlawNoDrain},
		{"FallbackInteropWithWebSocket", TestFallbackInteropWithWebSocket},
		{"SlowConsumerClosed", TestSlowConsumerClosed},
		{"ThousandConnectionsEndingEveryWay", TestThousandConnectionsEndingEveryWay},
		{"ThousandReconnectsOneToken", TestThousandReconnectsOneToken},
	}
	saved := testIO
	t.Cleanup(func() { testIO = saved })
	for _, mode := range []string{IOGoroutine, IONbio} {
		if saved == mode || saved == "" && mode == DefaultConfig().IO {
			continue // the package already runs under it
		}
		testIO = mode
		for _, tc := range core {
			t.Run(mode+"/"+tc.name, tc.run)
		}
	}
}
