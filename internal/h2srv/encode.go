package h2srv

// Response header blocks are encoded as nginx does: names from the HPACK
// static table where there is one, every field a literal "without
// indexing", values not Huffman-coded, nothing added to the dynamic table.
// The hpack package's encoder indexes every field, so each response with a
// unique value (a request id, a Date each second, an ETag) evicts and
// re-inserts table entries, and it searches its tables with two map
// lookups per field: a quarter of gatehouse's CPU time per small HTTP/2
// response in a profile. The cost of not indexing is bytes on the wire,
// a few hundred per response at most.

// staticNames maps field names to their index in the HPACK static table
// (RFC 7541, appendix A).
var staticNames = map[string]uint8{
	":authority": 1, ":method": 2, ":path": 4, ":scheme": 6, ":status": 8,
	"accept-charset": 15, "accept-encoding": 16, "accept-language": 17, "accept-ranges": 18,
	"accept": 19, "access-control-allow-origin": 20, "age": 21, "allow": 22, "authorization": 23,
	"cache-control": 24, "content-disposition": 25, "content-encoding": 26, "content-language": 27,
	"content-length": 28, "content-location": 29, "content-range": 30, "content-type": 31,
	"cookie": 32, "date": 33, "etag": 34, "expect": 35, "expires": 36, "from": 37, "host": 38,
	"if-match": 39, "if-modified-since": 40, "if-none-match": 41, "if-range": 42,
	"if-unmodified-since": 43, "last-modified": 44, "link": 45, "location": 46, "max-forwards": 47,
	"proxy-authenticate": 48, "proxy-authorization": 49, "range": 50, "referer": 51, "refresh": 52,
	"retry-after": 53, "server": 54, "set-cookie": 55, "strict-transport-security": 56,
	"transfer-encoding": 57, "user-agent": 58, "vary": 59, "via": 60, "www-authenticate": 61,
}

// statusIndex is the static-table entry of a complete :status field.
var statusIndex = map[int]byte{200: 8, 204: 9, 206: 10, 304: 11, 400: 12, 404: 13, 500: 14}

// appendHpackInt appends v with an n-bit prefix whose high bits are first
// (RFC 7541, section 5.1).
func appendHpackInt(dst []byte, first byte, n uint, v uint64) []byte {
	max := uint64(1)<<n - 1
	if v < max {
		return append(dst, first|byte(v))
	}
	dst = append(dst, first|byte(max))
	v -= max
	for v >= 128 {
		dst = append(dst, byte(v&0x7f|0x80))
		v >>= 7
	}
	return append(dst, byte(v))
}

func appendHpackString(dst []byte, s string) []byte {
	dst = appendHpackInt(dst, 0, 7, uint64(len(s)))
	return append(dst, s...)
}

// appendStatus appends the :status field.
func appendStatus(dst []byte, code int) []byte {
	if i, ok := statusIndex[code]; ok {
		return append(dst, 0x80|i)
	}
	return appendHpackString(append(dst, 0x08), statusText(code)) // name :status, literal value
}

// appendField appends name: value (name lowercase and valid) as a literal
// without indexing.
func appendField(dst []byte, name, value string) []byte {
	if i, ok := staticNames[name]; ok {
		dst = appendHpackInt(dst, 0, 4, uint64(i))
	} else {
		dst = appendHpackString(append(dst, 0), name)
	}
	return appendHpackString(dst, value)
}

// appendTableSizeZero appends a dynamic table size update to 0: our
// table is never used, and saying so at the start of the first block
// (and after the client changes SETTINGS_HEADER_TABLE_SIZE) satisfies
// RFC 7541, section 4.2, whatever size the client allows.
func appendTableSizeZero(dst []byte) []byte { return append(dst, 0x20) }
