package router

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// The router speaks HTTP/1.1 on both sides itself rather than through
// net/http: one goroutine per client connection reads a request, writes it
// on a pooled backend connection, reads the answer and writes it back, with
// no goroutine hand-offs, no per-request maps and no body copies beyond one
// buffer. This file parses message heads and frames bodies (RFC 9112).

// maxHeadBytes bounds a request or response head (start line and fields).
const maxHeadBytes = 64 << 10

// maxChunkLine bounds a chunk-size line (size and extensions).
const maxChunkLine = 4 << 10

// fieldKind marks the header fields the router reads or rewrites.
type fieldKind uint8

const (
	fieldOther fieldKind = iota
	fieldHost
	fieldContentLength
	fieldTransferEncoding
	fieldConnection
	fieldUpgrade
	fieldExpect
	fieldCookie
	fieldTE
	fieldTrailer
	fieldHopByHop      // Keep-Alive, Proxy-Connection, Proxy-Authenticate, Proxy-Authorization
	fieldForwarded     // Forwarded, X-Forwarded-*: the router sets its own
	fieldIdempotencyKy // Idempotency-Key, X-Idempotency-Key
)

// classify names the field kinds the router treats specially; the switch on
// length keeps the common case to one or two comparisons.
func classify(name []byte) fieldKind {
	switch len(name) {
	case 2:
		if equalFold(name, "te") {
			return fieldTE
		}
	case 4:
		if equalFold(name, "host") {
			return fieldHost
		}
	case 6:
		switch {
		case equalFold(name, "cookie"):
			return fieldCookie
		case equalFold(name, "expect"):
			return fieldExpect
		}
	case 7:
		switch {
		case equalFold(name, "upgrade"):
			return fieldUpgrade
		case equalFold(name, "trailer"):
			return fieldTrailer
		}
	case 9:
		if equalFold(name, "forwarded") {
			return fieldForwarded
		}
	case 10:
		switch {
		case equalFold(name, "connection"):
			return fieldConnection
		case equalFold(name, "keep-alive"):
			return fieldHopByHop
		}
	case 14:
		if equalFold(name, "content-length") {
			return fieldContentLength
		}
	case 15:
		switch {
		case equalFold(name, "x-forwarded-for"):
			return fieldForwarded
		case equalFold(name, "idempotency-key"):
			return fieldIdempotencyKy
		}
	case 16:
		switch {
		case equalFold(name, "x-forwarded-host"):
			return fieldForwarded
		case equalFold(name, "proxy-connection"):
			return fieldHopByHop
		}
	case 17:
		switch {
		case equalFold(name, "transfer-encoding"):
			return fieldTransferEncoding
		case equalFold(name, "x-forwarded-proto"):
			return fieldForwarded
		case equalFold(name, "x-idempotency-key"):
			return fieldIdempotencyKy
		}
	case 18:
		if equalFold(name, "proxy-authenticate") {
			return fieldHopByHop
		}
	case 19:
		if equalFold(name, "proxy-authorization") {
			return fieldHopByHop
		}
	}
	return fieldOther
}

// equalFold compares an ASCII name with a lower-case constant.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// field is one header line: slices of the head it was read into.
type field struct {
	name, value []byte
	kind        fieldKind
}

// bodyKind is how a message's body is delimited.
type bodyKind uint8

const (
	bodyNone    bodyKind = iota
	bodyLength           // Content-Length bytes
	bodyChunked          // chunked transfer coding
	bodyClose            // until the connection closes (responses only)
)

// statusError is a request the router refuses before forwarding it.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &statusError{status: 400, msg: fmt.Sprintf(format, args...)}
}

// errHeadTooLarge is a head longer than maxHeadBytes.
var errHeadTooLarge = errors.New("header section larger than 64 KiB")

// readHead reads one message head, up to and including its empty line, into
// buf (reused) and returns it. Empty lines before the start line are skipped
// (RFC 9112 §2.2). A head cut by the end of the stream is io.ErrUnexpectedEOF;
// io.EOF means nothing at all was read.
func readHead(br *bufio.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	lineStart := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > maxHeadBytes {
			return buf, errHeadTooLarge
		}
		buf = append(buf, chunk...)
		switch {
		case err == bufio.ErrBufferFull:
			continue // the line goes on
		case err == io.EOF && len(buf) > 0:
			return buf, io.ErrUnexpectedEOF
		case err != nil:
			return buf, err
		}
		line := buf[lineStart:]
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			if lineStart == 0 {
				buf = buf[:0] // an empty line before the start line
				continue
			}
			return buf, nil
		}
		lineStart = len(buf)
	}
}

