// Command goref-coordinate prints reference data made by Serf 0.9.4's
// coordinate package and go-msgpack 0.5.5 (Debian's sources), for the
// golden tests in crates/swimnet-core/tests/coordinate_golden.rs.
//
// Build and run offline (nothing is downloaded):
//
//	mkdir -p /tmp/gp/src/goref-coordinate && cp main.go /tmp/gp/src/goref-coordinate/
//	cd /tmp/gp/src/goref-coordinate && GO111MODULE=off GOPATH=/tmp/gp:/usr/share/gocode go run .
//
// Output, one item per line:
//
//	payload <name> <hex>     Serf's ack payload (ping_delegate.go's AckPayload) for a coordinate
//	step <i> <rtt-ns> <hex>  a Client's coordinate after its i-th Update, as an ack payload
//	dist <i> <j> <ns>        Coordinate.DistanceTo between two of the payload coordinates
package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/hashicorp/go-msgpack/codec"
	"github.com/hashicorp/serf/coordinate"
)

// payload mirrors serf's pingDelegate.AckPayload: version 1, then msgpack.
func payload(c *coordinate.Coordinate) string {
	var buf bytes.Buffer
	buf.WriteByte(1)
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(c); err != nil {
		panic(err)
	}
	return hex.EncodeToString(buf.Bytes())
}

func main() {
	cfg := coordinate.DefaultConfig()
	origin := coordinate.NewCoordinate(cfg)
	mixed := &coordinate.Coordinate{
		Vec:        []float64{0.001, -0.0025, 1e-9, 0, 0.125, -3.5, 7e-5, 0.0333},
		Error:      0.2718281828,
		Adjustment: -0.000123,
		Height:     0.00042,
	}
	far := &coordinate.Coordinate{
		Vec:        []float64{0.02, 0.01, 0, 0, 0, 0, 0, -0.01},
		Error:      0.9,
		Adjustment: 0.0005,
		Height:     0.001,
	}
	coords := []*coordinate.Coordinate{origin, mixed, far}
	names := []string{"origin", "mixed", "far"}
	for i, c := range coords {
		fmt.Printf("payload %s %s\n", names[i], payload(c))
	}
	for i := range coords {
		for j := range coords {
			fmt.Printf("dist %d %d %d\n", i, j, int64(coords[i].DistanceTo(coords[j])))
		}
	}

	// A deterministic trace: our client starts off the origin and peers are
	// never on top of it, so Update draws no random direction.
	client, err := coordinate.NewClient(cfg)
	if err != nil {
		panic(err)
	}
	start := &coordinate.Coordinate{
		Vec:        []float64{0.003, 0.001, 0, 0, 0, 0, 0, 0},
		Error:      1.5,
		Adjustment: 0,
		Height:     1e-5,
	}
	if err := client.SetCoordinate(start); err != nil {
		panic(err)
	}
	peers := []*coordinate.Coordinate{mixed, far, origin}
	rtts := []time.Duration{
		12 * time.Millisecond, 30 * time.Millisecond, 2 * time.Millisecond,
		15 * time.Millisecond, 1 * time.Millisecond, 0, 250 * time.Millisecond,
		9 * time.Millisecond, 31 * time.Millisecond, 4 * time.Millisecond,
		700 * time.Microsecond, 18 * time.Millisecond,
	}
	for i, rtt := range rtts {
		p := peers[i%len(peers)]
		name := names[(i%len(peers)+1)%len(names)]
		c, err := client.Update(name, p, rtt)
		if err != nil {
			panic(err)
		}
		fmt.Printf("step %d %d %s\n", i, int64(rtt), payload(c))
	}
}
