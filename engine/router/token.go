package router

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// maxTokenFile bounds what ReadTokenFile reads: a bearer token is a line.
const maxTokenFile = 4 << 10

// ReadTokenFile reads the admin bearer token from path, the way both the
// router and its clients must: the file may be read by its owner only (as
// ssh refuses a private key others can read, since anyone who reads it can
// move traffic), and surrounding white space is dropped. The mode is checked
// on the open file, so a swap between the check and the read cannot pass.
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("token file %s is readable or writable by group or others (mode %04o): anyone who reads it can change routing; chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("read token file %s: %w", path, err)
	}
	if len(data) > maxTokenFile {
		return "", fmt.Errorf("token file %s is larger than %d bytes: it should hold one token", path, maxTokenFile)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return token, nil
}
