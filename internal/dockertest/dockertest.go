// Package dockertest gives tests a Docker engine and squall's images. Engine skips the test, with
// the reason, when no Docker engine answers; BuildImages builds images of ci/docker once per
// test process (static binaries built here into a temporary directory, then
// ci/docker/build-images.sh) and checks that each answers --version, skipping the test when a tool
// the build needs (bash, the docker CLI, redis-server) is missing. Nothing is ever pulled: every
// image is FROM scratch.
//
// Ryuk (testcontainers-go's reaper) must be disabled on these machines (it is an image from a
// registry): Engine sets TESTCONTAINERS_RYUK_DISABLED=true when it is unset, and tests terminate
// their containers themselves.
//
// Engine and BuildImages may be called from any test goroutine.
package dockertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// Tag is the tag of the images tests build.
const Tag = "test"

// Images are the image references (name:tag) tests run.
type Images struct {
	Refserver, Loadgen, Toxiproxy, Redis string
}

var (
	engineOnce sync.Once
	engine     *testcontainers.DockerClient
	engineErr  error

	imagesMu sync.Mutex
	built    = map[string]bool{} // images built by this process
)

// Engine returns the Docker client testcontainers-go uses, or skips the test when no engine answers.
func Engine(t testing.TB) *testcontainers.DockerClient {
	t.Helper()
	engineOnce.Do(func() {
		if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
			_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		engine, engineErr = testcontainers.NewDockerClientWithOpts(ctx)
		if engineErr == nil {
			_, engineErr = engine.Ping(ctx, client.PingOptions{})
		}
	})
	if engineErr != nil {
		t.Skipf("no Docker engine answers (%v): container tests skipped", engineErr)
	}
	return engine
}

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// AllImages are the images of ci/docker.
var AllImages = []string{"refserver", "loadgen", "toxiproxy", "redis"}

// BuildImages builds the named images (default AllImages) tagged Tag, once per process each, and
// returns their references; the test is skipped when no engine answers or a tool the build needs
// is missing.
func BuildImages(t testing.TB, names ...string) Images {
	t.Helper()
	Engine(t)
	if len(names) == 0 {
		names = AllImages
	}
	imagesMu.Lock()
	defer imagesMu.Unlock()
	var todo []string
	for _, n := range names {
		if !built[n] {
			todo = append(todo, n)
		}
	}
	if len(todo) > 0 {
		skip, err := build(todo)
		switch {
		case skip != "":
			t.Skip(skip)
		case err != nil:
			t.Fatal(err)
		}
		for _, n := range todo {
			built[n] = true
		}
	}
	ref := func(name string) string { return "squall/" + name + ":" + Tag }
	return Images{Refserver: ref("refserver"), Loadgen: ref("loadgen"), Toxiproxy: ref("toxiproxy"), Redis: ref("redis")}
}

// build builds names: it returns why it cannot here (the test skips), or what failed.
func build(names []string) (string, error) {
	tools := []string{"bash", "docker", "go"}
	if slices.Contains(names, "redis") {
		tools = append(tools, "redis-server")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("%s not installed: the images cannot be built here (make deps installs redis-server)", tool), nil
		}
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.APIVersion}}").CombinedOutput(); err != nil {
		return fmt.Sprintf("the docker CLI cannot reach the engine (%v: %s): the images cannot be built here", err, strings.TrimSpace(string(out))), nil
	}
	root := Root()
	dir, err := os.MkdirTemp("", "squall-images-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bin")
	start := time.Now()
	// The binaries build side by side (linking dominates, one core each).
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, name := range []string{"refserver", "loadgen"} {
		if !slices.Contains(names, name) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("go", "build", "-ldflags", "-X github.com/squall-dev/squall/internal/version.Version="+Tag,
				"-o", filepath.Join(bin, name), "./cmd/"+name)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("building %s: %v\n%s", name, err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	args := append([]string{"ci/docker/build-images.sh", Tag, "squall"}, names...)
	cmd := exec.Command("bash", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "SQUALL_BIN_DIR="+bin, "SQUALL_IMAGES_CTX="+filepath.Join(dir, "images"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("ci/docker/build-images.sh: %v\n%s", err, out)
	}
	args = append([]string{"ci/docker/check-images.sh", Tag, "squall"}, names...)
	cmd = exec.Command("bash", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("ci/docker/check-images.sh: an image does not answer --version: %v\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "dockertest: %v built and answering --version in %v\n", names, time.Since(start).Round(100*time.Millisecond))
	return "", nil
}

// Logs returns the last lines of a container's output, for failure messages.
func Logs(ctx context.Context, c testcontainers.Container, lines int) string {
	rc, err := c.Logs(ctx)
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		b.Write(buf[:n])
		if err != nil || b.Len() > 4<<20 {
			break
		}
	}
	all := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
