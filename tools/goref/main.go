// Command swimnet-goref prints reference encodings made by Go memberlist
// 0.2.2 (Debian's source, built by scripts/build-goref.sh) and reports how
// memberlist's own decoders read bytes produced elsewhere. It exists so that
// crates/swimnet-wire/tests/goref.rs can check swimnet-wire byte for byte
// against the real Go code.
//
// Usage:
//
//	swimnet-goref vectors   one JSON object per line on stdout
//	swimnet-goref decode    JSON requests on stdin, one JSON answer per line
//
// JSON conventions (both modes):
//   - every byte string is lower-case hex;
//   - a memberlist struct is shown as an object keyed by its Go field names;
//     its []byte fields are hex strings, and a nil []byte is JSON null (so a
//     decoded msgpack nil shows as null and an empty msgpack string as "");
//   - integers are JSON numbers.
package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log"
	"math/rand"
	"net"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// obj is a JSON object under construction.
type obj = map[string]interface{}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: swimnet-goref vectors|decode")
		os.Exit(2)
	}
	// memberlist logs through the standard logger in a few places.
	log.SetOutput(os.Stderr)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	switch os.Args[1] {
	case "vectors":
		emitVectors(w)
	case "decode":
		runDecode(os.Stdin, w)
	default:
		fmt.Fprintln(os.Stderr, "usage: swimnet-goref vectors|decode")
		os.Exit(2)
	}
}

// ---------------------------------------------------------------------------
// Struct <-> JSON through reflection (the memberlist structs are unexported,
// but their fields are exported).

// fill sets the named fields of the struct behind v. Values may be []byte,
// string, bool or any Go integer.
func fill(v interface{}, fields obj) {
	rv := reflect.ValueOf(v).Elem()
	for name, val := range fields {
		f := rv.FieldByName(name)
		if !f.IsValid() {
			panic(fmt.Sprintf("no field %s in %s", name, rv.Type()))
		}
		if val == nil {
			continue
		}
		x := reflect.ValueOf(val)
		switch f.Kind() {
		case reflect.Slice:
			f.SetBytes(x.Bytes())
		case reflect.String:
			f.SetString(x.String())
		case reflect.Bool:
			f.SetBool(x.Bool())
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.SetInt(x.Convert(reflect.TypeOf(int64(0))).Int())
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(x.Convert(reflect.TypeOf(uint64(0))).Uint())
		default:
			panic(fmt.Sprintf("field %s: unsupported kind %s", name, f.Kind()))
		}
	}
}

// view turns a (pointer to a) struct into a JSON object with hex byte fields.
func view(v interface{}) obj {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Ptr {
		rv = rv.Elem()
	}
	out := obj{}
	t := rv.Type()
	for i := 0; i < t.NumField(); i++ {
		f := rv.Field(i)
		name := t.Field(i).Name
		switch f.Kind() {
		case reflect.Slice:
			if f.IsNil() {
				out[name] = nil
			} else {
				out[name] = hex.EncodeToString(f.Bytes())
			}
		case reflect.String:
			out[name] = f.String()
		case reflect.Bool:
			out[name] = f.Bool()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			out[name] = f.Int()
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			out[name] = f.Uint()
		default:
			out[name] = fmt.Sprintf("%v", f.Interface())
		}
	}
	return out
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func newMsg(kind string) (uint8, interface{}) {
	t, v, ok := memberlist.SwimnetNewMsg(kind)
	if !ok {
		panic("unknown struct " + kind)
	}
	return t, v
}

// encodeMsg runs memberlist's encode on the struct kind filled with fields.
// Structs without a type byte of their own come back without one.
func encodeMsg(kind string, fields obj) ([]byte, interface{}) {
	t, v := newMsg(kind)
	fill(v, fields)
	b, err := memberlist.SwimnetEncode(t, v)
	must(err)
	if t == 255 {
		b = b[1:]
	}
	return b, v
}

func hx(b []byte) interface{} {
	if b == nil {
		return nil
	}
	return hex.EncodeToString(b)
}

func hexList(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = hex.EncodeToString(b)
	}
	return out
}

// ---------------------------------------------------------------------------
// In-memory transport and connection, so that memberlist's own send and read
// paths can run without sockets.

type memConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func newMemConn(in []byte) *memConn { return &memConn{in: bytes.NewReader(in)} }

