// Package e2e holds squall's end-to-end tests on real engines: a gateway cluster, its Redis, a
// Toxiproxy and load-generator agents, each in a container of the images ci/docker builds, on one
// Docker network, driven by the controller in the test process through harness.Run, with faults
// (a node killed, a node partitioned from Redis, an agent lost) injected by the fault timeline on
// the run's own containers (chaos/dockerchaos).
//
// The tests need a Docker engine; where none answers, or the images cannot be built (no docker
// CLI, no redis-server to package), they are skipped with the reason. They build the images
// themselves (internal/dockertest) and start one cluster for all of them, so that together they
// take a couple of minutes. Ryuk is disabled (TESTCONTAINERS_RYUK_DISABLED=true): the tests remove
// their containers and network themselves.
//
// The package has no non-test code.
package e2e
