// Package dockertest gives tests a Docker engine and squall's images. Engine skips the test, with
// the reason, when no Docker engine answers; Images builds the four images of ci/docker once per
// test process (static binaries built here into a temporary directory, then
// ci/docker/build-images.sh) and checks that each answers --version, skipping the test when a tool
// the build needs (bash, the docker CLI, redis-server) is missing. Nothing is ever pulled: every
// image is FROM scratch.
//
// Ryuk (testcontainers-go's reaper) must be disabled on these machines (it is an image from a
// registry): Engine sets TESTCONTAINERS_RYUK_DISABLED=true when it is unset, and tests terminate
// their containers themselves.
//
// Engine and Images may be called from any test goroutine.
package dockertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

	imagesOnce sync.Once
	images     Images
	imagesSkip string // why the images cannot be built here (the test skips)
	imagesErr  error  // the build failed (the test fails)
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

// BuildImages builds the images tagged Tag (once per process) and returns their references; the
// test is skipped when no engine answers or a tool the build needs is missing.
func BuildImages(t testing.TB) Images {
	t.Helper()
	Engine(t)
	imagesOnce.Do(func() { images, imagesSkip, imagesErr = build() })
	switch {
	case imagesSkip != "":
		t.Skip(imagesSkip)
	case imagesErr != nil:
		t.Fatal(imagesErr)
	}
	return images
}

func build() (Images, string, error) {
	for _, tool := range []string{"bash", "docker", "redis-server", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return Images{}, fmt.Sprintf("%s not installed: the images cannot be built here (make deps installs redis-server)", tool), nil
		}
	}
	root := Root()
	dir, err := os.MkdirTemp("", "squall-images-")
	if err != nil {
		return Images{}, "", err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bin")
	start := time.Now()
	for _, name := range []string{"refserver", "loadgen"} {
		cmd := exec.Command("go", "build", "-ldflags", "-X github.com/squall-dev/squall/internal/version.Version="+Tag,
			"-o", filepath.Join(bin, name), "./cmd/"+name)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return Images{}, "", fmt.Errorf("building %s: %v\n%s", name, err, out)
		}
	}
	cmd := exec.Command("bash", "ci/docker/build-images.sh", Tag)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "SQUALL_BIN_DIR="+bin, "SQUALL_IMAGES_CTX="+filepath.Join(dir, "images"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return Images{}, "", fmt.Errorf("ci/docker/build-images.sh: %v\n%s", err, out)
	}
	cmd = exec.Command("bash", "ci/docker/check-images.sh", Tag)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return Images{}, "", fmt.Errorf("ci/docker/check-images.sh: an image does not answer --version: %v\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "dockertest: images built in %v\n", time.Since(start).Round(100*time.Millisecond))
	ref := func(name string) string { return "squall/" + name + ":" + Tag }
	return Images{Refserver: ref("refserver"), Loadgen: ref("loadgen"), Toxiproxy: ref("toxiproxy"), Redis: ref("redis")}, "", nil
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
