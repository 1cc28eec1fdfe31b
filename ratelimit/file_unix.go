//go:build unix

package ratelimit

import (
	"os"
	"syscall"
)

// inode tells a file replaced by a rename from the one it replaced, even
// when both have the same size and modification time.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
