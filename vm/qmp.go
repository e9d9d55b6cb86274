package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// QMP is qemu's JSON control protocol: qemu greets with {"QMP": ...}, the
// client sends {"execute": "qmp_capabilities"} to leave negotiation mode,
// then each {"execute": NAME, "arguments": {...}} gets one {"return": ...}
// or {"error": {"class": ..., "desc": ...}}. Events ({"event": ...}) may
// arrive at any time in between and are skipped here.

// QMPError is an error reply to a QMP command.
type QMPError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *QMPError) Error() string { return "qmp: " + e.Class + ": " + e.Desc }

// qmpKind says which kind of message qemu sent.
type qmpKind int

const (
	qmpGreeting qmpKind = iota + 1
	qmpReturn
	qmpErrorReply
	qmpEvent
)

// qmpMessage is one message from qemu, decoded.
type qmpMessage struct {
	Kind   qmpKind
	Return json.RawMessage // for qmpReturn
	Err    *QMPError       // for qmpErrorReply
	Event  string          // for qmpEvent
}

// maxQMPMessage bounds one message; qemu's replies to the commands used
// here are a few hundred bytes.
const maxQMPMessage = 1 << 20

// parseQMPMessage decodes one message and classifies it.
func parseQMPMessage(b []byte) (qmpMessage, error) {
	var raw struct {
		Greeting json.RawMessage `json:"QMP"`
		Return   json.RawMessage `json:"return"`
		Error    *QMPError       `json:"error"`
		Event    *string         `json:"event"`
	}
	// Unmarshal, unlike a Decoder, refuses anything after the value.
	if err := json.Unmarshal(b, &raw); err != nil {
		return qmpMessage{}, fmt.Errorf("qmp: bad message: %w", err)
	}
	switch {
	case raw.Error != nil:
		return qmpMessage{Kind: qmpErrorReply, Err: raw.Error}, nil
	case raw.Return != nil:
		return qmpMessage{Kind: qmpReturn, Return: raw.Return}, nil
	case raw.Event != nil:
		return qmpMessage{Kind: qmpEvent, Event: *raw.Event}, nil
	case raw.Greeting != nil:
		return qmpMessage{Kind: qmpGreeting}, nil
	}
	return qmpMessage{}, errors.New("qmp: message is neither greeting, reply nor event")
}

// qmpClient talks to one qemu over its QMP socket, one command at a time.
type qmpClient struct {
	mu   sync.Mutex
	conn net.Conn
	dec  *json.Decoder
}

// newQMPClient reads the greeting on conn and leaves negotiation mode.
func newQMPClient(ctx context.Context, conn net.Conn) (*qmpClient, error) {
	c := &qmpClient{conn: conn, dec: json.NewDecoder(conn)}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setDeadline(ctx)
	m, err := c.read()
	if err != nil {
		return nil, err
	}
	if m.Kind != qmpGreeting {
		return nil, errors.New("qmp: no greeting")
	}
	if _, err := c.executeLocked(ctx, "qmp_capabilities", nil); err != nil {
		return nil, err
	}
	return c, nil
}

// dialQMP connects to the QMP socket at path, retrying while qemu starts
// up, until ctx is done or exited is closed.
func dialQMP(ctx context.Context, path string, exited <-chan struct{}) (*qmpClient, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			c, err := newQMPClient(ctx, conn)
			if err != nil {
				conn.Close()
				return nil, err
			}
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp: connecting to %s: %w (%v)", path, ctx.Err(), err)
		case <-exited:
			return nil, errors.New("qmp: qemu exited during start-up")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// defaultQMPTimeout bounds a command when the context has no deadline.
const defaultQMPTimeout = 30 * time.Second

func (c *qmpClient) setDeadline(ctx context.Context) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultQMPTimeout)
	}
	_ = c.conn.SetDeadline(deadline)
}

func (c *qmpClient) read() (qmpMessage, error) {
	var raw json.RawMessage
	if err := c.dec.Decode(&raw); err != nil {
		return qmpMessage{}, fmt.Errorf("qmp: reading: %w", err)
	}
	if len(raw) > maxQMPMessage {
		return qmpMessage{}, fmt.Errorf("qmp: message of %d bytes", len(raw))
	}
	return parseQMPMessage(raw)
}

// execute runs one command and returns its reply.
func (c *qmpClient) execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setDeadline(ctx)
	return c.executeLocked(ctx, command, args)
}

func (c *qmpClient) executeLocked(ctx context.Context, command string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("qmp: %s: %w", command, err)
	}
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp: %s: %w", command, err)
	}
	// A cancelled context interrupts the read through the deadline.
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		m, err := c.read()
		if err != nil {
			return nil, fmt.Errorf("qmp: %s: %w", command, err)
		}
		switch m.Kind {
		case qmpReturn:
			return m.Return, nil
		case qmpErrorReply:
			return nil, fmt.Errorf("qmp: %s: %w", command, m.Err)
		}
	}
}

func (c *qmpClient) close() error { return c.conn.Close() }