func (c *memConn) Read(p []byte) (int, error)         { return c.in.Read(p) }
func (c *memConn) Write(p []byte) (int, error)        { return c.out.Write(p) }
func (c *memConn) Close() error                       { return nil }
func (c *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IP{127, 0, 0, 1}, Port: 7946} }
func (c *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IP{127, 0, 0, 2}, Port: 7946} }
func (c *memConn) SetDeadline(t time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }

type memTransport struct {
	packets [][]byte
	conns   []*memConn
}

func (t *memTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return net.IP{127, 0, 0, 1}, 7946, nil
}
func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.packets = append(t.packets, append([]byte(nil), b...))
	return time.Now(), nil
}
func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return nil }
func (t *memTransport) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	c := newMemConn(nil)
	t.conns = append(t.conns, c)
	return c, nil
}
func (t *memTransport) StreamCh() <-chan net.Conn { return nil }
func (t *memTransport) Shutdown() error           { return nil }
func (t *memTransport) IngestPacket(net.Conn, net.Addr, time.Time, bool) error {
	return nil
}
func (t *memTransport) IngestStream(net.Conn) error { return nil }
func (t *memTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}
func (t *memTransport) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, d)
}

// memDelegate hands out a fixed push/pull user state and records user messages.
type memDelegate struct {
	state []byte
	msgs  [][]byte
}

func (d *memDelegate) NodeMeta(int) []byte             { return nil }
func (d *memDelegate) NotifyMsg(b []byte)              { d.msgs = append(d.msgs, append([]byte(nil), b...)) }
func (d *memDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d *memDelegate) LocalState(bool) []byte          { return d.state }
func (d *memDelegate) MergeRemoteState([]byte, bool)   {}

type harnessOpts struct {
	protocol  uint8 // 0 means 2
	compress  bool
	keys      [][]byte
	delegate  *memDelegate
	verifyIn  bool
	withNodes bool
}

func newHarness(o harnessOpts) (*memberlist.Memberlist, *memTransport) {
	conf := &memberlist.Config{
		Name:                 "goref",
		BindPort:             7946,
		ProtocolVersion:      2,
		EnableCompression:    o.compress,
		GossipVerifyIncoming: o.verifyIn,
		GossipVerifyOutgoing: true,
		TCPTimeout:           time.Second,
		UDPBufferSize:        1400,
	}
	if o.protocol != 0 {
		conf.ProtocolVersion = o.protocol
	}
	if len(o.keys) > 0 {
		kr, err := memberlist.NewKeyring(o.keys[1:], o.keys[0])
		must(err)
		conf.Keyring = kr
	}
	if o.delegate != nil {
		conf.Delegate = o.delegate
	}
	tr := &memTransport{}
	m := memberlist.SwimnetHarness(conf, tr)
	if o.withNodes {
		for _, n := range pushPullNodes() {
			m.SwimnetAddNode(n.node, n.inc, n.state)
		}
	}
	return m, tr
}

type testNode struct {
	node  memberlist.Node
	inc   uint32
	state memberlist.NodeStateType
}

// pushPullNodes is the node table the push/pull vectors send.
func pushPullNodes() []testNode {
	return []testNode{
		{memberlist.Node{Name: "n1", Addr: net.IP{127, 0, 0, 1}, Port: 7946,
			PMin: 1, PMax: 5, PCur: 2, DMin: 2, DMax: 5, DCur: 5}, 3, memberlist.StateAlive},
		{memberlist.Node{Name: "n2", Addr: net.ParseIP("fd00::2"), Port: 7947, Meta: []byte{0xff, 0x80},
			PMin: 1, PMax: 5, PCur: 2, DMin: 2, DMax: 5, DCur: 4}, 5, memberlist.StateSuspect},
	}
}

// ---------------------------------------------------------------------------
// vectors

type vecWriter struct {
	w *bufio.Writer
}

func (v vecWriter) emit(o obj) {
	b, err := json.Marshal(o)
	must(err)
	v.w.Write(b)
	v.w.WriteByte('\n')
}

func ip4(a, b, c, d byte) []byte { return []byte{a, b, c, d} }

var vsn = []byte{1, 5, 2, 2, 5, 5}

