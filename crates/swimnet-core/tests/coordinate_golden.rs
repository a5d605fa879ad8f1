//! Golden tests against Serf 0.9.4's coordinate package and go-msgpack
//! 0.5.5: the data below was printed by `tools/goref-coordinate/main.go`
//! (built offline against Debian's Go sources, see its header), and is
//! pasted here so the test needs no Go toolchain.
//!
//! * `payload NAME HEX`: Serf's ack payload for a coordinate. We must
//!   produce the same bytes and decode them back to the same values.
//! * `dist I J NS`: Serf's `DistanceTo` between payload coordinates I and J.
//! * `step I RTT HEX`: a Serf client's coordinate after its I-th `Update`
//!   (a deterministic trace: no coincident points, so no random
//!   direction). Our client, fed the same observations, must land on the
//!   same coordinate.

use std::time::Duration;

use swimnet_core::coordinate::{
    decode_ping_payload, encode_ping_payload, Coordinate, CoordinateClient, CoordinateConfig,
};
use swimnet_testkit::unhex;

const GOLDEN: &str = "\
payload origin 0184aa41646a7573746d656e74cb0000000000000000a54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000
payload mixed 0184aa41646a7573746d656e74cbbf201f31f46ed246a54572726f72cb3fd165a208d0747ca6486569676874cb3f3b866e43aa79bca356656398cb3f50624dd2f1a9fccbbf647ae147ae147bcb3e112e0be826d695cb0000000000000000cb3fc0000000000000cbc00c000000000000cb3f12599ed7c6fbd2cb3fa10cb295e9e1b1
payload far 0184aa41646a7573746d656e74cb3f40624dd2f1a9fca54572726f72cb3feccccccccccccda6486569676874cb3f50624dd2f1a9fca356656398cb3f947ae147ae147bcb3f847ae147ae147bcb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cbbf847ae147ae147b
dist 0 0 20000
dist 0 1 3502697775
dist 0 2 26004897
dist 1 0 3502697775
dist 1 1 593999
dist 1 2 3504369932
dist 2 0 26004897
dist 2 1 3504369932
dist 2 2 3000000
step 0 12000000 0184aa41646a7573746d656e74cbbfb19ced263dcdbea54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb3f651e911b244856cb3f3126b16f80255ecb3decfd902b5133dbcb0000000000000000cb3f9affde8b261feacbbfe79fe2b9c15bedcb3eeef715ad448bd3cb3f7cc549b6461dea
step 1 30000000 0184aa41646a7573746d656e74cbbfb58435ed2105bea54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb3f743de632c8616dcb3f59efa315a5dd8dcb3de90e6e3ff755c6cb0000000000000000cb3f9755e771cde81dcbbfe46b2a83942b1acb3eeac359e272beadcb3f734f0fcbcff3c6
step 2 2000000 0184aa41646a7573746d656e74cbbfb925fa4c067951a54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb3f720d59eadaeb5acb3f5721663f5acddccb3de6588df6c5c8a6cb0000000000000000cb3f94cfae7c9833c3cbbfe235b8ad052d4ccb3ee7de362244e180cb3f7138598c31e86c
step 3 15000000 0184aa41646a7573746d656e74cbbfc400cbcc59665da54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb3f6e6c4db293f261cb3f442cfdc6a99e53cb3df6e1f1e1581591cb0000000000000000cb3fa54fa2e2e6df13cbbff2a5ae868a0331cb3ef870f5cb218587cb3f84bc3ba2cfcebd
step 4 1000000 0184aa41646a7573746d656e74cbbfc726fe8fba4d27a54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb3f77fbaab945a5efcb3f5e4e3c464d85e6cb3df3df760747be1dcb0000000000000000cb3fa282113c042edfcbbff031cf1483a903cb3ef539fea166b11ecb3f7ea14031a07b36
step 5 0 0184aa41646a7573746d656e74cbbfca0e1bf5b2cefba54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb3f7586a1161dc250cb3f5b335e2c96a6a5cb3df1d63a1105d358cb0000000000000000cb3fa09ca14f919a94cbbfed121a4b3ece83cb3ef30d41a58ea8ebcb3f7b7de0bc147cd3
step 6 250000000 0184aa41646a7573746d656e74cbbfd0596b9fc2aceba54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb3f722588f91d83c6cb3f4bf9f534d09107cb3dfbb2ce193cac9acb0000000000000000cb3fa9cbd3ab8b28c5cbbff692593619c3accb3efd95cc0314be99cb3f884cb2895bb84d
step 7 9000000 0184aa41646a7573746d656e74cbbfd24eef0c2018fea54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb3f7a412e02f0bfd4cb3f60853c626db15ecb3df82d00fba3f685cb0000000000000000cb3fa683f58063c40acbbff3b376d0574b87cb3ef9d291bcc7f19dcb3f829af0d922bea7
step 8 31000000 0184aa41646a7573746d656e74cbbfd416794e282d16a54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb3f77bd489598d879cb3f5de0242095e1dfcb3df5dc1735704209cb0000000000000000cb3fa45bc3fbc553abcbbff1d04b7c4ca934cb3ef759450a241787cb3f80d2a55fe1c33f
step 9 4000000 0184aa41646a7573746d656e74cbbfd73032a3c1924aa54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb3f7427304ba8961fcb3f50f1ff969d4654cb3dfe6969f81589a5cb0000000000000000cb3fac52bb546745bbcbbff8c863e9da5d02cb3f003ddc0ff5c09acb3f8a330691268fcd
step 10 700000 0184aa41646a7573746d656e74cbbfd95f19570219fea54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb3f7b8d00733b03f7cb3f6145100c138889cb3dfac4a78b61fffacb0000000000000000cb3fa8ee0824568bb7cbbff5d0471fcbba3fcb3efc976cb4f07cd8cb3f849b7bfb79d689
step 11 18000000 0184aa41646a7573746d656e74cbbfdb55e8654c0f2da54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb3f792706090d9e69cb3f5f88667be50ef4cb3df8701deefabc64cb0000000000000000cb3fa6c2768234ab49cbbff3ea27b1ee15decb3efa1a40f8f1f098cb3f82d03e1dc17813
";