// nextLine splits the first line off head, without its line ending.
func nextLine(head []byte) (line, rest []byte) {
	i := bytes.IndexByte(head, '\n')
	if i < 0 {
		return head, nil
	}
	line, rest = head[:i], head[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}

// isTokenChar reports whether c may appear in a token (method, field name).
func isTokenChar(c byte) bool {
	return c < 0x80 && tokenChars[c]
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTokenChar(c) {
			return false
		}
	}
	return true
}

// parseFields reads the field lines of a head into fields. A field line must
// be name ":" value with a token name and no control characters in the value;
// obsolete line folding is refused.
func parseFields(head []byte, fields []field) ([]field, error) {
	fields = fields[:0]
	for len(head) > 0 {
		var line []byte
		line, head = nextLine(head)
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return fields, errors.New("obsolete line folding")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return fields, fmt.Errorf("malformed header line %q", truncate(line))
		}
		value := trimOWS(line[colon+1:])
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return fields, fmt.Errorf("control character in header %q", line[:colon])
			}
		}
		fields = append(fields, field{name: line[:colon], value: value, kind: classify(line[:colon])})
	}
	return fields, nil
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// parseLength reads a Content-Length value: digits only.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// connectionOptions is what a Connection field says.
type connectionOptions struct {
	close, keepAlive, upgrade bool
	named                     [][]byte // other options: header names to drop
}

func (o *connectionOptions) parse(v []byte) {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = trimOWS(tok)
		switch {
		case len(tok) == 0:
		case equalFold(tok, "close"):
			o.close = true
		case equalFold(tok, "keep-alive"):
			o.keepAlive = true
		case equalFold(tok, "upgrade"):
			o.upgrade = true
		default:
			o.named = append(o.named, tok)
		}
	}
}

