//! One direction of one flow through a relay: the packets of a link that leave
//! through one socket towards one address, in order.
//!
//! Packets that need no scheduling are sent at once by the relay's receive
//! loop. A rule with a delay or reorder part sends every packet through the
//! lane's [`Schedule`], a plain queue ordered by due time and arrival, driven
//! by a small task. A packet is never due before one queued ahead of it, unless
//! its delay has jitter: while the queue holds packets, later ones wait behind
//! them even after the rule is lifted or the delay shortened, so only jitter
//! and `reorder` ever reorder a link.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{trace, Instrument};

use super::rule::Verdict;
use super::task::AbortOnDrop;

/// The longest a reordered packet waits for later packets to overtake it,
/// counted from when it was due; after that it is sent anyway.
pub const REORDER_MAX_HOLD: Duration = Duration::from_millis(50);

/// Sans-IO delivery queue: delayed packets by due time, reordered packets held
/// until enough later ones have left.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    due: BinaryHeap<Reverse<Due>>,
    held: Vec<Held>,
    ready: VecDeque<Vec<u8>>,
    next_seq: u64,
    /// Latest due time handed out: in-order packets are never due before it.
    last_at: Option<Instant>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: Instant,
    seq: u64,
    packet: Vec<u8>,
}

#[derive(Debug)]
struct Held {
    seq: u64,
    remaining: usize,
    flush_at: Instant,
    packet: Vec<u8>,
}

impl Schedule {
    /// Queues a packet that arrived at `now`, due after `delay` (and, when
    /// `in_order`, not before any packet queued earlier); with
    /// `hold = Some(window)` it waits for `window` later packets to leave first.
    pub(crate) fn push(
        &mut self,
        now: Instant,
        packet: Vec<u8>,
        delay: Duration,
        in_order: bool,
        hold: Option<usize>,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut at = now + delay;
        if in_order {
            at = self.last_at.map_or(at, |last| last.max(at));
        }
        match hold {
            // A held packet is meant to be overtaken: it holds nobody up.
            Some(window) => self.held.push(Held {
                seq,
                remaining: window,
                flush_at: at + REORDER_MAX_HOLD,
                packet,
            }),
            None => {
                self.last_at = Some(self.last_at.map_or(at, |last| last.max(at)));
                self.due.push(Reverse(Due { at, seq, packet }));
            }
        }
    }

    /// The next packet to send at `now`, if any is due.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(packet) = self.ready.pop_front() {
            return Some(packet);
        }
        if let Some(i) = self.held.iter().position(|held| held.flush_at <= now) {
            return Some(self.held.remove(i).packet);
        }
        if self.due.peek().is_none_or(|Reverse(due)| due.at > now) {
            return None;
        }
        let Reverse(due) = self.due.pop()?;
        let mut i = 0;
        while i < self.held.len() {
            let held = &mut self.held[i];
            if held.seq < due.seq {
                held.remaining = held.remaining.saturating_sub(1);
            }
            if held.remaining == 0 {
                let released = self.held.remove(i);
                self.ready.push_back(released.packet);
            } else {
                i += 1;
            }
        }
        Some(due.packet)
    }

    /// When [`pop_due`](Self::pop_due) will next return a packet, if anything
    /// is queued.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let due = self.due.peek().map(|Reverse(due)| due.at);
        let flush = self.held.iter().map(|held| held.flush_at).min();
        match (due, flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .or_else(|| (!self.ready.is_empty()).then(Instant::now))
    }
}

/// The sending side of one direction of a flow.
pub(crate) struct Lane {
    socket: Arc<UdpSocket>,
    destination: SocketAddr,
    queue: mpsc::UnboundedSender<Queued>,
    /// Packets handed to the queue and not yet sent.
    pending: Arc<AtomicUsize>,
}

struct Queued {
    packet: Vec<u8>,
    delay: Duration,
    in_order: bool,
    hold: Option<usize>,
}