func seqBytes(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

var (
	key16 = seqBytes(16, 0x00)
	key24 = seqBytes(24, 0x40)
	key32 = seqBytes(32, 0x80)
)

// messageVectors lists (name, struct, fields) for single-message vectors.
type msgCase struct {
	name   string
	kind   string
	fields obj
	// exact is false when swimnet-wire's model cannot express the input
	// (e.g. an empty but non-nil []byte, which Go writes as a0, not c0).
	exact bool
}

func messageCases() []msgCase {
	v6 := net.ParseIP("2001:db8::1")
	meta512 := make([]byte, 512)
	for i := range meta512 {
		meta512[i] = byte(i * 7)
	}
	long40 := strings.Repeat("n", 40)
	long300 := strings.Repeat("m", 300)
	src := obj{"SourceAddr": ip4(127, 0, 0, 1), "SourcePort": 7946, "SourceNode": "n1"}
	with := func(a obj, b obj) obj {
		o := obj{}
		for k, v := range a {
			o[k] = v
		}
		for k, v := range b {
			o[k] = v
		}
		return o
	}
	return []msgCase{
		{"ping_source", "ping", with(obj{"SeqNo": 7, "Node": "n2"}, src), true},
		{"ping_plain", "ping", obj{"SeqNo": 300, "Node": "n2"}, true},
		{"ping_seq_u32", "ping", obj{"SeqNo": uint32(4294967295), "Node": "node-b"}, true},
		{"ping_seq_70000_empty_node", "ping", obj{"SeqNo": 70000}, true},
		{"ping_source_ipv6", "ping", with(obj{"SeqNo": 1, "Node": "n2"},
			obj{"SourceAddr": []byte(v6), "SourcePort": 65535, "SourceNode": long40}), true},
		{"ping_source_port_only", "ping", obj{"SeqNo": 2, "Node": "n2", "SourcePort": 1}, true},
		{"indirect_nack_true", "indirectPingReq", with(obj{"SeqNo": 7, "Target": ip4(127, 0, 0, 1),
			"Port": 7947, "Node": "n3", "Nack": true}, src), true},
		{"indirect_nack_false", "indirectPingReq", obj{"SeqNo": 65536, "Target": ip4(10, 1, 2, 3),
			"Port": 0, "Node": "n3", "Nack": false}, true},
		{"ack_nil", "ackResp", obj{"SeqNo": 7}, true},
		{"ack_payload", "ackResp", obj{"SeqNo": 7, "Payload": []byte{1, 2}}, true},
		{"ack_empty_payload", "ackResp", obj{"SeqNo": 8, "Payload": []byte{}}, false},
		{"ack_payload_300", "ackResp", obj{"SeqNo": 255, "Payload": seqBytes(300, 1)}, true},
		{"nack_70000", "nackResp", obj{"SeqNo": 70000}, true},
		{"nack_large", "nackResp", obj{"SeqNo": uint32(0xfffffff0)}, true},
		{"err", "errResp", obj{"Error": "boom"}, true},
		{"err_long", "errResp", obj{"Error": long300}, true},
		{"suspect", "suspect", obj{"Incarnation": 1, "Node": "n2", "From": "n1"}, true},
		{"suspect_large_inc", "suspect", obj{"Incarnation": uint32(0x12345678), "Node": long40, "From": "n1"}, true},
		{"dead", "dead", obj{"Incarnation": 1, "Node": "n1", "From": "n1"}, true},
		{"dead_other", "dead", obj{"Incarnation": 200, "Node": "n2", "From": "n1"}, true},
		{"alive_nil_meta", "alive", obj{"Incarnation": 1, "Node": "n1", "Addr": ip4(127, 0, 0, 1),
			"Port": 7946, "Vsn": vsn}, true},
		{"alive_meta_ff80", "alive", obj{"Incarnation": 1, "Node": "n1", "Addr": ip4(127, 0, 0, 1),
			"Port": 7946, "Meta": []byte{0xff, 0x80}, "Vsn": vsn}, true},
		{"alive_meta512_ipv6", "alive", obj{"Incarnation": 65535, "Node": "node-with-a-longer-name-0123456789",
			"Addr": []byte(v6), "Port": 80, "Meta": meta512, "Vsn": []byte{1, 5, 2, 2, 5, 4}}, true},
		{"alive_long_name", "alive", obj{"Incarnation": 128, "Node": long300, "Addr": ip4(192, 0, 2, 1),
			"Port": 127, "Meta": seqBytes(31, 0x20), "Vsn": vsn}, true},
		{"alive_empty_meta", "alive", obj{"Incarnation": 1, "Node": "n1", "Addr": ip4(127, 0, 0, 1),
			"Port": 7946, "Meta": []byte{}, "Vsn": vsn}, false},
		{"push_pull_header", "pushPullHeader", obj{"Nodes": 2, "UserStateLen": 300, "Join": true}, true},
		{"push_pull_header_zero", "pushPullHeader", obj{"Nodes": 0, "UserStateLen": 0, "Join": false}, true},
		{"push_pull_header_large", "pushPullHeader", obj{"Nodes": 70000, "UserStateLen": 1 << 20, "Join": false}, true},
		{"push_node_state", "pushNodeState", obj{"Name": "n1", "Addr": ip4(127, 0, 0, 1), "Port": 7946,
			"Incarnation": 3, "State": 0, "Vsn": vsn}, true},
		{"push_node_state_left", "pushNodeState", obj{"Name": "n9", "Addr": []byte(v6), "Port": 7000,
			"Meta": []byte{0xff, 0x81, 0xa1, 'a', 0xa1, 'b'}, "Incarnation": 0x10000, "State": 3, "Vsn": vsn}, true},
		{"user_msg_header", "userMsgHeader", obj{"UserMsgLen": 200}, true},
		{"user_msg_header_large", "userMsgHeader", obj{"UserMsgLen": 70000}, true},
		{"compress_struct", "compress", obj{"Algo": 0, "Buf": []byte("not really lzw")}, true},
	}
}

// randomText is printable ASCII from a fixed-seed generator.
func randomText(n int, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(0x20 + r.Intn(95))
	}
	return b
}

