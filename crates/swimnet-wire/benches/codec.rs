//! Codec and packet-pipeline benchmarks.
//!
//! `cargo bench -p swimnet-wire` (add `-- --quick` for a short run).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use swimnet_wire::codec::{self, Message};
use swimnet_wire::compound::encode_compound;
use swimnet_wire::compress::MAX_DECOMPRESSED;
use swimnet_wire::lzw;
use swimnet_wire::msg::*;
use swimnet_wire::packet::{for_each_message, open_packet, seal_packet, OpenOptions, SealOptions};
use swimnet_wire::security::{EncryptionVersion, Key, Keyring};
use swimnet_wire::stream::{
    decode_stream_message, encode_stream_message, StreamDecodeOptions, StreamEncodeOptions,
    StreamMessage,
};

const VSN: [u8; 6] = [1, 5, 2, 2, 5, 5];

fn alive(i: u32) -> Alive {
    Alive {
        incarnation: 1000 + i,
        node: format!("worker-{i:04}.dc1.example.internal"),
        addr: vec![10, 0, (i >> 8) as u8, i as u8],
        port: 7946,
        meta: b"\xff\x82\xa4role\xa3web\xa2dc\xa3dc1".to_vec(),
        vsn: VSN.to_vec(),
    }
}

fn messages() -> Vec<(&'static str, Message)> {
    vec![
        (
            "ping",
            Message::Ping(Ping {
                seq_no: 123_456,
                node: "worker-0001.dc1.example.internal".into(),
                source_addr: vec![10, 0, 0, 2],
                source_port: 7946,
                source_node: "worker-0002.dc1.example.internal".into(),
            }),
        ),
        (
            "indirect_ping",
            Message::IndirectPing(IndirectPing {
                seq_no: 123_456,
                target: vec![10, 0, 0, 3],
                port: 7946,
                node: "worker-0003.dc1.example.internal".into(),
                nack: true,
                source_addr: vec![10, 0, 0, 2],
                source_port: 7946,
                source_node: "worker-0002.dc1.example.internal".into(),
            }),
        ),
        (
            "ack",
            Message::AckResp(AckResp {
                seq_no: 123_456,
                payload: vec![1; 90],
            }),
        ),
        ("nack", Message::NackResp(NackResp { seq_no: 123_456 })),
        (
            "err",
            Message::ErrResp(ErrResp {
                error: "remote error: something failed".into(),
            }),
        ),
        (
            "suspect",
            Message::Suspect(Suspect {
                incarnation: 42,
                node: "worker-0003.dc1.example.internal".into(),
                from: "worker-0002.dc1.example.internal".into(),
            }),
        ),
        ("alive", Message::Alive(alive(7))),
        (
            "dead",
            Message::Dead(Dead {
                incarnation: 42,
                node: "worker-0003.dc1.example.internal".into(),
                from: "worker-0002.dc1.example.internal".into(),
            }),
        ),
        ("user", Message::User(vec![0x42; 100])),
    ]
}

fn bench_messages(c: &mut Criterion) {
    let mut g = c.benchmark_group("message");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(512);
    for (name, m) in messages() {
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                buf.clear();
                codec::encode(black_box(&m), &mut buf);
                black_box(buf.len())
            })
        });
        let mut bytes = Vec::new();
        codec::encode(&m, &mut bytes);
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| codec::decode(black_box(&bytes)).unwrap())
        });
    }
    g.finish();
}

/// A realistic ~1400-byte gossip packet: a ping with piggy-backed alive,
/// suspect and user broadcasts.
fn gossip_inner() -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for (_, m) in messages().into_iter().take(1) {
        let mut v = Vec::new();
        codec::encode(&m, &mut v);
        parts.push(v);
    }
    let mut i = 0;
    loop {
        let m = match i % 4 {
            0 | 1 => Message::Alive(alive(i)),
            2 => Message::Suspect(Suspect {
                incarnation: i,
                node: format!("worker-{i:04}.dc1.example.internal"),
                from: "worker-0002.dc1.example.internal".into(),
            }),
            _ => Message::User(
                format!("user-event-{i}: deploy finished on worker-{i:04}").into_bytes(),
            ),
        };
        let mut v = Vec::new();
        codec::encode(&m, &mut v);
        let total: usize = parts.iter().map(|p| p.len() + 2).sum::<usize>() + 2;
        if total + v.len() + 2 > 1400 - 29 {
            break;
        }
        parts.push(v);
        i += 1;
    }
    let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
    let mut out = Vec::new();
    encode_compound(&refs, &mut out);
    out
}