impl Lane {
    /// A lane sending from `socket` to `destination`, and its queue's driver
    /// task (in the caller's tracing span), which the caller owns.
    pub(crate) fn new(socket: Arc<UdpSocket>, destination: SocketAddr) -> (Self, AbortOnDrop) {
        let (queue, rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let driver =
            tokio::spawn(drive(socket.clone(), destination, rx, pending.clone()).in_current_span());
        let lane = Self {
            socket,
            destination,
            queue,
            pending,
        };
        (lane, AbortOnDrop(driver))
    }

    /// Carries out `verdict` for `packet`.
    pub(crate) async fn deliver(&self, packet: &[u8], verdict: Verdict) {
        let Verdict::Forward(forward) = verdict else {
            return;
        };
        let immediate = !forward.scheduled
            && forward.delay.is_zero()
            && forward.hold.is_none()
            && self.pending.load(Ordering::Acquire) == 0;
        if immediate {
            for _ in 0..forward.copies {
                send(&self.socket, packet, self.destination).await;
            }
            return;
        }
        for copy in 0..forward.copies {
            self.pending.fetch_add(1, Ordering::AcqRel);
            let queued = Queued {
                packet: packet.to_vec(),
                delay: forward.delay,
                in_order: forward.in_order,
                hold: if copy == 0 { forward.hold } else { None },
            };
            if self.queue.send(queued).is_err() {
                self.pending.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

async fn drive(
    socket: Arc<UdpSocket>,
    destination: SocketAddr,
    mut queue: mpsc::UnboundedReceiver<Queued>,
    pending: Arc<AtomicUsize>,
) {
    let mut schedule = Schedule::default();
    loop {
        let now = Instant::now();
        while let Some(packet) = schedule.pop_due(now) {
            send(&socket, &packet, destination).await;
            pending.fetch_sub(1, Ordering::AcqRel);
        }
        let deadline = schedule.next_deadline();
        tokio::select! {
            queued = queue.recv() => match queued {
                Some(Queued { packet, delay, in_order, hold }) => {
                    schedule.push(Instant::now(), packet, delay, in_order, hold);
                }
                None => return,
            },
            () = sleep_until(deadline) => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn send(socket: &UdpSocket, packet: &[u8], destination: SocketAddr) {
    if let Err(error) = socket.send_to(packet, destination).await {
        // A node that is down answers with ICMP errors; that is not our failure.
        trace!(%destination, %error, "send failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(schedule: &mut Schedule, now: Instant) -> Vec<u8> {
        std::iter::from_fn(|| schedule.pop_due(now))
            .map(|packet| packet[0])
            .collect()
    }

    #[test]
    fn equal_delays_keep_arrival_order() {
        let start = Instant::now();
        let mut schedule = Schedule::default();
        for i in 0..10 {
            schedule.push(start, vec![i], ms(20), true, None);
        }
        assert!(drain(&mut schedule, start + ms(19)).is_empty());
        assert_eq!(schedule.next_deadline(), Some(start + ms(20)));
        assert_eq!(
            drain(&mut schedule, start + ms(20)),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(schedule.next_deadline(), None);
    }

    #[test]
    fn shorter_delay_overtakes_only_by_the_difference() {
        let start = Instant::now();
        let mut schedule = Schedule::default();
        schedule.push(start, vec![0], ms(30), false, None);
        schedule.push(start + ms(1), vec![1], ms(10), false, None);
        assert_eq!(drain(&mut schedule, start + ms(11)), vec![1]);
        assert_eq!(drain(&mut schedule, start + ms(30)), vec![0]);
    }

    #[test]
    fn in_order_packets_wait_behind_earlier_ones() {
        let start = Instant::now();
        let mut schedule = Schedule::default();
        schedule.push(start, vec![0], ms(30), true, None);
        schedule.push(start + ms(1), vec![1], Duration::ZERO, true, None);
        assert!(drain(&mut schedule, start + ms(29)).is_empty());
        assert_eq!(drain(&mut schedule, start + ms(30)), vec![0, 1]);
    }

    #[test]
    fn held_packet_leaves_after_window_later_packets() {
        let now = Instant::now();
        let mut schedule = Schedule::default();
        schedule.push(now, vec![0], Duration::ZERO, true, Some(2));
        for i in 1..5 {
            schedule.push(now, vec![i], Duration::ZERO, true, None);
        }
        assert_eq!(drain(&mut schedule, now), vec![1, 2, 0, 3, 4]);
    }

    #[test]
    fn held_packet_is_flushed_when_traffic_stops() {
        let now = Instant::now();
        let mut schedule = Schedule::default();
        schedule.push(now, vec![0], ms(5), true, Some(3));
        schedule.push(now, vec![1], Duration::ZERO, true, None);
        assert_eq!(drain(&mut schedule, now), vec![1]);
        assert_eq!(
            schedule.next_deadline(),
            Some(now + ms(5) + REORDER_MAX_HOLD)
        );
        assert_eq!(
            drain(&mut schedule, now + ms(5) + REORDER_MAX_HOLD),
            vec![0]
        );
    }
}
