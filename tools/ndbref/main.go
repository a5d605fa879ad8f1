// ndbref: byte-level reference for swimnet-networkdb's wire codec, built on
// Docker 20.10's own NetworkDB protobuf types (libnetwork/networkdb, the
// gogo-protobuf generated code in Debian bookworm's docker.io 20.10.24
// source). Build it with tools/ndbref/build.sh.
//
// Modes:
//
//	ndbref vectors   print "name hex" lines: a fixed set of messages encoded
//	                 with Docker's generated Marshal methods (the values are
//	                 mirrored in crates/swimnet-networkdb/tests/golden.rs)
//	ndbref decode    read "name hex" lines on stdin; for each, decode the
//	                 bytes as NetworkDB's NotifyMsg would (envelope, then the
//	                 inner message, opening compounds and bulk-sync payloads)
//	                 and print "name description" (see describe below)
package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/docker/libnetwork/networkdb"
	"github.com/hashicorp/serf/serf"
)

type marshaler interface {
	Marshal() ([]byte, error)
}

func mustMarshal(m marshaler) []byte {
	b, err := m.Marshal()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ndbref: marshal %T: %v\n", m, err)
		os.Exit(1)
	}
	return b
}

// wrap puts inner bytes into a GossipMessage envelope of type t.
func wrap(t networkdb.MessageType, inner []byte) []byte {
	return mustMarshal(&networkdb.GossipMessage{Type: t, Data: inner})
}

// compound builds GossipMessage{COMPOUND, CompoundMessage{parts}}.
func compound(parts ...[]byte) []byte {
	c := networkdb.CompoundMessage{}
	c.Messages = make([]*networkdb.CompoundMessage_SimpleMessage, 0, len(parts))
	for _, p := range parts {
		c.Messages = append(c.Messages, &networkdb.CompoundMessage_SimpleMessage{Payload: p})
	}
	return wrap(networkdb.MessageTypeCompound, mustMarshal(&c))
}

const (
	nodeA = "a1b2c3d4e5f6"
	nodeB = "0f9e8d7c6b5a"
	net1  = "3k2bqvx6n0d1jsm4pe0hy0svz"
	net2  = "net2"
)

type vector struct {
	name  string
	bytes []byte
}

