// Package backend holds what the front (proxy) and the pools (workers) must
// agree on without importing each other: the errors a pool returns for
// answers the front gives on its behalf. The proxy maps them to status
// codes in one place (proxy.statusFor); pools wrap them with %w and add the
// detail for the log.
//
// Typical usage, in a pool:
//
//	return nil, fmt.Errorf("waiting %s for a free worker: %w", d, backend.ErrQueueTimeout)
package backend

import (
	"errors"
	"time"
)

var (
	// ErrQueueFull means the request could not even wait for a backend:
	// the bounded queue is full. The client gets 503 with Retry-After.
	ErrQueueFull = errors.New("backend: queue full")
	// ErrQueueTimeout means the request waited its whole queue_timeout
	// without a backend becoming free. The client gets 503 with Retry-After.
	ErrQueueTimeout = errors.New("backend: timed out waiting for a free backend")
	// ErrNoBackend means no backend is healthy or running (all upstreams
	// down, or the app failed to start). The client gets 502.
	ErrNoBackend = errors.New("backend: no healthy backend")
	// ErrNotReady means the app's workers cannot start (an import error, a
	// command that exits): gatehouse keeps retrying them with backoff, and
	// the client gets 503 with Retry-After, while static files and other
	// routes keep working.
	ErrNotReady = errors.New("backend: app not ready (its workers cannot start)")
	// ErrTimeout means the backend took longer than the configured request
	// timeout to answer. The client gets 504.
	ErrTimeout = errors.New("backend: request timed out")
	// ErrBackendFailed means the backend broke the exchange: refused the
	// connection, hung up, or sent an invalid response. The client gets 502.
	ErrBackendFailed = errors.New("backend: backend failed")
	// ErrClosed means the pool is shutting down. The client gets 503.
	ErrClosed = errors.New("backend: pool closed")
)

// RetryAfter is implemented by errors that know when the client should try
// again (a queue that is full). The front uses it for Retry-After.
type RetryAfter interface {
	RetryAfter() time.Duration
}
