//! Go structs <-> swimnet-wire values, and the JSON views swimnet-goref
//! prints of them.

use super::*;

/// One value of a memberlist struct, as swimnet-wire models it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GoStruct {
    Msg(Message),
    Header(PushPullHeader),
    State(PushNodeState),
    UserHeader(UserMsgHeader),
    Compress(Compress),
}

/// Builds our value from Go's JSON view of struct `kind`.
pub(crate) fn from_go(kind: &str, v: &Value) -> GoStruct {
    let u16_ = |k: &str| u16::try_from(ju(v, k)).unwrap();
    let u32_ = |k: &str| u32::try_from(ju(v, k)).unwrap();
    match kind {
        "ping" => GoStruct::Msg(Message::Ping(Ping {
            seq_no: u32_("SeqNo"),
            node: jstr(v, "Node"),
            source_addr: jbytes(v, "SourceAddr"),
            source_port: u16_("SourcePort"),
            source_node: jstr(v, "SourceNode"),
        })),
        "indirectPingReq" => GoStruct::Msg(Message::IndirectPing(IndirectPing {
            seq_no: u32_("SeqNo"),
            target: jbytes(v, "Target"),
            port: u16_("Port"),
            node: jstr(v, "Node"),
            nack: jb(v, "Nack"),
            source_addr: jbytes(v, "SourceAddr"),
            source_port: u16_("SourcePort"),
            source_node: jstr(v, "SourceNode"),
        })),
        "ackResp" => GoStruct::Msg(Message::AckResp(AckResp {
            seq_no: u32_("SeqNo"),
            payload: jbytes(v, "Payload"),
        })),
        "nackResp" => GoStruct::Msg(Message::NackResp(NackResp {
            seq_no: u32_("SeqNo"),
        })),
        "errResp" => GoStruct::Msg(Message::ErrResp(ErrResp {
            error: jstr(v, "Error"),
        })),
        "suspect" => GoStruct::Msg(Message::Suspect(Suspect {
            incarnation: u32_("Incarnation"),
            node: jstr(v, "Node"),
            from: jstr(v, "From"),
        })),
        "dead" => GoStruct::Msg(Message::Dead(Dead {
            incarnation: u32_("Incarnation"),
            node: jstr(v, "Node"),
            from: jstr(v, "From"),
        })),
        "alive" => GoStruct::Msg(Message::Alive(Alive {
            incarnation: u32_("Incarnation"),
            node: jstr(v, "Node"),
            addr: jbytes(v, "Addr"),
            port: u16_("Port"),
            meta: jbytes(v, "Meta"),
            vsn: jbytes(v, "Vsn"),
        })),
        "pushPullHeader" => GoStruct::Header(PushPullHeader {
            nodes: u32_("Nodes"),
            user_state_len: u32_("UserStateLen"),
            join: jb(v, "Join"),
        }),
        "pushNodeState" => GoStruct::State(node_state_from_go(v)),
        "userMsgHeader" => GoStruct::UserHeader(UserMsgHeader {
            user_msg_len: u32_("UserMsgLen"),
        }),
        "compress" => GoStruct::Compress(Compress {
            algo: ju(v, "Algo") as u8,
            buf: jbytes(v, "Buf"),
        }),
        other => panic!("unknown Go struct {other}"),
    }
}

pub(crate) fn node_state_from_go(v: &Value) -> PushNodeState {
    PushNodeState {
        name: jstr(v, "Name"),
        addr: jbytes(v, "Addr"),
        port: u16::try_from(ju(v, "Port")).unwrap(),
        meta: jbytes(v, "Meta"),
        incarnation: u32::try_from(ju(v, "Incarnation")).unwrap(),
        state: ji(v, "State"),
        vsn: jbytes(v, "Vsn"),
    }
}

pub(crate) fn node_state_view(s: &PushNodeState) -> Value {
    json!({"Addr": hnull(&s.addr), "Incarnation": s.incarnation, "Meta": hnull(&s.meta), "Name": s.name,
           "Port": s.port, "State": s.state, "Vsn": hnull(&s.vsn)})
}

/// (Go struct name, Go's JSON view) of our value, as Go shows it after
/// decoding our encoding of it.
pub(crate) fn go_view(s: &GoStruct) -> (&'static str, Value) {
    match s {
        GoStruct::Msg(Message::Ping(p)) => (
            "ping",
            json!({"Node": p.node, "SeqNo": p.seq_no, "SourceAddr": hnull(&p.source_addr),
                   "SourceNode": p.source_node, "SourcePort": p.source_port}),
        ),
        GoStruct::Msg(Message::IndirectPing(p)) => (
            "indirectPingReq",
            json!({"Nack": p.nack, "Node": p.node, "Port": p.port, "SeqNo": p.seq_no,
                   "SourceAddr": hnull(&p.source_addr), "SourceNode": p.source_node,
                   "SourcePort": p.source_port, "Target": hnull(&p.target)}),
        ),
        GoStruct::Msg(Message::AckResp(a)) => (
            "ackResp",
            json!({"Payload": hnull(&a.payload), "SeqNo": a.seq_no}),
        ),
        GoStruct::Msg(Message::NackResp(n)) => ("nackResp", json!({"SeqNo": n.seq_no})),
        GoStruct::Msg(Message::ErrResp(e)) => ("errResp", json!({"Error": e.error})),
        GoStruct::Msg(Message::Suspect(s)) => (
            "suspect",
            json!({"From": s.from, "Incarnation": s.incarnation, "Node": s.node}),
        ),
        GoStruct::Msg(Message::Dead(d)) => (
            "dead",
            json!({"From": d.from, "Incarnation": d.incarnation, "Node": d.node}),
        ),
        GoStruct::Msg(Message::Alive(a)) => (
            "alive",
            json!({"Addr": hnull(&a.addr), "Incarnation": a.incarnation, "Meta": hnull(&a.meta),
                   "Node": a.node, "Port": a.port, "Vsn": hnull(&a.vsn)}),
        ),
        GoStruct::Msg(Message::User(_)) => panic!("a user message is not a Go struct"),
        GoStruct::Header(h) => (
            "pushPullHeader",
            json!({"Join": h.join, "Nodes": h.nodes, "UserStateLen": h.user_state_len}),
        ),
        GoStruct::State(s) => ("pushNodeState", node_state_view(s)),
        GoStruct::UserHeader(h) => ("userMsgHeader", json!({"UserMsgLen": h.user_msg_len})),
        GoStruct::Compress(c) => ("compress", json!({"Algo": c.algo, "Buf": hnull(&c.buf)})),
    }
}

