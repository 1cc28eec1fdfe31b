// Package reqinfo carries what the front learned about a request (its id,
// the resolved client address, whether the client used TLS) to the parts
// behind it, and collects what those parts decided (the route, the upstream,
// the plan) for the access log and metrics.
//
// Typical usage: the proxy stores an *Info with With at the start of a
// request; a rate limiter or a pool reads it with From and sets the fields it
// owns. Each field has one writer, and writes happen on the request's own
// goroutine before the response is logged, so no locking is needed.
package reqinfo

import (
	"context"
	"net/netip"
	"time"
)

// Info is the per-request record shared along the request flow.
type Info struct {
	// ID is the request id: kept from a trusted peer's X-Request-ID or
	// generated. It is in every log line about the request.
	ID string
	// Start is when the front received the request head.
	Start time.Time
	// Peer is the direct TCP peer (the last proxy, if any). Its Addr is
	// invalid for Unix-socket listeners.
	Peer netip.AddrPort
	// ClientIP is the client's address after trusted-proxy resolution; the
	// rate limiter and REMOTE_ADDR use it.
	ClientIP netip.Addr
	// TLS is true when the client reached gatehouse over TLS (or a trusted
	// proxy said so with X-Forwarded-Proto).
	TLS bool
	// Host is the request's Host without port, lower-cased.
	Host string

	// Route names the route that served the request ("app", "static:/static/",
	// "redirect", "reject"): set by the router.
	Route string
	// Upstream is the backend address that answered: set by the pool.
	Upstream string
	// Plan is the rate-limit plan the request was counted against: set by the
	// rate limiter.
	Plan string
	// Reason is a short machine-readable word for why gatehouse itself
	// answered (e.g. "host_not_allowed", "queue_full", "upstream_timeout").
	Reason string
}

type ctxKey struct{}

// With returns a context carrying info.
func With(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

// From returns the Info stored in ctx, or nil when there is none (a handler
// used outside the gatehouse front, as in a unit test).
func From(ctx context.Context) *Info {
	info, _ := ctx.Value(ctxKey{}).(*Info)
	return info
}
