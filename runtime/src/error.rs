//! [`Error`]: why a server or channel could not be set up.
//!
//! Calls never return this type: they fail with a [`Status`](crate::Status).

use std::fmt;

/// What kind of setup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Certificates, keys or the TLS configuration.
    Tls,
    /// Sockets: binding, address resolution.
    Io,
    /// An invalid or missing setting.
    Config,
}

/// A setup error, with a message saying what to do about it.
///
/// ```
/// use grpc_h3::{Channel, ErrorKind, Transport};
/// let err = Channel::builder("http://localhost:50051")
///     .transport(Transport::Http3)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Config);
/// assert!(err.to_string().contains("need an https:// URI"));
/// ```
///
/// Its `Debug` form is readable too (`Tls: reading the certificate file
/// ...`), since that is what `fn main() -> Result<(), Box<dyn Error>>`
/// prints.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub(crate) fn tls(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Tls,
            message: message.into(),
        }
    }

    pub(crate) fn io(context: &str, err: std::io::Error) -> Error {
        Error {
            kind: ErrorKind::Io,
            message: format!("{context}: {err}"),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Config,
            message: message.into(),
        }
    }

    /// What kind of setup failed.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}