func vectors() []vector {
	var out []vector
	add := func(name string, b []byte) { out = append(out, vector{name, b}) }

	nodeJoin := networkdb.NodeEvent{Type: networkdb.NodeEventTypeJoin, LTime: 1, NodeName: nodeA}
	nodeLeave := networkdb.NodeEvent{Type: networkdb.NodeEventTypeLeave, LTime: 300, NodeName: nodeA}
	add("node_event_join.inner", mustMarshal(&nodeJoin))
	add("node_event_join", wrap(networkdb.MessageTypeNodeEvent, mustMarshal(&nodeJoin)))
	add("node_event_leave", wrap(networkdb.MessageTypeNodeEvent, mustMarshal(&nodeLeave)))
	add("node_event_zero", wrap(networkdb.MessageTypeNodeEvent, mustMarshal(&networkdb.NodeEvent{})))

	netJoin := networkdb.NetworkEvent{Type: networkdb.NetworkEventTypeJoin, LTime: 5, NodeName: nodeA, NetworkID: net1}
	netLeave := networkdb.NetworkEvent{Type: networkdb.NetworkEventTypeLeave, LTime: serf.LamportTime(1) << 35, NodeName: nodeB, NetworkID: net2}
	add("network_event_join.inner", mustMarshal(&netJoin))
	add("network_event_join", wrap(networkdb.MessageTypeNetworkEvent, mustMarshal(&netJoin)))
	add("network_event_leave", wrap(networkdb.MessageTypeNetworkEvent, mustMarshal(&netLeave)))

	entryA := networkdb.NetworkEntry{NetworkID: net1, LTime: 7, NodeName: nodeA}
	entryB := networkdb.NetworkEntry{NetworkID: net2, LTime: 130, NodeName: nodeB, Leaving: true}
	add("network_entry", mustMarshal(&entryB))
	pp := networkdb.NetworkPushPull{LTime: 12, Networks: []*networkdb.NetworkEntry{&entryA, &entryB}, NodeName: nodeA}
	add("push_pull.inner", mustMarshal(&pp))
	add("push_pull", wrap(networkdb.MessageTypePushPull, mustMarshal(&pp)))
	add("push_pull_no_networks", wrap(networkdb.MessageTypePushPull, mustMarshal(&networkdb.NetworkPushPull{LTime: 1, NodeName: nodeB})))

	create := networkdb.TableEvent{
		Type: networkdb.TableEventTypeCreate, LTime: 3, NodeName: nodeA, NetworkID: net1,
		TableName: "endpoint_table", Key: "ep1", Value: []byte{0x0a, 0x03, 'f', 'o', 'o'},
	}
	update := networkdb.TableEvent{
		Type: networkdb.TableEventTypeUpdate, LTime: 4, NodeName: nodeA, NetworkID: net1,
		TableName: "endpoint_table", Key: "ep1", Value: []byte("v2"),
	}
	del := networkdb.TableEvent{
		Type: networkdb.TableEventTypeDelete, LTime: 5, NodeName: nodeB, NetworkID: net1,
		TableName: "overlay_peer_table", Key: "ep2", ResidualReapTime: 1800,
	}
	extremes := networkdb.TableEvent{
		Type: networkdb.TableEventTypeDelete, LTime: serf.LamportTime(^uint64(0)), NodeName: nodeB, NetworkID: net2,
		TableName: "t", Key: "cl\u00e9/\u00fc", Value: []byte{}, ResidualReapTime: -1,
	}
	big := networkdb.TableEvent{
		Type: networkdb.TableEventTypeCreate, LTime: 2, NodeName: nodeA, NetworkID: net1,
		TableName: "t", Key: "big", Value: []byte(strings.Repeat("0123456789", 30)),
	}
	add("table_event_create.inner", mustMarshal(&create))
	add("table_event_create", wrap(networkdb.MessageTypeTableEvent, mustMarshal(&create)))
	add("table_event_update", wrap(networkdb.MessageTypeTableEvent, mustMarshal(&update)))
	add("table_event_delete", wrap(networkdb.MessageTypeTableEvent, mustMarshal(&del)))
	add("table_event_extremes", wrap(networkdb.MessageTypeTableEvent, mustMarshal(&extremes)))
	add("table_event_big_value", wrap(networkdb.MessageTypeTableEvent, mustMarshal(&big)))

	createMsg := wrap(networkdb.MessageTypeTableEvent, mustMarshal(&create))
	updateMsg := wrap(networkdb.MessageTypeTableEvent, mustMarshal(&update))
	delMsg := wrap(networkdb.MessageTypeTableEvent, mustMarshal(&del))

	bs := networkdb.BulkSyncMessage{
		LTime: 9, Unsolicited: true, NodeName: nodeA, Networks: []string{net1, net2},
		Payload: compound(createMsg, delMsg),
	}
	add("bulk_sync.inner", mustMarshal(&bs))
	add("bulk_sync", wrap(networkdb.MessageTypeBulkSync, mustMarshal(&bs)))
	bsEmpty := networkdb.BulkSyncMessage{LTime: 10, NodeName: nodeB, Networks: []string{net1}, Payload: compound()}
	add("bulk_sync_reply_empty", wrap(networkdb.MessageTypeBulkSync, mustMarshal(&bsEmpty)))

	add("compound_three", compound(
		wrap(networkdb.MessageTypeNodeEvent, mustMarshal(&nodeJoin)),
		wrap(networkdb.MessageTypeNetworkEvent, mustMarshal(&netJoin)),
		createMsg))
	add("compound_empty", compound())
	add("compound_nested", compound(compound(updateMsg), delMsg))
	add("compound_empty_part", compound([]byte{}))

	add("gossip_unknown_type", mustMarshal(&networkdb.GossipMessage{Type: networkdb.MessageType(9), Data: []byte("xyz")}))
	add("gossip_zero", mustMarshal(&networkdb.GossipMessage{}))
	return out
}

// ---- decode mode --------------------------------------------------------

func hx(s string) string { return hex.EncodeToString([]byte(s)) }

