//! Sans-IO cluster membership: who is in the cluster, who is reachable, who is
//! down, and which member is the oldest. No sockets, no tasks, no clock: time is
//! passed in.

mod node_id;

pub use node_id::NodeId;