func randomBytes(n int, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	b := make([]byte, n)
	r.Read(b)
	return b
}

func aliveCompound(n int) []byte {
	var parts [][]byte
	for i := 0; i < n; i++ {
		b, _ := encodeMsg("alive", obj{"Incarnation": i + 1, "Node": fmt.Sprintf("node-%02d", i),
			"Addr": ip4(127, 0, 0, byte(10+i)), "Port": 7946, "Meta": []byte{0xff, 0x80}, "Vsn": vsn})
		parts = append(parts, b)
	}
	return memberlist.SwimnetMakeCompound(parts)
}

func emitVectors(w *bufio.Writer) {
	out := vecWriter{w}
	encoded := map[string][]byte{}

	// 1. single messages
	for _, c := range messageCases() {
		b, v := encodeMsg(c.kind, c.fields)
		t, _ := newMsg(c.kind)
		encoded[c.name] = b
		o := obj{"name": c.name, "cat": "message", "struct": c.kind, "hex": hex.EncodeToString(b),
			"msg": view(v), "exact": c.exact}
		if t == 255 {
			o["type"] = nil
		} else {
			o["type"] = t
		}
		out.emit(o)
	}
	// a raw user message (type byte + application bytes, no msgpack)
	userPkt := append([]byte{8}, []byte("user payload \x00\xff")...)
	out.emit(obj{"name": "user_packet", "cat": "user", "hex": hex.EncodeToString(userPkt),
		"payload": hex.EncodeToString(userPkt[1:])})

	// 2. compounds
	compounds := []struct {
		name  string
		parts [][]byte
	}{
		{"compound_appendix", [][]byte{{0x04, 0x80}, {0x08, 0x01, 0x02, 0x03}}},
		{"compound_mixed", [][]byte{encoded["ping_source"], encoded["suspect"], encoded["alive_meta_ff80"],
			encoded["dead"], userPkt}},
		{"compound_single", [][]byte{encoded["ack_nil"]}},
		{"compound_empty_part", [][]byte{encoded["nack_70000"], {}, encoded["err"]}},
	}
	for _, c := range compounds {
		b := memberlist.SwimnetMakeCompound(c.parts)
		out.emit(obj{"name": c.name, "cat": "compound", "hex": hex.EncodeToString(b),
			"parts": hexList(c.parts)})
	}
	// 127 parts: the most that 0.2.2's decoder handles (its count*2 is
	// computed in a byte).
	var many [][]byte
	for i := 0; i < 127; i++ {
		many = append(many, []byte{8, byte(i)})
	}
	b := memberlist.SwimnetMakeCompound(many)
	out.emit(obj{"name": "compound_127", "cat": "compound", "hex": hex.EncodeToString(b), "parts": hexList(many)})

	// 3. LZW through compressPayload
	lzwInputs := []struct {
		name string
		in   []byte
	}{
		{"lzw_hello", []byte("hello hello hello hello")},
		{"lzw_short_text", []byte("The quick brown fox jumps over the lazy dog")},
		{"lzw_empty", []byte{}},
		{"lzw_one_byte", []byte{0x42}},
		{"lzw_random_text_5000", randomText(5000, 1)},
		{"lzw_random_text_20000", randomText(20000, 2)},
		{"lzw_random_bytes_5000", randomBytes(5000, 3)},
		{"lzw_repeat_a_10000", bytes.Repeat([]byte{'a'}, 10000)},
		{"lzw_alive_compound", aliveCompound(12)},
		{"lzw_ping_message", encoded["ping_source"]},
	}
	for _, c := range lzwInputs {
		b, err := memberlist.SwimnetCompress(c.in)
		must(err)
		_, cv := newMsg("compress")
		must(memberlist.SwimnetDecode(b[1:], cv))
		back, err := memberlist.SwimnetDecompress(b[1:])
		must(err)
		if !bytes.Equal(back, c.in) {
			panic("lzw round trip failed for " + c.name)
		}
		out.emit(obj{"name": c.name, "cat": "lzw", "hex": hex.EncodeToString(b),
			"plain": hex.EncodeToString(c.in), "lzw": view(cv)["Buf"]})
	}

	// 4. the packet send path (rawSendMsgPacket): CRC, compression, both.
	crcNode := &memberlist.Node{Name: "peer", Addr: net.IP{127, 0, 0, 2}, Port: 7946, PMin: 1, PMax: 5, PCur: 2}
	oldNode := &memberlist.Node{Name: "old", Addr: net.IP{127, 0, 0, 3}, Port: 7946, PMin: 1, PMax: 4, PCur: 2}
	to := memberlist.Address{Addr: "127.0.0.2:7946", Name: "peer"}
	packets := []struct {
		name     string
		compress bool
		node     *memberlist.Node
		inner    []byte
	}{
		{"crc_alive", false, crcNode, encoded["alive_nil_meta"]},
		{"crc_compound", false, crcNode, memberlist.SwimnetMakeCompound([][]byte{encoded["ping_source"], encoded["suspect"]})},
		{"crc_compressed_compound", true, crcNode, aliveCompound(8)},
		{"nocrc_pmax4", false, oldNode, encoded["alive_nil_meta"]},
		{"compressed_nocrc", true, nil, aliveCompound(5)},
		{"compress_not_smaller", true, crcNode, encoded["ack_nil"]},
	}
	for _, p := range packets {
		m, tr := newHarness(harnessOpts{compress: p.compress})
		must(m.SwimnetSendPacket(to, p.node, p.inner))
		out.emit(obj{"name": p.name, "cat": "packet", "hex": hex.EncodeToString(tr.packets[0]),
			"inner": hex.EncodeToString(p.inner), "compress": p.compress,
			"crc": p.node != nil && p.node.PMax >= 5})
	}

	// 5. encryption (random nonces: compare by decrypting)
	plainPing := encoded["ping_source"]
	plain32 := seqBytes(32, 0x61)
	encs := []struct {
		name  string
		vsn   uint8
		key   []byte
		plain []byte
		aad   []byte
	}{
		{"enc_v1_k16", 1, key16, plainPing, nil},
		{"enc_v0_k16", 0, key16, plainPing, nil},
		{"enc_v1_k32", 1, key32, plainPing, nil},
		{"enc_v0_k32", 0, key32, plainPing, nil},
		{"enc_v1_k24", 1, key24, plainPing, nil},
		{"enc_v0_k16_block_multiple", 0, key16, plain32, nil},
		{"enc_v1_k16_empty", 1, key16, []byte{}, nil},
		{"enc_v0_k32_empty", 0, key32, []byte{}, nil},
		{"enc_v1_k16_aad", 1, key16, plainPing, []byte{0x0a, 0, 0, 0, 0x2f}},
	}
	for _, e := range encs {
		b, err := memberlist.SwimnetEncrypt(e.vsn, e.key, e.plain, e.aad)
		must(err)
		out.emit(obj{"name": e.name, "cat": "encrypt", "hex": hex.EncodeToString(b), "vsn": e.vsn,
			"key": hex.EncodeToString(e.key), "plain": hex.EncodeToString(e.plain), "aad": hex.EncodeToString(e.aad)})
	}
	// the whole packet send path with a keyring (ProtocolVersion 1 -> v0, 2 -> v1)
	for _, c := range []struct {
		name     string
		protocol uint8
		key      []byte
		compress bool
		node     *memberlist.Node
		inner    []byte
	}{
		{"enc_packet_v1_k32", 2, key32, false, nil, encoded["ping_source"]},
		{"enc_packet_v0_k16", 1, key16, false, nil, encoded["ack_payload"]},
		{"enc_packet_v1_crc_compressed", 2, key16, true, crcNode, aliveCompound(6)},
	} {
		m, tr := newHarness(harnessOpts{protocol: c.protocol, compress: c.compress, keys: [][]byte{c.key}})
		must(m.SwimnetSendPacket(to, c.node, c.inner))
		// what went into the cipher: redo the same send without a key
		mp, trp := newHarness(harnessOpts{protocol: c.protocol, compress: c.compress})
		must(mp.SwimnetSendPacket(to, c.node, c.inner))
		vs := 1
		if c.protocol == 1 {
			vs = 0
		}
		out.emit(obj{"name": c.name, "cat": "encrypt", "hex": hex.EncodeToString(tr.packets[0]), "vsn": vs,
			"key": hex.EncodeToString(c.key), "plain": hex.EncodeToString(trp.packets[0]), "aad": "",
			"inner": hex.EncodeToString(c.inner), "compress": c.compress,
			"crc": c.node != nil && c.node.PMax >= 5})
	}

	// 6. streams
	emitStreams(out, encoded)
}