func hxs(ss []string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = hx(s)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// describe mirrors NetworkDB's handleMessage: it decodes the envelope and the
// inner message, opens compounds part by part (a bad part becomes "ERR" and
// does not stop its siblings) and appends one item per leaf. Strings are
// shown in hex, so that the text form needs no escaping.
func describe(buf []byte, depth int, out *[]string) {
	var g networkdb.GossipMessage
	if err := g.Unmarshal(buf); err != nil {
		*out = append(*out, "ERR")
		return
	}
	switch g.Type {
	case networkdb.MessageTypeNodeEvent:
		var m networkdb.NodeEvent
		if err := m.Unmarshal(g.Data); err != nil {
			*out = append(*out, "ERR")
			return
		}
		*out = append(*out, fmt.Sprintf("NodeEvent{type=%d ltime=%d node=%s}", int32(m.Type), uint64(m.LTime), hx(m.NodeName)))
	case networkdb.MessageTypeNetworkEvent:
		var m networkdb.NetworkEvent
		if err := m.Unmarshal(g.Data); err != nil {
			*out = append(*out, "ERR")
			return
		}
		*out = append(*out, fmt.Sprintf("NetworkEvent{type=%d ltime=%d node=%s net=%s}", int32(m.Type), uint64(m.LTime), hx(m.NodeName), hx(m.NetworkID)))
	case networkdb.MessageTypeTableEvent:
		var m networkdb.TableEvent
		if err := m.Unmarshal(g.Data); err != nil {
			*out = append(*out, "ERR")
			return
		}
		*out = append(*out, fmt.Sprintf("TableEvent{type=%d ltime=%d node=%s net=%s table=%s key=%s value=%s reap=%d}",
			int32(m.Type), uint64(m.LTime), hx(m.NodeName), hx(m.NetworkID), hx(m.TableName), hx(m.Key),
			hex.EncodeToString(m.Value), m.ResidualReapTime))
	case networkdb.MessageTypePushPull:
		var m networkdb.NetworkPushPull
		if err := m.Unmarshal(g.Data); err != nil {
			*out = append(*out, "ERR")
			return
		}
		entries := make([]string, 0, len(m.Networks))
		for _, e := range m.Networks {
			entries = append(entries, fmt.Sprintf("(%s,%d,%s,%t)", hx(e.NetworkID), uint64(e.LTime), hx(e.NodeName), e.Leaving))
		}
		*out = append(*out, fmt.Sprintf("PushPull{ltime=%d node=%s networks=[%s]}", uint64(m.LTime), hx(m.NodeName), strings.Join(entries, ",")))
	case networkdb.MessageTypeBulkSync:
		var m networkdb.BulkSyncMessage
		if err := m.Unmarshal(g.Data); err != nil {
			*out = append(*out, "ERR")
			return
		}
		var inner []string
		describe(m.Payload, 0, &inner)
		*out = append(*out, fmt.Sprintf("BulkSync{ltime=%d unsolicited=%t node=%s networks=%s payload=<%s>}",
			uint64(m.LTime), m.Unsolicited, hx(m.NodeName), hxs(m.Networks), strings.Join(inner, " | ")))
	case networkdb.MessageTypeCompound:
		if depth >= 8 { // swimnet's MAX_NESTING; Go itself has no limit
			*out = append(*out, "ERR")
			return
		}
		var c networkdb.CompoundMessage
		if err := c.Unmarshal(g.Data); err != nil {
			*out = append(*out, "ERR")
			return
		}
		for _, p := range c.Messages {
			describe(p.Payload, depth+1, out)
		}
	default:
		*out = append(*out, fmt.Sprintf("UNKNOWN(%d)", int32(g.Type)))
	}
}

func decodeMode() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hexStr := line, ""
		if i := strings.IndexByte(line, ' '); i >= 0 {
			name, hexStr = line[:i], strings.TrimSpace(line[i+1:])
		}
		buf, err := hex.DecodeString(hexStr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ndbref: bad hex for %s: %v\n", name, err)
			os.Exit(1)
		}
		var items []string
		describe(buf, 0, &items)
		fmt.Fprintf(w, "%s %s\n", name, strings.Join(items, " | "))
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "ndbref: reading stdin: %v\n", err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: ndbref vectors|decode")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "vectors":
		w := bufio.NewWriter(os.Stdout)
		defer w.Flush()
		for _, v := range vectors() {
			fmt.Fprintf(w, "%s %s\n", v.name, hex.EncodeToString(v.bytes))
		}
	case "decode":
		decodeMode()
	default:
		fmt.Fprintln(os.Stderr, "usage: ndbref vectors|decode")
		os.Exit(2)
	}
}
