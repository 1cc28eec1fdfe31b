package proxy

import (
	"net/http"
	"net/textproto"
	"strings"

	"github.com/gatehouse/gatehouse/internal/ascii"
)

// hopHeaders are the fields that describe one connection, not the message,
// and so must not be forwarded (RFC 9110 section 7.6.1; Proxy-Connection
// and Keep-Alive are the pre-standard ones clients still send). The
// fields a Connection header names are removed too.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// Shared values for the hop-by-hop fields a proxy sets itself (len ==
// cap, so an append copies).
var (
	teTrailers  = []string{"trailers"}
	connUpgrade = []string{"Upgrade"}
)

// stripHopRequest removes the hop-by-hop fields of a request header in
// place. It keeps "TE: trailers", which says the client (and so the whole
// chain) accepts trailers, and it returns the protocol of an upgrade the
// client asked for ("" for none), with Connection and Upgrade set again for
// it, as a proxy that passes upgrades through must.
func stripHopRequest(h http.Header) (upgrade string) {
	if conn, ok := h["Connection"]; ok {
		upgrade = deleteConnectionNamed(h, conn)
	}
	te := false
	if v, ok := h["Te"]; ok {
		te = hasToken(v, "trailers")
	}
	deleteFields(h, hopHeaders, isHopHeader)
	if te {
		h["Te"] = teTrailers
	}
	if upgrade != "" {
		h["Connection"] = connUpgrade
		h["Upgrade"] = []string{upgrade}
	}
	return upgrade
}

// deleteConnectionNamed deletes the fields that the Connection values
// conn name, and returns the Upgrade protocol when conn has the
// "upgrade" option.
func deleteConnectionNamed(h http.Header, conn []string) (upgrade string) {
	for _, v := range conn {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			tok = strings.TrimSpace(tok)
			switch {
			case tok == "":
			case ascii.EqualFold(tok, "keep-alive"), ascii.EqualFold(tok, "close"):
				// The common options; Keep-Alive goes with the hop list.
			case ascii.EqualFold(tok, "upgrade"):
				if u := h["Upgrade"]; len(u) > 0 {
					upgrade = u[0]
				}
			default:
				// Already canonical for most clients: no allocation.
				delete(h, textproto.CanonicalMIMEHeaderKey(tok))
			}
		}
	}
	return upgrade
}

// upgradeType is the protocol a 101 response switches to.
func upgradeType(h http.Header) string {
	if !hasToken(h["Connection"], "upgrade") {
		return ""
	}
	if u := h["Upgrade"]; len(u) > 0 {
		return u[0]
	}
	return ""
}

// hasToken reports whether a comma-separated list field has tok, ignoring
// case.
func hasToken(vs []string, tok string) bool {
	for _, v := range vs {
		for v != "" {
			var f string
			f, v, _ = strings.Cut(v, ",")
			if ascii.EqualFold(strings.TrimSpace(f), tok) {
				return true
			}
		}
	}
	return false
}

// copyResponseHeader adds the end-to-end fields of an app response to dst.
// The value slices are shared, not copied: the response is the
// forwarder's, and nothing writes into a slice it did not make (the
// transports make them with len == cap).
func copyResponseHeader(dst, src http.Header) {
	if conn, ok := src["Connection"]; ok {
		deleteConnectionNamed(src, conn)
	}
	for k, vv := range src {
		if isHopHeader(k) {
			continue
		}
		if old, ok := dst[k]; ok {
			dst[k] = append(old[:len(old):len(old)], vv...)
		} else {
			dst[k] = vv
		}
	}
}