fn lines(kind: &str) -> Vec<Vec<&'static str>> {
    GOLDEN
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.first() == Some(&kind))
        .collect()
}

fn payload_coords() -> Vec<(String, Vec<u8>, Coordinate)> {
    lines("payload")
        .into_iter()
        .map(|f| {
            let bytes = unhex(f[2]);
            let c = decode_ping_payload(&bytes).expect("Serf's payload decodes");
            (f[1].to_string(), bytes, c)
        })
        .collect()
}

#[test]
fn payloads_are_byte_identical_to_serfs() {
    let coords = payload_coords();
    assert_eq!(coords.len(), 3);
    for (name, bytes, c) in &coords {
        let mut ours = Vec::new();
        encode_ping_payload(c, &mut ours);
        assert_eq!(&ours, bytes, "{name}");
    }
    // Spot-check decoded values against the Go literals.
    assert_eq!(
        coords[0].2,
        Coordinate::origin(&CoordinateConfig::default())
    );
    let mixed = &coords[1].2;
    assert_eq!(
        mixed.vec,
        vec![0.001, -0.0025, 1e-9, 0.0, 0.125, -3.5, 7e-5, 0.0333]
    );
    assert_eq!(
        (mixed.error, mixed.adjustment, mixed.height),
        (0.2718281828, -0.000123, 0.00042)
    );
}

#[test]
fn distances_match_serfs() {
    let coords = payload_coords();
    let dists = lines("dist");
    assert_eq!(dists.len(), 9);
    for f in dists {
        let (i, j): (usize, usize) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        let ns: u64 = f[3].parse().unwrap();
        assert_eq!(
            coords[i].2.distance_to(&coords[j].2).unwrap(),
            Duration::from_nanos(ns),
            "{i} -> {j}"
        );
    }
}

#[test]
fn update_trace_matches_serfs() {
    let coords = payload_coords();
    let names = ["origin", "mixed", "far"];
    // Serf's trace feeds peers mixed, far, origin in turn, named by the next
    // name in the list (see main.go).
    let peers = [1usize, 2, 0];
    let mut client = CoordinateClient::new(CoordinateConfig::default(), 0).unwrap();
    let mut start = Coordinate::origin(&CoordinateConfig::default());
    start.vec[0] = 0.003;
    start.vec[1] = 0.001;
    client.set_coordinate(start).unwrap();
    let steps = lines("step");
    assert_eq!(steps.len(), 12);
    let mut worst: f64 = 0.0;
    for (i, f) in steps.iter().enumerate() {
        assert_eq!(f[1].parse::<usize>().unwrap(), i);
        let rtt = Duration::from_nanos(f[2].parse().unwrap());
        let peer = &coords[peers[i % 3]].2;
        let name = names[(i % 3 + 1) % 3];
        let ours = client.update(name, peer, rtt).unwrap().clone();
        let serf = decode_ping_payload(&unhex(f[3])).unwrap();
        let pairs = ours.vec.iter().zip(&serf.vec).chain([
            (&ours.error, &serf.error),
            (&ours.adjustment, &serf.adjustment),
            (&ours.height, &serf.height),
        ]);
        for (a, b) in pairs {
            let diff = (a - b).abs() / b.abs().max(1e-12);
            worst = worst.max(diff);
            assert!(diff < 1e-12, "step {i}: ours {ours:?}\nserf {serf:?}");
        }
    }
    println!("largest relative difference from Serf over the trace: {worst:e}");
}
