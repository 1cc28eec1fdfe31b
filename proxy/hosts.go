package proxy

import (
	"net"
	"strings"
)

// hostPattern is one entry of server.hosts.
type hostPattern struct {
	name     string // lower-case, no trailing dot
	suffix   bool   // ".example.com": the domain and every subdomain
	subOnly  bool   // "*.example.com": subdomains only
	matchAll bool   // "*"
}

func parseHostPattern(s string) (hostPattern, bool) {
	s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	switch {
	case s == "*":
		return hostPattern{matchAll: true}, true
	case strings.HasPrefix(s, "*."):
		return hostPattern{name: s[2:], subOnly: true}, validHostName(s[2:])
	case strings.HasPrefix(s, "."):
		return hostPattern{name: s[1:], suffix: true}, validHostName(s[1:])
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	return hostPattern{name: s}, validHostName(s)
}

func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	if net.ParseIP(s) != nil {
		return true
	}
	for _, ch := range s {
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == '_') {
			return false
		}
	}
	return true
}

func (p hostPattern) match(host string) bool {
	switch {
	case p.matchAll:
		return true
	case p.subOnly:
		return len(host) > len(p.name)+1 && strings.HasSuffix(host, p.name) && host[len(host)-len(p.name)-1] == '.'
	case p.suffix:
		return host == p.name || len(host) > len(p.name)+1 && strings.HasSuffix(host, p.name) && host[len(host)-len(p.name)-1] == '.'
	}
	return host == p.name
}

// hostAllow is the parsed server.hosts; empty allows any host.
type hostAllow []hostPattern

func parseHosts(list []string) hostAllow {
	var out hostAllow
	for _, s := range list {
		if p, ok := parseHostPattern(s); ok {
			out = append(out, p)
		}
	}
	return out
}

func (h hostAllow) allows(host string) bool {
	if len(h) == 0 {
		return true
	}
	for _, p := range h {
		if p.match(host) {
			return true
		}
	}
	return false
}

// canonicalHost lower-cases a Host value and strips its port, brackets and
// trailing dot, so that "Example.COM.:443" and "example.com" are one name.
func canonicalHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}
