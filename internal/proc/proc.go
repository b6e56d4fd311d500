// Package proc names processes in a way that survives pid reuse, so that
// what a crashed server left behind (containers, run logs, scratch folders)
// can be told from what a live one still uses.
package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ID names the process pid as "<pid>:<start time>".
func ID(pid int) (string, error) {
	start, err := startTime(pid)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%s", pid, start), nil
}

// Self is the ID of the calling process; it cannot fail on Linux.
func Self() string {
	id, err := ID(os.Getpid())
	if err != nil {
		return strconv.Itoa(os.Getpid())
	}
	return id
}

// Alive reports whether the process an ID names still runs.
func Alive(id string) bool {
	pidStr, start, ok := strings.Cut(id, ":")
	pid, err := strconv.Atoi(pidStr)
	if !ok || err != nil {
		return false
	}
	got, err := startTime(pid)
	return err == nil && got == start
}

// startTime is field 22 of /proc/<pid>/stat: start time in clock ticks since
// boot.
func startTime(pid int) (string, error) {
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
