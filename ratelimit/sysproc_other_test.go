//go:build !linux

package ratelimit

import "syscall"

// childAttr: elsewhere the test's Cleanup alone stops the child.
func childAttr() *syscall.SysProcAttr { return nil }
