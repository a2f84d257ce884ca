package reports

import "testing"

// TestWorkerTableVia: the worker table says what ran each shard and how the controller talked to it.
func TestWorkerTableVia(t *testing.T) {
	r := &Result{Workers: []Worker{
		{Index: 0, Addr: "10.0.0.5:7070", Kind: WorkerAgent, Transport: "tls", Status: WorkerOK},
		{Index: 1, Addr: "10.0.0.6:7070", Kind: WorkerAgent, Transport: "http-insecure", Status: WorkerLost},
		{Index: 2, Status: WorkerOK}, // a schema-1 result: nothing recorded
	}}
	want := []string{"agent, tls", "agent, http-insecure", "-"}
	tab := r.workerTable()
	if tab.Header[2] != "via" {
		t.Fatalf("header %v", tab.Header)
	}
	for i, row := range tab.Rows {
		if row[0] != []string{"0", "1", "2"}[i] || row[2] != want[i] || len(row) != len(tab.Header) {
			t.Errorf("row %d: %v, want via %q", i, row, want[i])
		}
	}
}