// streamView describes a stream message the way the read path decodes it.
func streamView(s *memberlist.SwimnetStream, d *memDelegate) obj {
	o := obj{"type": s.Type}
	switch s.Type {
	case 6:
		o["join"] = s.Join
		nodes := []obj{}
		for _, n := range s.Nodes {
			nodes = append(nodes, view(n))
		}
		o["nodes"] = nodes
		o["user_state"] = hx(s.UserState)
	case 8:
		if d != nil && len(d.msgs) > 0 {
			o["user_msg"] = hex.EncodeToString(d.msgs[len(d.msgs)-1])
		} else {
			o["user_msg"] = ""
		}
	}
	if s.Msg != nil {
		o["msg"] = view(s.Msg)
	}
	if s.Rest != nil {
		rest, _ := io.ReadAll(s.Rest)
		o["trailing"] = len(rest)
	}
	return o
}

// readBack decodes a stream with memberlist's read path, as a check on the
// vector and to describe it.
func readBack(stream []byte, keys [][]byte) obj {
	d := &memDelegate{}
	m, _ := newHarness(harnessOpts{keys: keys, delegate: d, verifyIn: len(keys) > 0})
	s, err := m.SwimnetReadStream(newMemConn(stream))
	must(err)
	return streamView(s, d)
}

