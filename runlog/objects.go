package runlog

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// objectPath returns where the object with hex digest sum lives. Splitting
// on the first two hex digits keeps any one directory small.
func (l *Log) objectPath(sum string) string { return objectPath(l.dir, sum) }

func objectPath(dir, sum string) string {
	return filepath.Join(dir, objectsDir, sum[:2], sum[2:])
}

// validSum reports whether s is a lower-case hex SHA-256, so that a tampered
// manifest cannot point objectPath outside objects/.
func validSum(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// hasObject reports whether the object with hex digest sum is stored. An
// object is renamed into place whole, so one that exists is complete.
func (l *Log) hasObject(sum string) bool {
	_, err := os.Lstat(l.objectPath(sum))
	return err == nil
}

// storeObject hashes r while copying it to a temp file and then renames the
// temp file into place, so the source is read once and an object is either
// complete or absent. Reading stops after limit+1 bytes; tooLarge then
// reports that nothing was stored. Objects are not fsynced: Restore verifies
// every hash, so a crash-torn object is detected rather than trusted.
func (l *Log) storeObject(r io.Reader, limit int64) (sum string, n int64, tooLarge bool, err error) {
	tmp, err := os.CreateTemp(filepath.Join(l.dir, objectsDir), ".tmp-*")
	if err != nil {
		return "", 0, false, fmt.Errorf("create object temp: %w", err)
	}
	tmpName := tmp.Name()
	renamed := false
	defer func() {
		if !renamed {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()

	h := sha256.New()
	n, err = io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, limit+1))
	if err != nil {
		return "", n, false, fmt.Errorf("copy to object temp %s: %w", tmpName, err)
	}
	if n > limit {
		return "", n, true, nil
	}
	sum = hex.EncodeToString(h.Sum(nil))
	final := l.objectPath(sum)
	if _, err := os.Lstat(final); err == nil {
		return sum, n, false, nil
	}
	// Read-only because an object is shared by every manifest that names it.
	if err := tmp.Chmod(0o444); err != nil {
		return "", n, false, fmt.Errorf("chmod object temp %s: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return "", n, false, fmt.Errorf("close object temp %s: %w", tmpName, err)
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", n, false, fmt.Errorf("create object dir: %w", err)
	}
	if err := os.Rename(tmpName, final); err != nil {
		return "", n, false, fmt.Errorf("store object %s: %w", final, err)
	}
	renamed = true
	return sum, n, false, nil
}
