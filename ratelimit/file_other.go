//go:build !unix

package ratelimit

import "os"

// inode is 0 where FileInfo carries no inode number (Windows): a changed
// keys file is then told by its size and modification time alone.
func inode(os.FileInfo) uint64 { return 0 }
