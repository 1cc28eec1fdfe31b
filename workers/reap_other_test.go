//go:build !linux

package workers

import "fmt"

// subreaper needs prctl(PR_SET_CHILD_SUBREAPER), which only Linux has.
func subreaper() { fmt.Println("SKIP: child subreapers are Linux only") }
