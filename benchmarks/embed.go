// Package benchmarks ships mlab's built-in tasks, in the MLAgentBench layout,
// inside the binary. Only env/, scripts/ and task.yaml are embedded: the
// reference solutions stay in the source tree, for tests.
package benchmarks

import (
	"embed"
	"io/fs"
)

//go:embed */env */scripts */task.yaml
var files embed.FS

// FS returns the built-in tasks, one folder per task at the root.
func FS() fs.FS { return files }
