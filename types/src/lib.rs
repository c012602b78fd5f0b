//! The `google.rpc` error model for grpc-h3: `google.rpc.Status` and the
//! standard error details (ErrorInfo, RetryInfo, DebugInfo,
//! QuotaFailure, PreconditionFailure, BadRequest, RequestInfo,
//! ResourceInfo, Help, LocalizedMessage), attached to a [`Status`] and read
//! back from one. The details travel as `grpc-status-details-bin`, so
//! grpc-go, grpc-java, grpcio and tonic-types read what you write here and
//! the other way round.
//!
//! ```
//! use std::time::Duration;
//! use grpc_h3::{Code, Status};
//! use grpc_h3_types::{ErrorDetails, StatusExt};
//!
//! // A server rejecting a request:
//! let status = Status::with_error_details(
//!     Code::InvalidArgument,
//!     "the request has invalid fields",
//!     ErrorDetails::new()
//!         .with_bad_request_violation("user.email", "must contain an @")
//!         .with_error_info("EMAIL_INVALID", "users.example.com", [("field", "email")])
//!         .with_retry_info(Duration::from_secs(2)),
//! );
//!
//! // The client reading it:
//! let details = status.error_details().unwrap();
//! let bad = details.bad_request.unwrap();
//! assert_eq!(bad.field_violations[0].field, "user.email");
//! assert_eq!(details.error_info.unwrap().reason, "EMAIL_INVALID");
//! assert_eq!(details.retry_info.unwrap().retry_delay.unwrap().seconds, 2);
//! ```

use std::time::Duration;

use grpc_h3::{Code, Status};
use prost::Message;
use prost_types::Any;

// The generator's output as it is (prettyplease, not rustfmt): the test
// that regenerates it compares byte for byte.
#[allow(missing_docs, unreachable_pub, clippy::all)]
#[rustfmt::skip]
mod generated;

/// The generated `google.rpc` messages.
pub mod pb {
    pub use super::generated::*;
}

pub use pb::bad_request::FieldViolation;
pub use pb::help::Link;
pub use pb::{
    BadRequest, DebugInfo, ErrorInfo, Help, LocalizedMessage, PreconditionFailure, QuotaFailure,
    RequestInfo, ResourceInfo, RetryInfo,
};

/// The type URL prefix every gRPC stack uses for these details.
const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// The standard details one status carries, at most one of each kind
/// (as in the google.rpc model), plus any other `Any` the peer sent.
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use]
pub struct ErrorDetails {
    /// Why, as a reason in a domain.
    pub error_info: Option<ErrorInfo>,
    /// When to retry.
    pub retry_info: Option<RetryInfo>,
    /// Server-side debugging information.
    pub debug_info: Option<DebugInfo>,
    /// Which quota ran out.
    pub quota_failure: Option<QuotaFailure>,
    /// Which precondition failed.
    pub precondition_failure: Option<PreconditionFailure>,
    /// Which request fields are invalid.
    pub bad_request: Option<BadRequest>,
    /// Which request this was.
    pub request_info: Option<RequestInfo>,
    /// Which resource was accessed.
    pub resource_info: Option<ResourceInfo>,
    /// Where to read more.
    pub help: Option<Help>,
    /// A message for the end user.
    pub localized_message: Option<LocalizedMessage>,
    /// Details of other types, kept as sent.
    pub other: Vec<Any>,
}

impl ErrorDetails {
    /// No details.
    pub fn new() -> ErrorDetails {
        ErrorDetails::default()
    }

    /// Whether there is no detail at all.
    pub fn is_empty(&self) -> bool {
        *self == ErrorDetails::default()
    }

    /// Sets the [`ErrorInfo`].
    pub fn with_error_info<K: Into<String>, V: Into<String>>(
        mut self,
        reason: impl Into<String>,
        domain: impl Into<String>,
        metadata: impl IntoIterator<Item = (K, V)>,
    ) -> ErrorDetails {
        self.error_info = Some(ErrorInfo {
            reason: reason.into(),
            domain: domain.into(),
            metadata: metadata
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        });
        self
    }

    /// Sets the [`RetryInfo`]: retry after `delay`.
    pub fn with_retry_info(mut self, delay: Duration) -> ErrorDetails {
        self.retry_info = Some(RetryInfo {
            retry_delay: Some(prost_types::Duration {
                seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
                nanos: delay.subsec_nanos() as i32,
            }),
        });
        self
    }

