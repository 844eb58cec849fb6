//! The node's UDP socket, which a crash can silence: after [`CrashableSocket::kill`]
//! nothing leaves and everything that arrives is discarded, as if the process
//! had died; no QUIC close frame reaches any peer.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// Socket buffer size asked of the kernel (it may grant less: Linux caps it at
/// `net.core.rmem_max` / `wmem_max`). The default ~200 KiB overflows under a
/// burst of QUIC packets on a busy node, and every drop halves the sender's
/// congestion window.
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// Binds a UDP socket for a QUIC endpoint, with buffers as large as the
/// kernel allows (what every node uses; public so that benchmarks can give a
/// bare quinn endpoint the same socket).
pub fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    enlarge_buffers(&socket);
    Ok(socket)
}

fn enlarge_buffers(socket: &std::net::UdpSocket) {
    let socket = socket2::SockRef::from(socket);
    let granted = (
        socket.set_recv_buffer_size(SOCKET_BUFFER),
        socket.set_send_buffer_size(SOCKET_BUFFER),
    );
    if let (Err(error), _) | (_, Err(error)) = granted {
        tracing::debug!(%error, "could not enlarge the UDP socket buffers");
    }
}

pub(crate) struct CrashableSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    dead: AtomicBool,
}

impl CrashableSocket {
    pub(crate) fn new(inner: Arc<dyn AsyncUdpSocket>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            dead: AtomicBool::new(false),
        })
    }

    pub(crate) fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for CrashableSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashableSocket")
            .field("dead", &self.is_dead())
            .finish()
    }
}

impl AsyncUdpSocket for CrashableSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        if self.is_dead() {
            return Ok(());
        }
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            let polled = self.inner.poll_recv(cx, bufs, meta);
            if !self.is_dead() || polled.is_pending() {
                return polled;
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}
