// overlayref: byte-level reference for swimnet-overlay's records.rs, built on
// Docker 20.10's own generated protobuf code for the overlay driver's
// PeerRecord (libnetwork/drivers/overlay/overlay.pb.go) and libnetwork's
// EndpointRecord (libnetwork/agent.pb.go). Build it with
// tools/overlayref/build.sh, which links those two generated files, unchanged,
// into a private GOPATH package (the packages they live in need far more
// dependencies than Debian ships).
//
// Modes:
//
//	overlayref encode                 print "name hex" lines: a fixed set of
//	                                  records encoded with Docker's Marshal
//	                                  (mirrored as constants in
//	                                  crates/swimnet-overlay/tests/records_golden.rs)
//	overlayref decode peer HEX        Docker's Unmarshal of a PeerRecord,
//	overlayref decode endpoint HEX    or of an EndpointRecord, printed as
//	                                  one line of JSON (proto field names,
//	                                  empty fields left out)
package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"dockerpb/libnetwork"
	"dockerpb/overlay"
)

type marshaler interface {
	Marshal() ([]byte, error)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "overlayref: "+format+"\n", args...)
	os.Exit(1)
}

func mustMarshal(m marshaler) []byte {
	b, err := m.Marshal()
	if err != nil {
		fail("marshal %T: %v", m, err)
	}
	return b
}

type vector struct {
	name string
	msg  marshaler
}

// vectors is the fixed set behind the golden constants; keep the order and
// the values in step with records_golden.rs.
func vectors() []vector {
	return []vector{
		{"peer_basic", &overlay.PeerRecord{
			EndpointIP:       "10.0.1.5/24",
			EndpointMAC:      "02:42:0a:00:01:05",
			TunnelEndpointIP: "192.168.1.10",
		}},
		{"peer_wide", &overlay.PeerRecord{
			EndpointIP:       "172.31.255.254/16",
			EndpointMAC:      "02:42:ac:1f:ff:fe",
			TunnelEndpointIP: "10.204.0.200",
		}},
		{"peer_empty", &overlay.PeerRecord{}},
		{"endpoint_plain", &libnetwork.EndpointRecord{
			Name:       "web1",
			EndpointIP: "10.0.1.5",
		}},
		{"endpoint_service", &libnetwork.EndpointRecord{
			Name:        "svc.1.abc",
			ServiceName: "svc",
			ServiceID:   "q1w2e3",
			VirtualIP:   "10.0.1.2",
			EndpointIP:  "10.0.1.7",
			IngressPorts: []*libnetwork.PortConfig{
				{Name: "http", Protocol: libnetwork.ProtocolTCP, TargetPort: 80, PublishedPort: 8080},
				{Protocol: libnetwork.ProtocolUDP, TargetPort: 53},
			},
			Aliases:         []string{"svc-alias", "other"},
			TaskAliases:     []string{"task-alias"},
			ServiceDisabled: true,
		}},
	}
}

func decode(kind, h string) {
	b, err := hex.DecodeString(h)
	if err != nil {
		fail("bad hex: %v", err)
	}
	var out interface{}
	switch kind {
	case "peer":
		var p overlay.PeerRecord
		if err := p.Unmarshal(b); err != nil {
			fail("unmarshal PeerRecord: %v", err)
		}
		out = p
	case "endpoint":
		var e libnetwork.EndpointRecord
		if err := e.Unmarshal(b); err != nil {
			fail("unmarshal EndpointRecord: %v", err)
		}
		out = e
	default:
		fail("unknown record kind %q (peer|endpoint)", kind)
	}
	j, err := json.Marshal(out)
	if err != nil {
		fail("json: %v", err)
	}
	fmt.Println(string(j))
}

func main() {
	switch {
	case len(os.Args) == 2 && os.Args[1] == "encode":
		for _, v := range vectors() {
			fmt.Printf("%s %s\n", v.name, hex.EncodeToString(mustMarshal(v.msg)))
		}
	case len(os.Args) == 4 && os.Args[1] == "decode":
		decode(os.Args[2], os.Args[3])
	default:
		fail("usage: overlayref encode | overlayref decode peer|endpoint HEX")
	}
}
