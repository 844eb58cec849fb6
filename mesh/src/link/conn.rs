//! The connection a link sends on.

use membership::NodeId;

use super::choice::{Candidate, Dialer};

/// A handshaken connection to a peer, as a link holds it.
#[derive(Clone)]
pub(crate) struct ActiveConn {
    pub(crate) conn: quinn::Connection,
    /// The peer's identity, from its hello.
    pub(crate) id: NodeId,
    pub(crate) dialer: Dialer,
}

impl ActiveConn {
    /// What the connection choice looks at (see [`super::choice`]).
    pub(crate) fn candidate(&self) -> Candidate {
        Candidate {
            generation: self.id.generation,
            dialer: self.dialer,
        }
    }

    /// Whether it closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.conn.close_reason().is_some()
    }
}
