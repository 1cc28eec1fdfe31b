// Package gctune keeps the garbage collector from running every few
// megabytes of allocation while the live heap is small. Typical usage, once
// in main:
//
//	go gctune.Run(ctx, gctune.Options{MinGoal: 32 << 20, Logger: log})
//
// Go's collector starts a cycle when the heap has grown by GOGC percent
// (100) of what survived the last one. A proxy keeps little alive between
// requests (a few MiB), so at 20,000 requests a second it collects about
// ten times a second, and each cycle costs CPU and stops the world twice
// (milliseconds on a busy virtual machine, which is where the slowest
// percentile of requests comes from). Run raises GOGC while the live heap
// is small, so that the heap may grow to MinGoal before a cycle, and lets
// it fall back to 100 as the live heap grows past MinGoal/2: with many
// connections open the heap grows as it would without it. This is the
// trade nginx makes by not collecting at all, bounded.
//
// A GOGC or GOMEMLIMIT set in the environment means the operator tunes the
// collector; Run then does nothing.
package gctune