func emitStreams(out vecWriter, encoded map[string][]byte) {
	type streamCase struct {
		name     string
		protocol uint8
		compress bool
		key      []byte
		// what to send
		pushPull  bool
		join      bool
		userState []byte
		noUser    bool
		userMsg   []byte
		raw       []byte // a ready message sent with rawSendMsgStream
	}
	cases := []streamCase{
		{name: "stream_push_pull_plain", pushPull: true, join: true, userState: []byte("hello")},
		{name: "stream_push_pull_compressed", compress: true, pushPull: true, join: true, userState: []byte("hello")},
		{name: "stream_push_pull_no_user_state", pushPull: true, join: false, noUser: true},
		{name: "stream_push_pull_enc_v1_k16", key: key16, pushPull: true, join: true, userState: []byte("hello")},
		{name: "stream_push_pull_enc_compressed_k32", key: key32, compress: true, pushPull: true, join: false,
			userState: randomText(3000, 9)},
		{name: "stream_push_pull_enc_v0_k24", protocol: 1, key: key24, pushPull: true, join: true, userState: []byte("hello")},
		{name: "stream_user_plain", userMsg: []byte("a user message")},
		{name: "stream_user_compressed", compress: true, userMsg: randomText(500, 4)},
		{name: "stream_user_enc_k16", key: key16, userMsg: []byte("secret user message")},
		{name: "stream_user_empty", userMsg: []byte{}},
		{name: "stream_ack_plain", raw: encoded["ack_nil"]},
		{name: "stream_ack_enc_k16", key: key16, raw: encoded["ack_nil"]},
		{name: "stream_ping_compressed", compress: true, raw: encoded["ping_source"]},
		{name: "stream_err_plain", raw: encoded["err"]},
	}
	for _, c := range cases {
		var keys [][]byte
		if c.key != nil {
			keys = [][]byte{c.key}
		}
		d := &memDelegate{state: c.userState}
		if c.noUser {
			d = nil
		}
		opts := harnessOpts{protocol: c.protocol, compress: c.compress, keys: keys, delegate: d, withNodes: true}
		m, tr := newHarness(opts)
		// the same message, sent in the clear and uncompressed: the plaintext
		pm, ptr := newHarness(harnessOpts{protocol: c.protocol, delegate: d, withNodes: true})
		var wire, plain []byte
		switch {
		case c.pushPull:
			conn := newMemConn(nil)
			must(m.SwimnetSendLocalState(conn, c.join))
			wire = conn.out.Bytes()
			pconn := newMemConn(nil)
			must(pm.SwimnetSendLocalState(pconn, c.join))
			plain = pconn.out.Bytes()
		case c.userMsg != nil:
			to := memberlist.Address{Addr: "127.0.0.2:7946", Name: "peer"}
			must(m.SwimnetSendUserMsg(to, c.userMsg))
			wire = tr.conns[0].out.Bytes()
			must(pm.SwimnetSendUserMsg(to, c.userMsg))
			plain = ptr.conns[0].out.Bytes()
		default:
			conn := newMemConn(nil)
			must(m.SwimnetSendStream(conn, c.raw))
			wire = conn.out.Bytes()
			plain = c.raw
		}
		vs := 1
		if c.protocol == 1 {
			vs = 0
		}
		o := obj{"name": "" + c.name, "cat": "stream", "hex": hex.EncodeToString(wire),
			"plain": hex.EncodeToString(plain), "compress": c.compress, "encrypted": c.key != nil,
			"key": hx(c.key), "vsn": vs, "decoded": readBack(wire, keys)}
		out.emit(o)
	}
	// encryptLocalState on its own (the stream frame around a given plaintext)
	for _, c := range []struct {
		name     string
		protocol uint8
		key      []byte
		plain    []byte
	}{
		{"stream_encrypt_frame_v1", 2, key32, encoded["ack_nil"]},
		{"stream_encrypt_frame_v0", 1, key16, encoded["err"]},
	} {
		m, _ := newHarness(harnessOpts{protocol: c.protocol, keys: [][]byte{c.key}})
		b, err := m.SwimnetEncryptStream(c.plain)
		must(err)
		vs := 1
		if c.protocol == 1 {
			vs = 0
		}
		out.emit(obj{"name": c.name, "cat": "stream", "hex": hex.EncodeToString(b), "plain": hex.EncodeToString(c.plain),
			"compress": false, "encrypted": true, "key": hex.EncodeToString(c.key), "vsn": vs,
			"decoded": readBack(b, [][]byte{c.key})})
	}
}