// drops reports whether the Connection field named name as hop-by-hop.
func (o *connectionOptions) drops(name []byte) bool {
	for _, n := range o.named {
		if len(n) == len(name) && bytes.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// request is one parsed request head. Its slices point into buf and are
// valid until the next request is read on the connection.
type request struct {
	buf            []byte
	fields         []field
	method, target []byte
	minor          int // HTTP/1.minor
	host           []byte
	hasHost        bool
	body           bodyKind
	length         int64
	conn           connectionOptions
	upgrade        []byte // the Upgrade field when Connection has "upgrade"
	expectContinue bool
	teTrailers     bool
	idempotencyKey bool
}

func (r *request) reset() {
	*r = request{buf: r.buf[:0], fields: r.fields[:0], conn: connectionOptions{named: r.conn.named[:0]}}
}

// keepAlive says whether the client wants the connection kept after this
// request.
func (r *request) keepAlive() bool {
	if r.minor == 0 {
		return r.conn.keepAlive && !r.conn.close
	}
	return !r.conn.close
}

// wantsUpgrade reports a protocol upgrade (WebSocket) request.
func (r *request) wantsUpgrade() bool { return r.conn.upgrade && len(r.upgrade) > 0 && r.minor == 1 }

func (r *request) isMethod(m string) bool { return string(r.method) == m }

// idempotent reports the methods RFC 9110 calls idempotent and safe to send
// twice, as the replay rules use them.
func (r *request) idempotent() bool {
	switch string(r.method) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// parseRequest parses r.buf, read by readHead.
func parseRequest(r *request) error {
	line, rest := nextLine(r.buf)
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return badRequest("malformed request line %q", truncate(line))
	}
	r.method = line[:sp1]
	line = line[sp1+1:]
	sp2 := bytes.IndexByte(line, ' ')
	if sp2 <= 0 {
		return badRequest("malformed request line")
	}
	r.target, line = line[:sp2], line[sp2+1:]
	if !isToken(r.method) {
		return badRequest("malformed method %q", truncate(r.method))
	}
	for _, c := range r.target {
		if c <= ' ' || c == 0x7f {
			return badRequest("malformed request target")
		}
	}
	switch {
	case string(line) == "HTTP/1.1":
		r.minor = 1
	case string(line) == "HTTP/1.0":
		r.minor = 0
	case len(line) == 8 && bytes.HasPrefix(line, []byte("HTTP/")) && line[6] == '.':
		return &statusError{status: 505, msg: fmt.Sprintf("HTTP version %s is not supported", line)}
	default:
		return badRequest("malformed HTTP version %q", truncate(line))
	}
	var err error
	if r.fields, err = parseFields(rest, r.fields); err != nil {
		return badRequest("%v", err)
	}
	hasLength, hasTE := false, false
	for i := range r.fields {
		f := &r.fields[i]
		switch f.kind {
		case fieldHost:
			if r.hasHost {
				return badRequest("more than one Host header")
			}
			r.host, r.hasHost = f.value, true
		case fieldContentLength:
			n, ok := parseLength(f.value)
			if !ok || hasLength && n != r.length {
				return badRequest("bad Content-Length %q", truncate(f.value))
			}
			r.length, hasLength = n, true
		case fieldTransferEncoding:
			if hasTE || !equalFold(f.value, "chunked") {
				return &statusError{status: 501, msg: fmt.Sprintf("transfer coding %q is not supported", truncate(f.value))}
			}
			hasTE = true
		case fieldConnection:
			r.conn.parse(f.value)
		case fieldUpgrade:
			r.upgrade = f.value
		case fieldExpect:
			if !equalFold(f.value, "100-continue") {
				return &statusError{status: 417, msg: fmt.Sprintf("expectation %q is not supported", truncate(f.value))}
			}
			r.expectContinue = true
		case fieldTE:
			r.teTrailers = bytes.Contains(bytes.ToLower(f.value), []byte("trailers"))
		case fieldIdempotencyKy:
			r.idempotencyKey = r.idempotencyKey || len(f.value) > 0
		}
	}
	switch {
	case hasTE && hasLength:
		// A message framed two ways is how requests are smuggled.
		return badRequest("both Transfer-Encoding and Content-Length")
	case hasTE && r.minor == 0:
		return badRequest("Transfer-Encoding in an HTTP/1.0 request")
	case hasTE:
		r.body = bodyChunked
	case hasLength && r.length > 0:
		r.body = bodyLength
	}
	if r.minor == 1 && !r.hasHost {
		return badRequest("missing Host header")
	}
	if string(r.method) == "CONNECT" {
		return &statusError{status: 405, msg: "CONNECT is not supported"}
	}
	r.absoluteForm()
	return nil
}

// absoluteForm turns an absolute-form target (http://host/path?q) into the
// origin form a backend expects, its authority becoming the Host as in
// net/http (RFC 9112 §3.2.2).
func (r *request) absoluteForm() {
	t := r.target
	sep := bytes.Index(t, []byte("://"))
	if sep <= 0 || !isScheme(t[:sep]) {
		return
	}
	rest := t[sep+3:]
	end := bytes.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	if at := bytes.LastIndexByte(authority, '@'); at >= 0 {
		authority = authority[at+1:]
	}
	if len(authority) > 0 {
		r.host, r.hasHost = authority, true
	}
	switch {
	case end == len(rest):
		r.target = []byte("/")
	case rest[end] == '/':
		r.target = rest[end:]
	default: // "?query" right after the authority
		r.target = append([]byte("/"), rest[end:]...)
	}
}

// isScheme reports a URI scheme: a letter, then letters, digits, + - .
func isScheme(b []byte) bool {
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return len(b) > 0
}

// response is one parsed response head from a backend.
type response struct {
	buf    []byte
	fields []field
	status int
	reason []byte // the status line after the version: "200 OK"
	minor  int
	body   bodyKind
	length int64
	conn   connectionOptions
}

func (r *response) reset() {
	*r = response{buf: r.buf[:0], fields: r.fields[:0], conn: connectionOptions{named: r.conn.named[:0]}}
}

// keepAlive says whether the backend keeps the connection after this
// response.
func (r *response) keepAlive() bool {
	if r.body == bodyClose {
		return false
	}
	if r.minor == 0 {
		return r.conn.keepAlive && !r.conn.close
	}
	return !r.conn.close
}

// parseResponse parses r.buf, the answer to a request with method method.
func parseResponse(r *response, head bool) error {
	line, rest := nextLine(r.buf)
	switch {
	case len(line) < 12 || line[8] != ' ' || !bytes.HasPrefix(line, []byte("HTTP/1.")):
		return fmt.Errorf("malformed status line %q", truncate(line))
	case line[7] == '1':
		r.minor = 1
	case line[7] == '0':
		r.minor = 0
	default:
		return fmt.Errorf("unsupported version in %q", truncate(line))
	}
	r.reason = line[9:]
	code := line[9:12]
	if len(line) > 12 && line[12] != ' ' {
		return fmt.Errorf("malformed status line %q", truncate(line))
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return fmt.Errorf("malformed status code %q", code)
		}
	}
	r.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if r.status < 100 {
		return fmt.Errorf("malformed status code %q", code)
	}
	for _, c := range r.reason {
		if c < ' ' && c != '\t' || c == 0x7f {
			return errors.New("control character in status line")
		}
	}
	var err error
	if r.fields, err = parseFields(rest, r.fields); err != nil {
		return err
	}
	hasLength, hasTE := false, false
	for i := range r.fields {
		f := &r.fields[i]
		switch f.kind {
		case fieldContentLength:
			n, ok := parseLength(f.value)
			if !ok || hasLength && n != r.length {
				return fmt.Errorf("bad Content-Length %q", truncate(f.value))
			}
			r.length, hasLength = n, true
		case fieldTransferEncoding:
			if hasTE || !equalFold(f.value, "chunked") {
				return fmt.Errorf("transfer coding %q is not supported", truncate(f.value))
			}
			hasTE = true
		case fieldConnection:
			r.conn.parse(f.value)
		}
	}
	switch {
	case head || r.status < 200 || r.status == 204 || r.status == 304:
		r.body = bodyNone
	case hasTE:
		r.body = bodyChunked
		if hasLength {
			// Transfer-Encoding wins (RFC 9112 §6.3), and a connection
			// framed two ways is not trusted again.
			r.conn.close = true
		}
	case hasLength:
		r.body = bodyLength
	default:
		r.body = bodyClose
	}
	return nil
}

// outBuf gathers what the router writes to one peer so that a head and a
// small body leave in one write. written counts the bytes the peer's socket
// accepted, so a failed request can tell whether any of its body left.
type outBuf struct {
	w       net.Conn
	b       []byte
	written int64
}

func (o *outBuf) reset(w net.Conn) {
	o.w, o.b, o.written = w, o.b[:0], 0
}

func (o *outBuf) str(s string) { o.b = append(o.b, s...) }

func (o *outBuf) bytes(p []byte) { o.b = append(o.b, p...) }

// write queues p, flushing first when it would not fit, and writes a large
// p straight through.
func (o *outBuf) write(p []byte) error {
	if len(o.b)+len(p) <= cap(o.b) {
		o.b = append(o.b, p...)
		return nil
	}
	if err := o.flush(); err != nil {
		return err
	}
	if len(p) >= cap(o.b)/2 {
		n, err := o.w.Write(p)
		o.written += int64(n)
		return err
	}
	o.b = append(o.b, p...)
	return nil
}

func (o *outBuf) flush() error {
	if len(o.b) == 0 {
		return nil
	}
	n, err := o.w.Write(o.b)
	o.written += int64(n)
	o.b = o.b[:0]
	return err
}

// field writes one header line.
func (o *outBuf) field(name, value []byte) {
	o.b = append(o.b, name...)
	o.b = append(o.b, ": "...)
	o.b = append(o.b, value...)
	o.b = append(o.b, "\r\n"...)
}

// bodyReader reads one message body from a connection's reader, as framed,
// without reading past its end.
type bodyReader struct {
	br      *bufio.Reader
	kind    bodyKind
	left    int64 // bodyLength: bytes to go; bodyChunked: bytes of the current chunk
	inChunk bool
	done    bool
	trailer []byte // bodyChunked: the trailer fields, once done
}

func (b *bodyReader) reset(br *bufio.Reader, kind bodyKind, length int64) {
	*b = bodyReader{br: br, kind: kind, left: length, trailer: b.trailer[:0]}
	if kind == bodyNone || kind == bodyLength && length == 0 {
		b.done = true
	}
}

// wouldBlock reports whether the next Read has to wait for the network, so
// the copier flushes what it holds first and a stream reaches its reader as
// it is produced.
func (b *bodyReader) wouldBlock() bool { return b.br.Buffered() == 0 }

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	switch b.kind {
	case bodyLength:
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err := b.br.Read(p)
		b.left -= int64(n)
		if b.left == 0 {
			b.done = true
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	case bodyClose:
		n, err := b.br.Read(p)
		if err == io.EOF {
			b.done = true
		}
		return n, err
	}
	return b.readChunked(p)
}

// readChunked decodes the chunked coding, returning what it has rather than
// waiting when a chunk ends and the next is not in yet.
func (b *bodyReader) readChunked(p []byte) (int, error) {
	n := 0
	for n < len(p) && !b.done {
		if !b.inChunk {
			if n > 0 && b.br.Buffered() == 0 {
				break
			}
			if err := b.chunkHeader(); err != nil {
				return n, err
			}
			continue
		}
		if n > 0 && b.br.Buffered() == 0 {
			break
		}
		q := p[n:]
		if int64(len(q)) > b.left {
			q = q[:b.left]
		}
		m, err := b.br.Read(q)
		n += m
		b.left -= int64(m)
		if b.left == 0 {
			if err := b.chunkEnd(); err != nil {
				return n, err
			}
			b.inChunk = false
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	if b.done && n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

var errBadChunk = errors.New("malformed chunked encoding")

// chunkHeader reads a chunk-size line; the last chunk's trailer section is
// read into b.trailer.
func (b *bodyReader) chunkHeader() error {
	line, err := readLine(b.br, maxChunkLine)
	if err != nil {
		return err
	}
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i] // chunk extensions are dropped
	}
	line = trimOWS(line)
	if len(line) == 0 || len(line) > 15 {
		return errBadChunk
	}
	size, err := strconv.ParseUint(string(line), 16, 64)
	if err != nil {
		return errBadChunk
	}
	if size > 0 {
		b.left, b.inChunk = int64(size), true
		return nil
	}
	for {
		line, err := readLine(b.br, maxChunkLine)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			b.done = true
			return nil
		}
		if len(b.trailer)+len(line) > maxHeadBytes {
			return errHeadTooLarge
		}
		if _, err := parseFields(line, nil); err != nil {
			continue // a malformed trailer field is dropped, not forwarded
		}
		b.trailer = append(b.trailer, line...)
		b.trailer = append(b.trailer, "\r\n"...)
	}
}

// chunkEnd reads the line ending after a chunk's data.
func (b *bodyReader) chunkEnd() error {
	line, err := readLine(b.br, 2)
	if err != nil {
		return err
	}
	if len(line) != 0 {
		return errBadChunk
	}
	return nil
}

// readLine reads one line of at most max bytes, without its line ending.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > max+2 {
		return nil, errBadChunk
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

// copyErr tells which side a body copy failed on.
type copyErr struct {
	read  error // reading the source (the sender's fault or absence)
	write error // writing the destination
}

func (e copyErr) failed() bool { return e.read != nil || e.write != nil }

// relayBody copies src to dst through buf, chunk-coding it when chunk is
// set (then ending with the last chunk and src's trailer when trailers),
// and flushing dst whenever src has nothing more at hand.
func relayBody(dst *outBuf, src *bodyReader, buf []byte, chunk, trailers bool) copyErr {
	for {
		if src.wouldBlock() {
			if err := dst.flush(); err != nil {
				return copyErr{write: err}
			}
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			if chunk {
				dst.b = strconv.AppendUint(dst.b, uint64(n), 16)
				dst.str("\r\n")
			}
			if err := dst.write(buf[:n]); err != nil {
				return copyErr{write: err}
			}
			if chunk {
				dst.str("\r\n")
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return copyErr{read: rerr}
		}
	}
	if chunk {
		dst.str("0\r\n")
		if trailers {
			dst.bytes(src.trailer)
		}
		dst.str("\r\n")
	}
	if err := dst.flush(); err != nil {
		return copyErr{write: err}
	}
	return copyErr{}
}
