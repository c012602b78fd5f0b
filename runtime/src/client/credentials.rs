//! Call credentials: metadata (typically `authorization: Bearer ...`) that
//! a provider computes for each call, per channel or per call, next to the
//! TLS identity of the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use grpc_h3_core::{Metadata, Status};

/// A boxed future, as [`CallCredentials::metadata`] returns.
pub type CredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Metadata, Status>> + Send + 'a>>;

/// Adds metadata to each call it is attached to: to every call of a
/// channel ([`ChannelBuilder::call_credentials`](super::ChannelBuilder::call_credentials)),
/// or to one call ([`Request::set_call_credentials`](crate::Request::set_call_credentials),
/// which takes precedence).
///
/// A failure fails the call with the returned status, before anything is
/// sent. Credentials are never sent over plaintext HTTP/2 (h2c) unless
/// the channel allows it
/// ([`ChannelBuilder::allow_credentials_over_plaintext`](super::ChannelBuilder::allow_credentials_over_plaintext)).
pub trait CallCredentials: Send + Sync + 'static {
    /// The metadata for a call to `uri` (the server's scheme and authority,
    /// the method's path).
    fn metadata<'a>(&'a self, uri: &'a http::Uri) -> CredentialsFuture<'a>;
}

/// Call credentials as a request extension (what
/// `Request::set_call_credentials` stores).
#[derive(Clone)]
pub struct CallCredentialsExt(pub Arc<dyn CallCredentials>);

impl std::fmt::Debug for CallCredentialsExt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallCredentialsExt(..)")
    }
}

/// How long before its expiry a token is refreshed.
const REFRESH_MARGIN: Duration = Duration::from_secs(10);

type TokenFuture = Pin<Box<dyn Future<Output = Result<(String, Instant), Status>> + Send>>;

/// `authorization: Bearer <token>` from a token source, called when there
/// is no token yet or the last one expires within 10 s; concurrent calls
/// share one refresh. A source that fails fails the calls waiting for it
/// (with its status) and is asked again by the next call.
///
/// ```
/// use std::time::{Duration, Instant};
/// use grpc_h3::client::{BearerToken, Channel};
///
/// // A token source: called again when the token it gave has expired.
/// let credentials = BearerToken::new(|| async {
///     let token = "token-from-your-identity-provider".to_owned();
///     Ok((token, Instant::now() + Duration::from_secs(3600)))
/// });
/// let channel = Channel::builder("https://api.example.com")
///     .call_credentials(credentials)
///     .build();
/// # let _ = channel;
/// ```
pub struct BearerToken {
    source: Box<dyn Fn() -> TokenFuture + Send + Sync>,
    cached: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    /// Tokens from `source`, which returns a token and when it expires.
    pub fn new<F, Fut>(source: F) -> BearerToken
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(String, Instant), Status>> + Send + 'static,
    {
        BearerToken {
            source: Box::new(move || Box::pin(source())),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// One token that never expires.
    pub fn fixed(token: impl Into<String>) -> BearerToken {
        let token = token.into();
        BearerToken::new(move || {
            let token = token.clone();
            async move {
                // Far enough in the future to mean "never".
                Ok((
                    token,
                    Instant::now() + Duration::from_secs(100 * 365 * 86_400),
                ))
            }
        })
    }

    async fn token(&self) -> Result<String, Status> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = &*cached {
            if Instant::now() + REFRESH_MARGIN < *expires {
                return Ok(token.clone());
            }
        }
        let (token, expires) = (self.source)().await?;
        *cached = Some((token.clone(), expires));
        Ok(token)
    }
}

impl CallCredentials for BearerToken {
    fn metadata<'a>(&'a self, _: &'a http::Uri) -> CredentialsFuture<'a> {
        Box::pin(async move {
            let token = self.token().await?;
            let mut metadata = Metadata::new();
            metadata
                .insert("authorization", &format!("Bearer {token}"))
                .map_err(|e| {
                    Status::unauthenticated(format!("the token is not a valid header value: {e}"))
                })?;
            Ok(metadata)
        })
    }
}

/// Applies the call's (or else the channel's) credentials to `request`.
pub(crate) async fn apply(
    channel: Option<&Arc<dyn CallCredentials>>,
    allow_plaintext: bool,
    request: &mut http::Request<crate::Body>,
) -> Result<(), Status> {
    let per_call = request
        .extensions()
        .get::<CallCredentialsExt>()
        .map(|c| c.0.clone());
    let Some(credentials) = per_call.as_ref().or(channel) else {
        return Ok(());
    };
    if request.uri().scheme() != Some(&http::uri::Scheme::HTTPS) && !allow_plaintext {
        return Err(Status::unauthenticated(format!(
            "call credentials are not sent over plaintext HTTP/2 (h2c) to {}: use https://, or allow it with ChannelBuilder::allow_credentials_over_plaintext",
            request.uri().authority().map_or("the server", |a| a.as_str())
        )));
    }
    let metadata = credentials.metadata(request.uri()).await?;
    metadata.replace_in(request.headers_mut());
    Ok(())
}
