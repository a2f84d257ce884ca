// Package reports holds the result model of a run — reports.Result, the canonical result.json — and
// its renderings.
//
// # The schema
//
// This package owns result.json's schema: every value in the file is a type declared here with its
// own JSON tags, and the packages that measure (loadgen/stats, loadgen/telemetry, chaos, loadgen)
// are converted into it by the From functions (StatsFrom, SeriesFrom, TelemetryFrom, FaultFrom,
// OverheadFrom, WorkerSummaryFrom), so that a change inside them does not change the file. Names are
// snake_case; a duration carries its unit in the name and is an integer of nanoseconds
// ("duration_ns", "lag_p99_ns"); instants are RFC 3339 strings. The one exception is "plan", the
// plan as the load generator serialised it, kept verbatim to reproduce the run.
//
// Histograms carry a readable summary and the histogram itself in the HDR V2 compressed encoding
// (base64, field "hdr"), from which they decode without loss: several workers' histograms merge
// into what one process recording everything would have produced, and any percentile can be read
// again. The summary is derived from "hdr"; on reading it is recomputed, not trusted.
//
// SchemaVersion is the version written. ReadJSON reads it and every earlier version (schema 1, whose
// worker summaries and fault records had other packages' shapes, is converted into the current
// types), refuses a newer one with ErrNewerSchema, and reports a file that does not decode — cut
// short or edited by hand — with a *DecodeError naming the JSON path, line and column of the value
// at fault. A compatible addition to the schema (a new optional field) keeps the version; anything
// else bumps it and teaches ReadJSON the previous one.
//
// # Reading a run
//
// HeadlineOf sums a run up in the figures every view shows under the same names (errors counted by
// CountErrors: every failed connect, abnormal close, refusal and client-side cut). Compare sets a
// result against a baseline of the same plan (a *PlanMismatchError otherwise): one
// MetricComparison per SLO and per headline figure, judged against Tolerances. Diagnose classifies
// what went wrong — client side, between, server side — with the evidence (Diagnosis, Finding).
//
// # Renderings
//
// From a Result alone (any schema ReadJSON reads) the package renders report.html (WriteHTML: one
// self-contained page — inline CSS and SVG charts drawn by gonum.org/v1/plot, no script, nothing
// loaded from elsewhere — that prints and reads on a phone), junit.xml (WriteJUnit: a test case for
// the run, one per SLO, one per baseline check) and summary.md (WriteSummary: the verdict, SLO table,
// diagnosis and key figures for a pull-request comment). RenderOptions carries what the result does
// not: the Glossary that explains metrics and flaws (the scenario catalogue's) and a Comparison with a
// baseline. WriteRenderings renders all three in memory, then writes each atomically. The template
// and stylesheet are embedded from templates/.
//
// # Concurrency
//
// A Result is a plain value: build it in one goroutine, then share it read-only; every method of
// its parts, the renderings included, may then be called from several goroutines. A Histogram
// decodes its "hdr" on first use and keeps the decoded histogram (shared by every copy of the
// value, read-only). WriteJSON writes
// atomically (temporary file, fsync, rename), so a reader never sees half a result, not even when a
// run is interrupted.
package reports