// ---------------------------------------------------------------------------
// decode

type request struct {
	Kind   string   `json:"kind"`
	Hex    string   `json:"hex"`
	Key    string   `json:"key"`
	Keys   []string `json:"keys"`
	AAD    string   `json:"aad"`
	Struct string   `json:"struct"`
}

func runDecode(in io.Reader, w *bufio.Writer) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<28)
	enc := json.NewEncoder(w)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		res := decodeOne(line)
		must(enc.Encode(res))
		w.Flush()
	}
	must(sc.Err())
}

func decodeOne(line string) (res obj) {
	defer func() {
		if r := recover(); r != nil {
			res = obj{"ok": false, "error": fmt.Sprintf("panic: %v", r)}
		}
	}()
	var req request
	if err := json.Unmarshal([]byte(line), &req); err != nil {
		return obj{"ok": false, "error": "bad request: " + err.Error()}
	}
	buf, err := hex.DecodeString(req.Hex)
	if err != nil {
		return obj{"ok": false, "error": "bad hex: " + err.Error()}
	}
	var keys [][]byte
	if req.Key != "" {
		req.Keys = append([]string{req.Key}, req.Keys...)
	}
	for _, k := range req.Keys {
		kb, err := hex.DecodeString(k)
		if err != nil {
			return obj{"ok": false, "error": "bad key hex: " + err.Error()}
		}
		keys = append(keys, kb)
	}
	aad, err := hex.DecodeString(req.AAD)
	if err != nil {
		return obj{"ok": false, "error": "bad aad hex: " + err.Error()}
	}
	var out obj
	switch req.Kind {
	case "message":
		out, err = decodeMessage(buf, req.Struct)
	case "compound":
		out, err = decodeCompound(buf)
	case "lzw":
		out, err = decodeLZW(buf)
	case "decrypt":
		if len(keys) == 0 {
			return obj{"ok": false, "error": "decrypt needs key or keys"}
		}
		var plain []byte
		plain, err = memberlist.SwimnetDecrypt(keys, buf, aad)
		out = obj{"plain": hex.EncodeToString(plain)}
	case "packet":
		out, err = decodePacket(buf, keys)
	case "stream":
		out, err = decodeStream(buf, keys)
	default:
		err = fmt.Errorf("unknown kind %q", req.Kind)
	}
	if err != nil {
		return obj{"ok": false, "error": err.Error()}
	}
	out["ok"] = true
	return out
}

