package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/docker/docker/client"
	"github.com/rs/zerolog"

	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/sandbox/docker"
	"github.com/mlab/mlab/sandbox/local"
)

// provider builds the sandbox backend the flags ask for. With "auto" it is
// docker when the engine answers and the runtime image is there, else local,
// and the log says which and why.
func (c *common) provider(ctx context.Context, log zerolog.Logger, scratch string) (sandbox.Provider, func(), error) {
	switch c.backend {
	case "local":
		p, err := c.localProvider(ctx, log, scratch)
		return p, func() {}, err
	case "docker", "auto":
	default:
		return nil, nil, fmt.Errorf("--backend %q: want auto, local or docker", c.backend)
	}
	p, closeClient, err := c.dockerProvider(ctx, log)
	if err == nil {
		return p, closeClient, nil
	}
	if c.backend == "docker" {
		return nil, nil, err
	}
	log.Info().Str("reason", err.Error()).Msg("using the local sandbox backend")
	lp, lerr := c.localProvider(ctx, log, scratch)
	return lp, func() {}, lerr
}

func (c *common) localProvider(ctx context.Context, log zerolog.Logger, scratch string) (sandbox.Provider, error) {
	return local.New(ctx, local.Options{
		Root: filepath.Join(scratch, "sandboxes"), Isolation: local.Isolation(c.isolation),
		WorkspaceBytes: c.workspaceMiB << 20, Logger: log,
	})
}

// dockerProvider connects to the engine, checks the image and reaps what a
// crashed server left behind.
func (c *common) dockerProvider(ctx context.Context, log zerolog.Logger) (sandbox.Provider, func(), error) {
	cli, err := dockerClient(ctx)
	if err != nil {
		return nil, nil, err
	}
	image := c.image
	if image == "" {
		image = docker.ImageTag(docker.ImageSpec{Variant: "base"})
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.ImageInspect(ictx, image); err != nil {
		cli.Close()
		return nil, nil, fmt.Errorf("runtime image %s is not there (build it with make image or mlab image build): %w", image, err)
	}
	reaped, err := docker.Reap(ictx, cli, false)
	for _, r := range reaped {
		log.Info().Str("container", r.ID).Str("run", r.Run).Str("server", r.Server).Msg("removed a container left by a server that is gone")
	}
	if err != nil {
		log.Warn().Err(err).Msg("reap orphaned containers")
	}
	p, err := docker.New(ctx, docker.Options{
		Client: cli, Image: image, WorkspaceBytes: c.workspaceMiB << 20, CPUs: c.cpus, Logger: log,
	})
	if err != nil {
		cli.Close()
		return nil, nil, err
	}
	log.Info().Str("image", image).Msg("using the docker sandbox backend")
	return p, func() { cli.Close() }, nil
}

// dockerClient connects to the engine from the environment (DOCKER_HOST or
// the default socket), negotiating the API version so that old engines work.
func dockerClient(ctx context.Context) (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		cli.Close()
		return nil, errors.Join(errors.New("no Docker engine answers"), err)
	}
	return cli, nil
}
