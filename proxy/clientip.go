package proxy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gatehouse/gatehouse/internal/conf"
)

// trustSet is the parsed server.trusted_proxies.
type trustSet struct {
	prefixes []netip.Prefix
	unix     bool // peers on Unix-socket listeners
}

var namedRanges = map[string][]string{
	"loopback": {"127.0.0.0/8", "::1/128"},
	"private":  {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"},
}

func parseTrusted(list []string) (trustSet, error) {
	var t trustSet
	var errs conf.Errors
	for i, s := range list {
		s = strings.TrimSpace(s)
		if s == "unix" {
			t.unix = true
			continue
		}
		if named, ok := namedRanges[s]; ok {
			for _, p := range named {
				t.prefixes = append(t.prefixes, netip.MustParsePrefix(p))
			}
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			t.prefixes = append(t.prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			t.prefixes = append(t.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		errs.Add(fmt.Sprintf("[%d]", i), "%q is not a CIDR, an address, or one of loopback, private, unix", s)
	}
	return t, errs.Err()
}

func (t *trustSet) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerTrusted reports whether the direct peer may speak for the client.
// An invalid peer address means a Unix-socket listener.
func (t *trustSet) peerTrusted(peer netip.Addr) bool {
	if !peer.IsValid() {
		return t.unix
	}
	return t.trusts(peer)
}

// clientIP walks X-Forwarded-For from right to left, starting at the direct
// peer, and returns the first address not in the trusted set: the
// rightmost address a trusted hop vouches for. Entries left of an untrusted
// one are the client's own claims and are ignored, which is what makes a
// spoofed header harmless. An entry that does not parse stops the walk at
// the last good address. xff holds every X-Forwarded-For field line.
func (t *trustSet) clientIP(peer netip.Addr, xff []string) netip.Addr {
	if !t.peerTrusted(peer) || len(xff) == 0 {
		return peer
	}
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for line != "" {
			var hop string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				hop, line = line[j+1:], line[:j]
			} else {
				hop, line = line, ""
			}
			hop = strings.TrimSpace(hop)
			if hop == "" {
				continue
			}
			a, ok := parseForwardedAddr(hop)
			if !ok {
				return client
			}
			client = a
			if !t.trusts(a) {
				return a
			}
		}
	}
	return client
}

// parseForwardedAddr parses one X-Forwarded-For element: an address, an
// address with a port ("1.2.3.4:5678", "[2001:db8::1]:443"), or a
// bracketed IPv6 address.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap().WithZone(""), true
		}
	}
	return netip.Addr{}, false
}
