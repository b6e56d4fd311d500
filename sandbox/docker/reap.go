package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/mlab/mlab/internal/proc"
)

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
		server := owner(c.Labels)
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
		if c.Labels[LabelManaged] == "1" && (all || !proc.Alive(owner(c.Labels))) {
			out = append(out, c)
		}
	}
	return out, nil
}

// owner is the ID a container's server is judged by: its lock, or for a
// container of an older server its "<pid>:<start time>".
func owner(labels map[string]string) string {
	if id := labels[LabelLock]; id != "" {
		return id
	}
	return labels[LabelServer]
}
