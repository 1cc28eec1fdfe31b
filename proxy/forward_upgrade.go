package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/gatehouse/gatehouse/internal/ascii"
	"github.com/gatehouse/gatehouse/internal/reqinfo"
)

// tunnel completes a protocol upgrade (WebSocket): it answers the client
// with the app's 101, then copies bytes both ways between the client's
// connection and the app's until either side ends. res.Body is the app's
// connection (the Pool contract).
func (fw *forwarder) tunnel(w http.ResponseWriter, r *http.Request, res *http.Response, asked string) {
	info := reqinfo.From(r.Context())
	back, ok := res.Body.(io.ReadWriteCloser)
	got := upgradeType(res.Header)
	switch {
	case !ok:
		res.Body.Close()
		fw.fail(w, r, errors.New("101 response body is not writable"))
		return
	case asked == "" || !ascii.EqualFold(got, asked):
		// RFC 9110 15.2.2: the server switches to a protocol the client
		// listed; anything else would leave the client talking to the
		// wrong thing.
		res.Body.Close()
		fw.fail(w, r, fmt.Errorf("app switched to protocol %q when %q was asked for", got, asked))
		return
	}
	defer back.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		fw.fail(w, r, fmt.Errorf("taking over the client connection for an upgrade: %w", err))
		return
	}
	defer conn.Close()

	h := w.Header() // the front's own fields (X-Request-Id) come along
	copyResponseHeader(h, res.Header)
	h["Connection"] = connUpgrade
	h["Upgrade"] = []string{got}
	res.Header, res.Body = h, nil
	err = res.Write(brw)
	if err == nil {
		err = brw.Flush()
	}
	if err != nil {
		fw.log.LogAttrs(r.Context(), slog.LevelDebug, "writing the 101 to the client failed", slog.String("request_id", info.ID), slog.Any("error", err))
		return
	}

	// The request's end (server shutdown, client gone as net/http sees
	// it) closes the app side, which ends both copies.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
		back.Close()
	}()

	errc := make(chan error, 2)
	go func() {
		// What the client sent after the request head, then the rest.
		var err error
		if n := brw.Reader.Buffered(); n > 0 {
			var early []byte
			early, _ = brw.Reader.Peek(n)
			_, err = back.Write(early)
		}
		if err == nil {
			_, err = io.Copy(back, conn)
		}
		endWrites(back)
		errc <- err
	}()
	go func() {
		_, err := io.Copy(conn, back)
		endWrites(conn)
		errc <- err
	}()
	// One direction ending (an EOF passed on as a half-close) lets the
	// other finish; an error in either ends both.
	if err := <-errc; err != nil {
		conn.Close()
		back.Close()
	}
	<-errc
}

// endWrites passes an EOF on to c: a half-close when c can, so the other
// direction may finish, or else a close, so that neither side waits for
// the other forever (the tunnel ends either way once a side is done).
func endWrites(c io.Closer) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}
