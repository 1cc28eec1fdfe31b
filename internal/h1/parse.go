package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"sync"

	"github.com/gatehouse/gatehouse/internal/ascii"
)

// parseHead reads the common response head straight from br's buffer:
// HTTP/1.1, a final status other than 204 and 304, CRLF line ends, no
// obs-fold, framed by exactly one Content-Length or by Transfer-Encoding:
// chunked alone, and no Connection or Trailer field, for a request other
// than HEAD. It makes one string of the head and slices the header values
// out of it, where http.ReadResponse makes one string per value and a few
// more objects besides.
//
// Anything else, or a head not yet wholly buffered, returns ok false
// without consuming a byte, and the caller falls back to
// http.ReadResponse: the rare cases keep net/http's exact behaviour, and
// FuzzResponse checks that both agree.
func parseHead(br *bufio.Reader, r *http.Request) (resp *http.Response, length int64, ok bool) {
	hd, ok := parseHeadBlock(br, r)
	if !ok {
		return nil, 0, false
	}
	return &hd.resp, hd.resp.ContentLength, true
}

// head is a parsed response with its body in one allocation. Heads are
// recycled (Head.Recycle) with their header map, cleared: the rest of the
// allocations for a response are the head's text and its values array,
// which callers may keep (a proxy shares the values with the response it
// writes to its client).
type head struct {
	resp http.Response
	body body
	h    http.Header // resp.Header, kept empty across recycling
}

var heads = sync.Pool{New: func() any { return new(head) }}

// Head is the block a response from Transport was parsed into, when it
// was (HeadOf). The zero Head is none.
type Head struct{ hd *head }

// HeadOf returns the block resp was parsed into, or the zero Head. Call it
// before replacing resp.Body: the body is what identifies the block.
func HeadOf(resp *http.Response) Head {
	if b, ok := resp.Body.(*body); ok && b.hd != nil && &b.hd.resp == resp {
		return Head{b.hd}
	}
	return Head{}
}

// Recycle hands the response's block back for a later response, saving
// its allocation (about 900 bytes a response). Only a caller that owns the
// response may call it, once it has closed the body and is done with the
// Response and its Header map; header values may still be used, as they
// live apart. A body not yet closed and released keeps the block from
// being reused.
func (h Head) Recycle() {
	hd := h.hd
	if hd == nil {
		return
	}
	b := &hd.body
	b.mu.Lock()
	done := b.closed && b.c == nil && !b.reading
	b.mu.Unlock()
	if !done {
		return
	}
	m := hd.h
	clear(m)
	*hd = head{h: m}
	heads.Put(hd)
}

// parseHeadBlock is parseHead returning the whole block, so that the
// transport can frame the body in it.
func parseHeadBlock(br *bufio.Reader, r *http.Request) (hd *head, ok bool) {
	if r.Method == "HEAD" {
		return nil, false
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, false
	}
	raw := buf[:end+2] // each line with its CRLF
	// Status line: "HTTP/1.1 200 OK".
	if len(raw) < 14 || string(raw[:9]) != "HTTP/1.1 " {
		return nil, false
	}
	c0, c1, c2 := raw[9], raw[10], raw[11]
	if c0 < '2' || c0 > '5' || c1 < '0' || c1 > '9' || c2 < '0' || c2 > '9' {
		return nil, false
	}
	code := int(c0-'0')*100 + int(c1-'0')*10 + int(c2-'0')
	if code == http.StatusNoContent || code == http.StatusNotModified {
		return nil, false
	}
	eol := bytes.Index(raw, []byte("\r\n"))
	status := raw[9:eol]
	if len(status) > 3 && status[3] != ' ' || !cleanLine(status) {
		return nil, false
	}

	// Count the fields first, to size the map and the value array once:
	// by their LFs (the vectorised one-byte count; a bare LF, refused
	// below, can only make the count too high).
	lines := bytes.Count(raw[eol+2:], []byte{'\n'})
	s := string(raw) // the one allocation for all the text
	blk := heads.Get().(*head)
	defer func() {
		if !ok { // a head net/http is to read: the block goes back unused
			clear(blk.h)
			heads.Put(blk)
		}
	}()
	h := blk.h
	if h == nil {
		h = make(http.Header, lines)
		blk.h = h
	}
	vals := make([]string, lines)
	var length int64
	length = -2 // none seen
	chunked := false
	for i, pos := 0, eol+2; pos < len(s); i++ {
		// One pass over the line: the name up to the colon (token
		// characters only, noting whether it is in canonical form
		// already), then the value up to its CR, which must start the
		// line's CRLF (raw ends each line with one).
		colon, canon, upper := -1, true, true
		for j := pos; j < len(s); j++ {
			c := s[j]
			if c == ':' {
				colon = j
				break
			}
			if !tokenChars[c] {
				return nil, false // obs-fold, space before colon, bad name
			}
			if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
				canon = false
			}
			upper = c == '-'
		}
		if colon <= pos {
			return nil, false
		}
		cr := -1
		for j := colon + 1; j < len(s); j++ {
			if c := s[j]; c < ' ' || c == 0x7f {
				if c == '\r' && j+1 < len(s) && s[j+1] == '\n' {
					cr = j
					break
				}
				if c != '\t' {
					return nil, false // a control character, a bare CR or LF
				}
			}
		}
		if cr < 0 {
			return nil, false
		}
		v := ascii.TrimOWS(s[colon+1 : cr])
		key := s[pos:colon]
		pos = cr + 2
		if !canon {
			key = textproto.CanonicalMIMEHeaderKey(key)
		}
		switch key {
		case "Connection", "Trailer":
			return nil, false
		case "Content-Length":
			if length != -2 || chunked {
				return nil, false
			}
			if length = parseLength(v); length < 0 {
				return nil, false
			}
		case "Transfer-Encoding":
			if v != "chunked" || chunked || length != -2 {
				return nil, false
			}
			chunked = true
			continue // net/http keeps it out of Header too
		}
		vals[i] = v
		if old, dup := h[key]; dup {
			h[key] = append(old, v)
		} else {
			h[key] = vals[i : i+1 : i+1]
		}
	}
	if length == -2 && !chunked {
		return nil, false // read to EOF: rare, and net/http knows it
	}
	hd = blk
	hd.body.hd = hd
	hd.resp = http.Response{
		Status:        s[9:eol],
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: length,
		Request:       r,
	}
	if chunked {
		hd.resp.ContentLength = -1
		hd.resp.TransferEncoding = []string{"chunked"} // the caller's to change
	}
	br.Discard(end + 4)
	return hd, true
}

// cleanLine reports whether b has no control characters but HTAB: no
// bare CR or LF to hide a line end, nothing textproto would treat
// specially.
func cleanLine[T string | []byte](b T) bool {
	for i := 0; i < len(b); i++ {
		if c := b[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// parseLength accepts 1 to 18 digits, no sign, no spaces: anything else is
// left to net/http.
func parseLength(s string) int64 {
	if s == "" || len(s) > 18 {
		return -1
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}