fn bench_packets(c: &mut Criterion) {
    let inner = gossip_inner();
    let key = Key::new(&[0x5a; 32]).unwrap();
    let keyring = Keyring::new(key.clone());
    let mut g = c.benchmark_group("packet_1400B");
    g.throughput(Throughput::Elements(1));
    for (name, compress) in [("lzw_crc_aes256", true), ("crc_aes256", false)] {
        let seal = SealOptions {
            crc: true,
            compress,
            encrypt: Some((&key, [7; 12], EncryptionVersion::V1)),
            label: b"",
        };
        let open = OpenOptions {
            keyring: Some(&keyring),
            verify_incoming: true,
            label: b"",
        };
        let mut pkt = Vec::with_capacity(2048);
        seal_packet(&inner, &seal, &mut pkt);
        eprintln!(
            "{name}: inner {} bytes, datagram {} bytes",
            inner.len(),
            pkt.len()
        );
        g.bench_function(format!("seal/{name}"), |b| {
            b.iter(|| {
                pkt.clear();
                seal_packet(black_box(&inner), &seal, &mut pkt);
                black_box(pkt.len())
            })
        });
        let sealed = pkt.clone();
        g.bench_function(format!("open/{name}"), |b| {
            b.iter(|| {
                let inner = open_packet(black_box(&sealed), &open).unwrap();
                let mut n = 0;
                for_each_message(&inner, MAX_DECOMPRESSED, &mut |m| {
                    black_box(m.is_ok());
                    n += 1
                });
                n
            })
        });
        g.bench_function(format!("seal_open/{name}"), |b| {
            b.iter(|| {
                pkt.clear();
                seal_packet(black_box(&inner), &seal, &mut pkt);
                let inner = open_packet(&pkt, &open).unwrap();
                let mut n = 0;
                for_each_message(&inner, MAX_DECOMPRESSED, &mut |m| {
                    black_box(m.is_ok());
                    n += 1
                });
                n
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("lzw_1400B");
    g.throughput(Throughput::Bytes(inner.len() as u64));
    let mut out = Vec::with_capacity(2048);
    g.bench_function("compress", |b| {
        b.iter(|| {
            out.clear();
            lzw::compress(black_box(&inner), &mut out);
            out.len()
        })
    });
    let mut z = Vec::new();
    lzw::compress(&inner, &mut z);
    g.bench_function("decompress", |b| {
        b.iter(|| lzw::decompress(black_box(&z), 1 << 20).unwrap().len())
    });
    g.finish();
}

fn bench_stream(c: &mut Criterion) {
    let states: Vec<PushNodeState> = (0..100)
        .map(|i| {
            let a = alive(i);
            PushNodeState {
                name: a.node,
                addr: a.addr,
                port: a.port,
                meta: a.meta,
                incarnation: a.incarnation,
                state: 0,
                vsn: a.vsn,
            }
        })
        .collect();
    let msg = StreamMessage::PushPull {
        header: PushPullHeader {
            join: false,
            ..Default::default()
        },
        states,
        user_state: vec![7; 2000],
    };
    let key = Key::new(&[0x5a; 32]).unwrap();
    let keyring = Keyring::new(key.clone());
    let enc = StreamEncodeOptions {
        compress: true,
        encrypt: Some((&key, [1; 12], EncryptionVersion::V1)),
        label: b"",
    };
    let dec = StreamDecodeOptions {
        keyring: Some(&keyring),
        verify_incoming: true,
        ..Default::default()
    };
    let mut g = c.benchmark_group("push_pull_100_nodes");
    let mut out = Vec::new();
    g.bench_function("encode/lzw_aes256", |b| {
        b.iter(|| {
            out.clear();
            encode_stream_message(black_box(&msg), &enc, &mut out);
            out.len()
        })
    });
    let bytes = out.clone();
    g.bench_function("decode/lzw_aes256", |b| {
        b.iter(|| decode_stream_message(black_box(&bytes), &dec).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_messages, bench_packets, bench_stream);
criterion_main!(benches);
