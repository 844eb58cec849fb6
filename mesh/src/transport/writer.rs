//! The writer task of a link: moves frames from its outbox onto its active
//! connection, in order, everything buffered in one write; dials when there
//! is no connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::dial::DialError;
use crate::link::outbox::{OpenStream, Outbox};
use crate::link::Link;
use crate::stats::Stats;
use crate::wire::frame::{encode_frame_into, put_postcard};
use crate::wire::{EnvelopeHeader, StreamKind};

/// How long a writer waits between failed dials: from `min`, doubling up
/// to `max`.
#[derive(Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

/// Runs the writer of `link`; `connect` gives it a connection when it has
/// none (dialed and registered, or the one that won against it).
pub(crate) async fn run_writer<F, C>(
    link: Arc<Link>,
    backoff: Backoff,
    stats: Arc<Stats>,
    connect: F,
) where
    F: Fn() -> C,
    C: Future<Output = Result<quinn::Connection, DialError>>,
{
    let outbox = link.outbox();
    let mut stream: Option<OpenStream> = None;
    let mut wait = backoff.min;
    let mut batch = Vec::new();
    loop {
        batch.clear();
        let frames = outbox.take(&mut batch, &mut stream).await;
        let mut written = false;
        for _attempt in 0..2 {
            let conn = match link.active() {
                Some(active) => active.conn,
                None => match connect().await {
                    Ok(conn) => conn,
                    Err(error) => {
                        tracing::debug!(peer = %link.name(), %error, ?wait, "dial failed");
                        link.pending().fail_all();
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = link.connected() => {}
                        }
                        wait = (wait * 2).min(backoff.max);
                        break;
                    }
                },
            };
            wait = backoff.min;
            if stream.as_ref().map(|(id, _)| *id) != Some(conn.stable_id()) {
                stream = open_messages_stream(&conn, outbox)
                    .await
                    .map(|s| (conn.stable_id(), s));
            }
            if let Some((_, send)) = stream.as_mut() {
                if send.write_all(&batch).await.is_ok() {
                    written = true;
                    break;
                }
            }
            stream = None;
        }
        if !written {
            stats
                .messages_undeliverable
                .fetch_add(frames, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Opens a messages stream that defines every service number `outbox`
/// gave so far: the frames about to be written may use any of them.
async fn open_messages_stream(
    conn: &quinn::Connection,
    outbox: &Outbox,
) -> Option<quinn::SendStream> {
    let mut send = conn.open_uni().await.ok()?;
    let mut start = vec![StreamKind::Messages as u8];
    let names = outbox.service_names();
    if !names.is_empty() {
        let names = names.iter().map(|name| &**name).collect();
        let header = EnvelopeHeader::Services { names };
        // At most 1024 names (`MAX_SERVICE_IDS`) of at most 256 bytes each.
        encode_frame_into(&mut start, usize::MAX, |buf| put_postcard(buf, &header)).ok()?;
    }
    send.write_all(&start).await.ok()?;
    Some(send)
}