    /// Sets the [`DebugInfo`].
    pub fn with_debug_info(
        mut self,
        stack_entries: impl IntoIterator<Item = impl Into<String>>,
        detail: impl Into<String>,
    ) -> ErrorDetails {
        self.debug_info = Some(DebugInfo {
            stack_entries: stack_entries.into_iter().map(Into::into).collect(),
            detail: detail.into(),
        });
        self
    }

    /// Adds a violation to the [`QuotaFailure`].
    pub fn with_quota_failure_violation(
        mut self,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> ErrorDetails {
        self.quota_failure
            .get_or_insert_with(Default::default)
            .violations
            .push(pb::quota_failure::Violation {
                subject: subject.into(),
                description: description.into(),
            });
        self
    }

    /// Adds a violation to the [`PreconditionFailure`].
    pub fn with_precondition_failure_violation(
        mut self,
        kind: impl Into<String>,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> ErrorDetails {
        self.precondition_failure
            .get_or_insert_with(Default::default)
            .violations
            .push(pb::precondition_failure::Violation {
                r#type: kind.into(),
                subject: subject.into(),
                description: description.into(),
            });
        self
    }

    /// Adds a field violation to the [`BadRequest`].
    pub fn with_bad_request_violation(
        mut self,
        field: impl Into<String>,
        description: impl Into<String>,
    ) -> ErrorDetails {
        self.bad_request
            .get_or_insert_with(Default::default)
            .field_violations
            .push(FieldViolation {
                field: field.into(),
                description: description.into(),
                ..Default::default()
            });
        self
    }

    /// Sets the [`RequestInfo`].
    pub fn with_request_info(
        mut self,
        request_id: impl Into<String>,
        serving_data: impl Into<String>,
    ) -> ErrorDetails {
        self.request_info = Some(RequestInfo {
            request_id: request_id.into(),
            serving_data: serving_data.into(),
        });
        self
    }

    /// Sets the [`ResourceInfo`].
    pub fn with_resource_info(
        mut self,
        resource_type: impl Into<String>,
        resource_name: impl Into<String>,
        owner: impl Into<String>,
        description: impl Into<String>,
    ) -> ErrorDetails {
        self.resource_info = Some(ResourceInfo {
            resource_type: resource_type.into(),
            resource_name: resource_name.into(),
            owner: owner.into(),
            description: description.into(),
        });
        self
    }

    /// Adds a link to the [`Help`].
    pub fn with_help_link(
        mut self,
        description: impl Into<String>,
        url: impl Into<String>,
    ) -> ErrorDetails {
        self.help
            .get_or_insert_with(Default::default)
            .links
            .push(Link {
                description: description.into(),
                url: url.into(),
            });
        self
    }

    /// Sets the [`LocalizedMessage`].
    pub fn with_localized_message(
        mut self,
        locale: impl Into<String>,
        message: impl Into<String>,
    ) -> ErrorDetails {
        self.localized_message = Some(LocalizedMessage {
            locale: locale.into(),
            message: message.into(),
        });
        self
    }

    /// The details as `Any` messages, in the order of the fields above.
    pub fn to_any(&self) -> Vec<Any> {
        fn pack(name: &str, message: &impl Message) -> Any {
            Any {
                type_url: format!("{TYPE_URL_PREFIX}google.rpc.{name}"),
                value: message.encode_to_vec(),
            }
        }
        let mut out = Vec::new();
        macro_rules! each {
            ($($field:ident: $name:literal),*) => {
                $(if let Some(detail) = &self.$field {
                    out.push(pack($name, detail));
                })*
            };
        }
        each!(
            error_info: "ErrorInfo",
            retry_info: "RetryInfo",
            debug_info: "DebugInfo",
            quota_failure: "QuotaFailure",
            precondition_failure: "PreconditionFailure",
            bad_request: "BadRequest",
            request_info: "RequestInfo",
            resource_info: "ResourceInfo",
            help: "Help",
            localized_message: "LocalizedMessage"
        );
        out.extend(self.other.iter().cloned());
        out
    }

    /// Sorts `Any` messages into the standard details; other types (and
    /// a second detail of a kind already seen) go to `other`.
    pub fn from_any(
        details: impl IntoIterator<Item = Any>,
    ) -> Result<ErrorDetails, prost::DecodeError> {
        let mut out = ErrorDetails::new();
        for any in details {
            let name = any
                .type_url
                .rsplit_once('/')
                .map_or(any.type_url.as_str(), |(_, name)| name);
            macro_rules! sort {
                ($($name:literal => $field:ident),*) => {
                    match name {
                        $($name if out.$field.is_none() => {
                            out.$field = Some(Message::decode(any.value.as_slice())?);
                        })*
                        _ => out.other.push(any),
                    }
                };
            }
            sort!(
                "google.rpc.ErrorInfo" => error_info,
                "google.rpc.RetryInfo" => retry_info,
                "google.rpc.DebugInfo" => debug_info,
                "google.rpc.QuotaFailure" => quota_failure,
                "google.rpc.PreconditionFailure" => precondition_failure,
                "google.rpc.BadRequest" => bad_request,
                "google.rpc.RequestInfo" => request_info,
                "google.rpc.ResourceInfo" => resource_info,
                "google.rpc.Help" => help,
                "google.rpc.LocalizedMessage" => localized_message
            );
        }
        Ok(out)
    }
}

/// Rich error details on [`grpc_h3::Status`].
pub trait StatusExt: Sized {
    /// A status whose `grpc-status-details-bin` is a `google.rpc.Status`
    /// with `code`, `message` and `details`.
    fn with_error_details(code: Code, message: impl Into<String>, details: ErrorDetails) -> Self;

    /// The `google.rpc.Status` in `grpc-status-details-bin`, if any was
    /// sent.
    fn rpc_status(&self) -> Result<Option<pb::Status>, prost::DecodeError>;

    /// The standard details sent with this status (empty when none were).
    fn error_details(&self) -> Result<ErrorDetails, prost::DecodeError> {
        match self.rpc_status()? {
            Some(status) => ErrorDetails::from_any(status.details),
            None => Ok(ErrorDetails::new()),
        }
    }
}

impl StatusExt for Status {
    fn with_error_details(code: Code, message: impl Into<String>, details: ErrorDetails) -> Status {
        let message = message.into();
        let encoded = pb::Status {
            code: code as i32,
            message: message.clone(),
            details: details.to_any(),
        }
        .encode_to_vec();
        Status::with_details(code, message, encoded.into())
    }

    fn rpc_status(&self) -> Result<Option<pb::Status>, prost::DecodeError> {
        if self.details().is_empty() {
            return Ok(None);
        }
        pb::Status::decode(self.details()).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_the_round_trip_and_unknown_types_are_kept() {
        let other = Any {
            type_url: "type.googleapis.com/acme.Extra".into(),
            value: vec![8, 1],
        };
        let mut details = ErrorDetails::new()
            .with_error_info("R", "d", [("k", "v")])
            .with_retry_info(Duration::from_millis(1500))
            .with_debug_info(["a", "b"], "detail")
            .with_quota_failure_violation("user:1", "too many")
            .with_precondition_failure_violation("TOS", "user:1", "not accepted")
            .with_bad_request_violation("f", "empty")
            .with_bad_request_violation("g", "too long")
            .with_request_info("id-1", "x")
            .with_resource_info("book", "b/1", "o", "gone")
            .with_help_link("docs", "https://example.com")
            .with_localized_message("fr-FR", "non");
        details.other.push(other);
        let status = Status::with_error_details(Code::FailedPrecondition, "no", details.clone());
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.error_details().unwrap(), details);
        let rpc = status.rpc_status().unwrap().unwrap();
        assert_eq!((rpc.code, rpc.message.as_str()), (9, "no"));
        assert_eq!(rpc.details.len(), 11);
        assert_eq!(
            details.retry_info.unwrap().retry_delay.unwrap(),
            prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            }
        );
    }

    #[test]
    fn no_details_and_garbage_are_told_apart() {
        assert!(Status::internal("x").error_details().unwrap().is_empty());
        let garbage = Status::with_details(Code::Internal, "x", bytes::Bytes::from_static(b"\xff"));
        assert!(garbage.error_details().is_err());
    }
}
