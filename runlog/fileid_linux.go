package runlog

import (
	"io/fs"
	"os"
	"syscall"
)

// openSourceFlags adds O_NONBLOCK so that a regular file swapped for a FIFO
// between the directory scan and the open cannot hang the snapshot; it has no
// effect on regular files.
const openSourceFlags = os.O_RDONLY | syscall.O_NONBLOCK

// fileIdentity returns the device, inode and change time of fi. The change
// time cannot be set from user space, so unlike mtime it cannot be rewound to
// make a modified file look unchanged.
func fileIdentity(fi fs.FileInfo) (dev, ino uint64, ctimeNS int64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fi.ModTime().UnixNano()
	}
	return uint64(st.Dev), uint64(st.Ino), st.Ctim.Nano()
}
