package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cutover/cutover/engine"
)

// loadState reads the table saved at path; ok is false when there is none yet.
func loadState(path string) (rt engine.RouteTable, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return engine.RouteTable{}, false, nil
	}
	if err != nil {
		return engine.RouteTable{}, false, fmt.Errorf("read router state: %w", err)
	}
	if err := json.Unmarshal(data, &rt); err != nil {
		return engine.RouteTable{}, false, fmt.Errorf("read router state %s: %w", path, err)
	}
	return rt, true, nil
}

// saveState writes rt to path so that a crash at any moment leaves either the
// old or the new table on disk: write a temporary file in the same directory,
// fsync it, rename it over path, fsync the directory.
func saveState(path string, rt engine.RouteTable) error {
	data, err := json.MarshalIndent(rt, "", "  ")
	if err != nil {
		return fmt.Errorf("save router state: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save router state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save router state: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save router state: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save router state: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save router state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save router state: open dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save router state: sync dir %s: %w", dir, err)
	}
	return nil
}
