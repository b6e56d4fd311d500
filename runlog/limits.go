package runlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/mlab/mlab/internal/dirtree"
)

// SnapshotLimits bounds one snapshot, so that no tree an agent can build
// makes a step's snapshot (and the manifest written for it) unbounded. Zero
// fields take the defaults. Files above the per-file limit are not an error;
// see SetSnapshotFileLimit.
type SnapshotLimits struct {
	// Entries is the most files, directories and links (default 500,000).
	Entries int
	// Depth is the most levels of nested directories (default 8,192).
	Depth int
	// PathBytes bounds the sum of all entries' path lengths, which is what
	// a deep tree makes the manifest grow by (default 64 MiB).
	PathBytes int64
	// FileBytes bounds the total size of the files stored (default 16 GiB).
	FileBytes int64
}

// Default snapshot limits. The depth and path bounds let 4,000 nested
// directories through with room to spare.
const (
	DefaultSnapshotEntries   = 500_000
	DefaultSnapshotDepth     = 8192
	DefaultSnapshotPathBytes = 64 << 20
	DefaultSnapshotFileBytes = 16 << 30
)

func (lim SnapshotLimits) withDefaults() SnapshotLimits {
	if lim.Entries <= 0 {
		lim.Entries = DefaultSnapshotEntries
	}
	if lim.Depth <= 0 {
		lim.Depth = DefaultSnapshotDepth
	}
	if lim.PathBytes <= 0 {
		lim.PathBytes = DefaultSnapshotPathBytes
	}
	if lim.FileBytes <= 0 {
		lim.FileBytes = DefaultSnapshotFileBytes
	}
	return lim
}

// ErrTooLarge is wrapped by a Snapshot error caused by the tree itself: it
// exceeds a SnapshotLimits bound or could not be read before the deadline.
// Its message is meant for the agent, who can act on it.
var ErrTooLarge = errors.New("the workspace is too large to snapshot")

type tooLargeError struct {
	detail string
	err    error
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("%v: %s; delete files or directories you do not need "+
		"(or pack many small files into one archive) and try again", ErrTooLarge, e.detail)
}

func (e *tooLargeError) Is(target error) bool { return target == ErrTooLarge }
func (e *tooLargeError) Unwrap() error        { return e.err }

// snapshotErr turns a walk error into one the agent can act on where the
// tree is at fault; read is the number of entries recorded so far.
func snapshotErr(ctx context.Context, err error, read int) error {
	var le *dirtree.LimitError
	switch {
	case errors.As(err, &le):
		return &tooLargeError{detail: "it has " + le.Error(), err: err}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return &tooLargeError{detail: fmt.Sprintf("reading it took longer than allowed (%d entries read)", read), err: err}
	}
	return err
}
