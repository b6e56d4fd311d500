//go:build !linux

package runlog

import (
	"io/fs"
	"os"
)

const openSourceFlags = os.O_RDONLY

// fileIdentity has no portable inode or change time to offer, so the cache
// key falls back to size and mtime alone on these platforms.
func fileIdentity(fi fs.FileInfo) (dev, ino uint64, ctimeNS int64) {
	return 0, 0, fi.ModTime().UnixNano()
}
