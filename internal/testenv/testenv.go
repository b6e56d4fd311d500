// Package testenv decides whether tests that need outside machinery (a
// Docker engine, the runtime image) run, skip or fail: they skip only when
// the machinery is truly absent, and MLAB_REQUIRE_DOCKER=1 turns that skip
// into a failure so CI cannot pass by skipping.
package testenv

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// DockerRequired reports whether MLAB_REQUIRE_DOCKER=1 is set.
func DockerRequired() bool { return os.Getenv("MLAB_REQUIRE_DOCKER") == "1" }

// Docker returns a client for a reachable Docker engine, or skips the test
// (fails it under MLAB_REQUIRE_DOCKER=1) when there is none.
func Docker(tb testing.TB) *client.Client {
	tb.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx)
	}
	if err != nil {
		if cli != nil {
			cli.Close()
		}
		Absent(tb, "no Docker engine: %v", err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

// Absent skips the test because something it needs is missing, or fails it
// when MLAB_REQUIRE_DOCKER=1 says that everything must be there.
func Absent(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if DockerRequired() {
		tb.Fatalf("MLAB_REQUIRE_DOCKER=1 but "+format, args...)
	}
	tb.Skipf(format, args...)
}

// Image returns the docker runtime image tests run in, MLAB_IMAGE or else
// defaultTag (the base image `make image` builds), or skips the test (fails
// it under MLAB_REQUIRE_DOCKER=1) when the engine behind cli does not have it.
func Image(tb testing.TB, cli *client.Client, defaultTag string) string {
	tb.Helper()
	img := os.Getenv("MLAB_IMAGE")
	if img == "" {
		img = defaultTag
	}
	if _, err := cli.ImageInspect(tb.Context(), img); err != nil {
		Absent(tb, "runtime image %s not built (make image): %v", img, err)
	}
	return img
}
