package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
)

// validRequest rejects what would let a caller inject bytes into the
// request head (CR or LF in a header), as net/http.Transport does; the
// header fields only when fields is true (see CheckedKey).
func validRequest(r *http.Request, fields bool) error {
	if r.URL == nil {
		return errors.New("nil Request.URL")
	}
	if s := r.URL.Scheme; s != "" && s != "http" {
		// No TLS here: refuse rather than send in clear what was meant
		// to be encrypted.
		return fmt.Errorf("unsupported scheme %q", s)
	}
	if r.Method != "" && !validToken(r.Method) {
		return fmt.Errorf("invalid method %q", r.Method)
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	if host == "" {
		return errors.New("no Host in request")
	}
	if !validValue(host) || strings.ContainsAny(host, " /") {
		return fmt.Errorf("invalid Host %q", host)
	}
	if !fields {
		return nil
	}
	for k, vs := range r.Header {
		if !validToken(k) {
			return fmt.Errorf("invalid header name %q", k)
		}
		for _, v := range vs {
			if !validValue(v) {
				return fmt.Errorf("invalid value for header %q", k)
			}
		}
	}
	for k := range r.Trailer {
		if !validToken(k) {
			return fmt.Errorf("invalid trailer name %q", k)
		}
	}
	return nil
}

// tokenChars marks the tchar of RFC 9110 section 5.6.2.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// validValue allows field-content (RFC 9110 section 5.5): visible
// characters, space, tab and obs-text; no other control characters.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// writeRequest writes r's head and body to bw (not flushed). touched
// reports whether r.Body was read from.
func writeRequest(bw *bufio.Writer, r *http.Request, trace *httptrace.ClientTrace) (touched bool, err error) {
	method := r.Method
	if method == "" {
		method = "GET"
	}
	// The target as URL.RequestURI makes it, without joining path and
	// query into a new string for the common origin form.
	var uri, query string
	hasQuery := false
	if u := r.URL; u.Opaque == "" {
		uri = u.EscapedPath()
		if uri == "" {
			uri = "/"
		}
		if u.ForceQuery || u.RawQuery != "" {
			query, hasQuery = u.RawQuery, true
		}
	} else {
		uri = u.RequestURI()
	}
	if uri == "" {
		uri = "/"
	}
	if strings.ContainsAny(uri, " \r\n") || strings.ContainsAny(query, " \r\n") {
		return false, fmt.Errorf("invalid request target %q", r.URL.RequestURI())
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	// The head is appended in place in bw's free space and written once:
	// a dozen fields made forty WriteString calls.
	b := bw.AvailableBuffer()
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, uri...)
	if hasQuery {
		b = append(b, '?')
		b = append(b, query...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for k, vs := range r.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if r.Close && !hasToken(r.Header["Connection"], "close") {
		b = append(b, "Connection: close\r\n"...)
	}
	bw.Write(b)

	body := r.Body
	if body == http.NoBody {
		body = nil
	}
	length := r.ContentLength
	if body == nil {
		length = 0
	} else if length == 0 {
		// A body with ContentLength 0 may still have bytes (net/http's
		// convention for "unknown"): look at one byte to decide.
		var one [1]byte
		n, rerr := io.ReadFull(body, one[:])
		touched = true
		switch {
		case n == 0 && (rerr == io.EOF || rerr == io.ErrUnexpectedEOF):
			body = nil
		case rerr != nil:
			return touched, fmt.Errorf("reading request body: %w", rerr)
		default:
			body = io.NopCloser(io.MultiReader(strings.NewReader(string(one[:])), r.Body))
			length = -1
		}
	}
	switch {
	case length > 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), length, 10))
		bw.WriteString("\r\n")
	case length < 0:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(r.Trailer) > 0 {
			bw.WriteString("Trailer: ")
			first := true
			for k := range r.Trailer {
				if !first {
					bw.WriteByte(',')
				}
				first = false
				bw.WriteString(k)
			}
			bw.WriteString("\r\n")
		}
	case bodyExpected(method):
		// RFC 9110 section 8.6: a user agent should send Content-Length
		// when a method defines a meaning for content, even if zero.
		bw.WriteString("Content-Length: 0\r\n")
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return touched, err
	}
	if trace != nil && trace.WroteHeaders != nil {
		trace.WroteHeaders()
	}
	if body == nil {
		return touched, nil
	}
	touched = true
	if length > 0 {
		return true, copyN(bw, body, length)
	}
	return true, copyChunked(bw, body, r.Trailer)
}

func bodyExpected(method string) bool {
	return method == "POST" || method == "PUT" || method == "PATCH"
}

func hasToken(vs []string, tok string) bool {
	for _, v := range vs {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), tok) {
				return true
			}
		}
	}
	return false
}

// copyN copies exactly n bytes of body into bw's own buffer, and checks
// that the body has no more: a length that lies would desynchronise the
// connection.
func copyN(bw *bufio.Writer, body io.Reader, n int64) error {
	for n > 0 {
		if bw.Available() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		buf := bw.AvailableBuffer()
		buf = buf[:min(int64(cap(buf)), n)]
		m, err := body.Read(buf)
		if m > 0 {
			bw.Write(buf[:m])
			n -= int64(m)
		}
		if err == io.EOF {
			if n > 0 {
				return fmt.Errorf("request body shorter than its ContentLength: %w", io.ErrUnexpectedEOF)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading request body: %w", err)
		}
	}
	var one [1]byte
	if m, _ := body.Read(one[:]); m > 0 {
		return errors.New("request body longer than its ContentLength")
	}
	return nil
}

// copyChunked writes body with the chunked coding, flushing every chunk so
// that a streamed upload streams (net/http.Transport flushes too).
func copyChunked(bw *bufio.Writer, body io.Reader, trailer http.Header) error {
	bp := copyBuf.Get().(*[]byte)
	defer copyBuf.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(n), 16))
			bw.WriteString("\r\n")
			bw.Write(buf[:n])
			bw.WriteString("\r\n")
			if ferr := bw.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading request body: %w", err)
		}
	}
	bw.WriteString("0\r\n")
	for k, vs := range trailer {
		for _, v := range vs {
			if !validValue(v) {
				return fmt.Errorf("invalid value for trailer %q", k)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	_, err := bw.WriteString("\r\n")
	return err
}