/// Our encoding, with the type byte Go's `encode` writes (none for
/// pushNodeState, which only follows a push/pull header).
pub(crate) fn encode_struct(s: &GoStruct) -> Vec<u8> {
    let mut out = Vec::new();
    match s {
        GoStruct::Msg(m) => codec::encode(m, &mut out),
        GoStruct::Header(h) => {
            out.push(MessageType::PushPull as u8);
            codec::encode_push_pull_header(h, &mut out);
        }
        GoStruct::State(st) => codec::encode_push_node_state(st, &mut out),
        GoStruct::UserHeader(h) => {
            out.push(MessageType::User as u8);
            codec::encode_user_msg_header(h, &mut out);
        }
        GoStruct::Compress(c) => {
            out.push(MessageType::Compress as u8);
            c.encode_body(&mut out);
        }
    }
    out
}

pub(crate) fn decode_struct(kind: &str, b: &[u8]) -> Result<GoStruct, WireError> {
    let body = |t: MessageType| {
        assert_eq!(b.first(), Some(&(t as u8)), "{kind}: wrong type byte");
        Reader::new(&b[1..])
    };
    Ok(match kind {
        "pushPullHeader" => GoStruct::Header(codec::decode_push_pull_header(&mut body(
            MessageType::PushPull,
        ))?),
        "userMsgHeader" => {
            GoStruct::UserHeader(codec::decode_user_msg_header(&mut body(MessageType::User))?)
        }
        "pushNodeState" => GoStruct::State(codec::decode_push_node_state(&mut Reader::new(b))?),
        "compress" => GoStruct::Compress(Compress::decode_body(&mut body(MessageType::Compress))?),
        _ => GoStruct::Msg(codec::decode(b)?),
    })
}

/// Our value of a stream message from the `decoded` view swimnet-goref
/// prints (and the `decode` mode answers with).
pub(crate) fn stream_from_go(d: &Value) -> StreamMessage {
    match ju(d, "type") {
        6 => {
            let states: Vec<PushNodeState> = d["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(node_state_from_go)
                .collect();
            let user_state = jbytes(d, "user_state");
            StreamMessage::PushPull {
                header: PushPullHeader {
                    nodes: states.len() as u32,
                    user_state_len: user_state.len() as u32,
                    join: jb(d, "join"),
                },
                states,
                user_state,
            }
        }
        8 => StreamMessage::User(jbytes(d, "user_msg")),
        0 => match from_go("ping", &d["msg"]) {
            GoStruct::Msg(Message::Ping(p)) => StreamMessage::Ping(p),
            _ => unreachable!(),
        },
        2 => match from_go("ackResp", &d["msg"]) {
            GoStruct::Msg(Message::AckResp(a)) => StreamMessage::AckResp(a),
            _ => unreachable!(),
        },
        13 => match from_go("errResp", &d["msg"]) {
            GoStruct::Msg(Message::ErrResp(e)) => StreamMessage::ErrResp(e),
            _ => unreachable!(),
        },
        t => panic!("unexpected stream type {t}"),
    }
}

/// The view swimnet-goref gives of a stream message it read completely.
pub(crate) fn stream_view(m: &StreamMessage) -> Value {
    match m {
        StreamMessage::PushPull {
            header,
            states,
            user_state,
        } => json!({
            "type": 6, "join": header.join, "nodes": states.iter().map(node_state_view).collect::<Vec<_>>(),
            "user_state": hnull(user_state), "trailing": 0,
        }),
        StreamMessage::User(b) => json!({"type": 8, "user_msg": hex(b), "trailing": 0}),
        StreamMessage::Ping(p) => {
            json!({"type": 0, "msg": go_view(&GoStruct::Msg(Message::Ping(p.clone()))).1, "trailing": 0})
        }
        StreamMessage::AckResp(a) => {
            json!({"type": 2, "msg": go_view(&GoStruct::Msg(Message::AckResp(a.clone()))).1, "trailing": 0})
        }
        StreamMessage::ErrResp(e) => {
            json!({"type": 13, "msg": go_view(&GoStruct::Msg(Message::ErrResp(e.clone()))).1, "trailing": 0})
        }
    }
}

/// Every message in a packet's inner bytes, via swimnet-wire's walker.
pub(crate) fn walk(inner: &[u8]) -> Vec<Message> {
    let mut v = Vec::new();
    for_each_message(inner, MAX_DECOMPRESSED, &mut |m| {
        v.push(m.expect("packet part decodes"))
    });
    v
}

/// Go's view of one leaf message of a packet (the "packet" decode kind).
pub(crate) fn packet_msg_view(m: &Message) -> Value {
    match m {
        Message::User(b) => json!({"type": 8, "user": hex(b)}),
        m => {
            let (kind, view) = go_view(&GoStruct::Msg(m.clone()));
            json!({"type": m.message_type() as u8, "struct": kind, "msg": view})
        }
    }
}
