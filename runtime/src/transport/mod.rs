//! The HTTP/3 transport: thin adapters between h3/quinn and the
//! transport-agnostic core.

pub(crate) mod h3_body;
pub(crate) mod h3_status;
pub(crate) mod quic;
