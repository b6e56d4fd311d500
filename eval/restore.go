package eval

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/mlab/mlab/tasks"
)

// restoreReadOnly puts the task's own copy of every file its read-only
// patterns cover (in env/) into the submission folder dst, replacing
// whatever the submission holds there: a changed file, a directory, a link,
// or a file under a parent directory that a script renamed away and
// recreated with data of its own. The eval then always sees the original
// data, whatever happened in the workspace.
func restoreReadOnly(task *tasks.Task, dst string) error {
	files, err := task.ReadOnly.Files(task.EnvDir())
	if err != nil {
		return fmt.Errorf("list read-only files of %s: %w", task.Name, err)
	}
	if len(files) == 0 {
		return nil
	}
	// os.Root keeps every step inside dst, whatever links the submission
	// holds.
	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("restore read-only files: %w", err)
	}
	defer root.Close()
	for _, rel := range files {
		if err := restoreFile(root, filepath.Join(task.EnvDir(), filepath.FromSlash(rel)), rel); err != nil {
			return fmt.Errorf("restore read-only file %s: %w", rel, err)
		}
	}
	return nil
}

func restoreFile(root *os.Root, src, rel string) error {
	// Every directory above the file must be a real directory: a file or a
	// link in its place is removed.
	if dir := path.Dir(rel); dir != "." {
		parts := strings.Split(dir, "/")
		for i := range parts {
			p := strings.Join(parts[:i+1], "/")
			fi, err := root.Lstat(p)
			switch {
			case err == nil && fi.IsDir():
				continue
			case err == nil:
				if err := root.Remove(p); err != nil {
					return err
				}
			case !errors.Is(err, fs.ErrNotExist):
				return err
			}
			if err := root.Mkdir(p, 0o755); err != nil {
				return err
			}
		}
	}
	if err := root.RemoveAll(rel); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
