//! The bytes of one gossip TCP connection: what the driver's stream tasks
//! send to the core ([`StreamIn`]), what the core sends back ([`StreamOut`]),
//! and the task body that moves bytes between the socket and the core in
//! bounded chunks ([`serve_stream`]). No protocol here: the core decides.

use swimnet_core::StreamId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Bytes or an outcome from a stream task, for the core.
pub(crate) enum StreamIn {
    /// Data read from the connection; `true` marks the end of the peer's side.
    Data(StreamId, Vec<u8>, bool),
    /// The connection failed (connect, read, write or the deadline).
    Error(StreamId, String),
    /// The connection attempt got a reset: nothing listens there.
    Refused(StreamId),
}

/// What the core wants done with a connection it is reading.
pub(crate) enum StreamOut {
    /// Write this reply, then close.
    Reply(Vec<u8>),
    /// Close without writing.
    Close,
}

/// Serves one TCP connection: writes `initial` (if any), then reads chunks
/// into the core until EOF or a reply/close command, within the size cap.
pub(crate) async fn serve_stream(
    id: StreamId,
    mut stream: TcpStream,
    initial: Option<Vec<u8>>,
    read: bool,
    max_read: usize,
    mut out_rx: mpsc::Receiver<StreamOut>,
    tx: &mpsc::Sender<StreamIn>,
) -> Result<(), String> {
    if let Some(data) = initial {
        stream
            .write_all(&data)
            .await
            .map_err(|e| format!("write: {e}"))?;
        stream.flush().await.map_err(|e| format!("write: {e}"))?;
    }
    if !read {
        let _ = stream.shutdown().await;
        return Ok(());
    }
    let mut total = 0usize;
    let mut eof = false;
    let mut chunk = vec![0u8; super::driver::STREAM_CHUNK];
    loop {
        tokio::select! {
            out = out_rx.recv() => {
                match out {
                    Some(StreamOut::Reply(data)) => {
                        stream.write_all(&data).await.map_err(|e| format!("write: {e}"))?;
                        let _ = stream.shutdown().await;
                    }
                    Some(StreamOut::Close) | None => {}
                }
                return Ok(());
            }
            r = stream.read(&mut chunk), if !eof => {
                match r {
                    Ok(0) => {
                        eof = true;
                        let _ = tx.send(StreamIn::Data(id, Vec::new(), true)).await;
                    }
                    Ok(n) => {
                        total += n;
                        if total > max_read {
                            return Err(format!("stream over {max_read} bytes"));
                        }
                        if tx.send(StreamIn::Data(id, chunk[..n].to_vec(), false)).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
        }
    }
}
