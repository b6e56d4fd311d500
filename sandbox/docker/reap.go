package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// ServerID names a server process by pid and start time, so a pid reused by
// another process after a crash is not mistaken for the server.
func ServerID(pid int) (string, error) {
	start, err := processStart(pid)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%s", pid, start), nil
}

// processStart is field 22 of /proc/<pid>/stat: start time in clock ticks
// since boot.
func processStart(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", fmt.Errorf("read process %d: %w", pid, err)
	}
	// The command name (field 2) may contain spaces; fields restart after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return fields[19], nil
}

// serverAlive reports whether the server named by a LabelServer value still
// runs.
func serverAlive(id string) bool {
	pidStr, start, ok := strings.Cut(id, ":")
	pid, err := strconv.Atoi(pidStr)
	if !ok || err != nil {
		return false
	}
	got, err := processStart(pid)
	return err == nil && got == start
}

// Reaped is one container removed by Reap.
type Reaped struct {
	ID, Run, Server string
}

// Reap removes the containers and workspaces that mlab servers no longer
// running left behind. With all set it removes every mlab container, live
// or not. Containers without LabelManaged are never touched.
func Reap(ctx context.Context, api API, all bool) ([]Reaped, error) {
	list, err := containers(ctx, api, all)
	if err != nil {
		return nil, err
	}
	var reaped []Reaped
	var errs []error
	for _, c := range list {
		server := c.Labels[LabelServer]
		err := api.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) && !isRemovalInProgress(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", shortID(c.ID), err))
			continue
		}
		// Only a path shaped like one of ours is removed: a label is data.
		if ws := c.Labels[LabelWorkspace]; filepath.IsAbs(ws) && filepath.Clean(ws) == ws && strings.HasPrefix(filepath.Base(ws), workspacePrefix) {
			if err := RemoveWorkspace(ws); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		reaped = append(reaped, Reaped{ID: shortID(c.ID), Run: c.Labels[LabelRun], Server: server})
	}
	return reaped, errors.Join(errs...)
}

// Orphans lists the mlab containers whose server is no longer running.
func Orphans(ctx context.Context, api API) ([]container.Summary, error) {
	return containers(ctx, api, false)
}

// containers lists mlab's containers: all of them, or only orphans.
func containers(ctx context.Context, api API, all bool) ([]container.Summary, error) {
	list, err := api.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelManaged+"=1")),
	})
	if err != nil {
		return nil, fmt.Errorf("list mlab containers: %w", err)
	}
	var out []container.Summary
	for _, c := range list {
		// A filter is a request, not a guarantee.
		if c.Labels[LabelManaged] == "1" && (all || !serverAlive(c.Labels[LabelServer])) {
			out = append(out, c)
		}
	}
	return out, nil
}