// decodeMessage: type byte + msgpack body. With st set, the bytes are that
// struct; a struct with no type byte of its own (pushNodeState) is bare msgpack.
func decodeMessage(buf []byte, st string) (obj, error) {
	if st == "" {
		if len(buf) == 0 {
			return nil, errors.New("empty message")
		}
		if buf[0] == 8 {
			return obj{"type": 8, "user": hex.EncodeToString(buf[1:])}, nil
		}
		st = memberlist.SwimnetKindForType(buf[0])
		if st == "" {
			return nil, fmt.Errorf("no struct for message type %d", buf[0])
		}
	}
	t, v, ok := memberlist.SwimnetNewMsg(st)
	if !ok {
		return nil, fmt.Errorf("unknown struct %q", st)
	}
	body := buf
	o := obj{"struct": st}
	if t != 255 {
		if len(buf) == 0 || buf[0] != t {
			return nil, fmt.Errorf("%s needs type byte %d", st, t)
		}
		body = buf[1:]
		o["type"] = t
	}
	if err := memberlist.SwimnetDecode(body, v); err != nil {
		return nil, err
	}
	o["msg"] = view(v)
	return o, nil
}

func decodeCompound(buf []byte) (obj, error) {
	if len(buf) == 0 || buf[0] != 7 {
		return nil, errors.New("not a compound message (type byte 7)")
	}
	trunc, parts, err := memberlist.SwimnetDecodeCompound(buf[1:])
	if err != nil {
		return nil, err
	}
	return obj{"parts": hexList(parts), "truncated": trunc}, nil
}

func decodeLZW(buf []byte) (obj, error) {
	if len(buf) == 0 || buf[0] != 9 {
		return nil, errors.New("not a compress message (type byte 9)")
	}
	plain, err := memberlist.SwimnetDecompress(buf[1:])
	if err != nil {
		return nil, err
	}
	return obj{"plain": hex.EncodeToString(plain)}, nil
}

// decodePacket follows the receive path of a UDP packet: decrypt with the
// keyring (if keys were given), check and strip a CRC, then unpack compound
// and compress messages recursively, decoding every leaf message.
func decodePacket(buf []byte, keys [][]byte) (obj, error) {
	o := obj{"crc": false}
	if len(keys) > 0 {
		plain, err := memberlist.SwimnetDecrypt(keys, buf, nil)
		if err != nil {
			return nil, err
		}
		buf = plain
	}
	if len(buf) >= 5 && buf[0] == 12 {
		want := uint32(buf[1])<<24 | uint32(buf[2])<<16 | uint32(buf[3])<<8 | uint32(buf[4])
		if got := crc32.ChecksumIEEE(buf[5:]); got != want {
			return nil, fmt.Errorf("bad checksum: computed %08x, packet says %08x", got, want)
		}
		o["crc"] = true
		buf = buf[5:]
	}
	msgs := []obj{}
	trunc := 0
	if err := expandPacket(buf, &msgs, &trunc, 0); err != nil {
		return nil, err
	}
	o["msgs"] = msgs
	o["truncated"] = trunc
	return o, nil
}

func expandPacket(buf []byte, msgs *[]obj, trunc *int, depth int) error {
	if depth > 32 {
		return errors.New("nesting too deep")
	}
	if len(buf) == 0 {
		return errors.New("empty message")
	}
	switch buf[0] {
	case 7:
		t, parts, err := memberlist.SwimnetDecodeCompound(buf[1:])
		if err != nil {
			return err
		}
		*trunc += t
		for _, p := range parts {
			if err := expandPacket(p, msgs, trunc, depth+1); err != nil {
				return err
			}
		}
		return nil
	case 9:
		plain, err := memberlist.SwimnetDecompress(buf[1:])
		if err != nil {
			return err
		}
		return expandPacket(plain, msgs, trunc, depth+1)
	}
	m, err := decodeMessage(buf, "")
	if err != nil {
		return err
	}
	*msgs = append(*msgs, m)
	return nil
}

// decodeStream runs memberlist's stream read path (readStream and the body
// readers) over the bytes. With keys, the harness requires encryption
// (GossipVerifyIncoming), as a node with a key does by default.
func decodeStream(buf []byte, keys [][]byte) (obj, error) {
	d := &memDelegate{}
	m, _ := newHarness(harnessOpts{keys: keys, delegate: d, verifyIn: len(keys) > 0})
	s, err := m.SwimnetReadStream(newMemConn(buf))
	if err != nil {
		return nil, err
	}
	return streamView(s, d), nil
}
