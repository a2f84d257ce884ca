package reports

// RenderOptions is what a rendering needs besides the result.
type RenderOptions struct {
	// Glossary explains the SLO metrics and the gateway flaws (a zero one renders without
	// explanations); scenarios.Glossary() is the catalogue's.
	Glossary Glossary
}

// baselineCases are the JUnit test cases of a comparison with a baseline (none without one).
func baselineCases(suite string, opts RenderOptions) []junitCase { return nil }
