//! The `Alt-Svc` header (RFC 7838): where else an origin is served, and
//! over which protocol. Parsing only; what a client does with it (a cache,
//! honouring `ma`) lives with the client.
//!
//! ```
//! use std::time::Duration;
//! use grpc_h3_core::alt_svc::{parse, AltSvc};
//!
//! let AltSvc::Alternatives(alternatives) = parse(r#"h3=":8443"; ma=3600, h2="alt.example:443""#).unwrap() else {
//!     panic!("not clear");
//! };
//! assert_eq!(alternatives[0].protocol, "h3");
//! assert_eq!(alternatives[0].host, None);
//! assert_eq!(alternatives[0].port, 8443);
//! assert_eq!(alternatives[0].max_age, Duration::from_secs(3600));
//! assert_eq!(alternatives[1].host.as_deref(), Some("alt.example"));
//! assert_eq!(parse("clear"), Ok(AltSvc::Clear));
//! ```

use std::time::Duration;

/// How long an alternative stays fresh when the header gives no `ma`: 24
/// hours (RFC 7838 §3.1).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// A parsed `Alt-Svc` header value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AltSvc {
    /// `clear`: forget every alternative of this origin.
    Clear,
    /// The alternatives, in the server's order of preference.
    Alternatives(Vec<Alternative>),
}

/// One alternative service: `protocol="host:port"; ma=...; persist=1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alternative {
    /// The ALPN protocol id, percent-decoded (`h3`, `h2`, ...).
    pub protocol: String,
    /// Another host, or `None` for the origin's own host (`":port"`).
    pub host: Option<String>,
    /// The port.
    pub port: u16,
    /// How long the alternative may be used (`ma`, default 24 hours).
    pub max_age: Duration,
    /// `persist=1`: the alternative survives network changes.
    pub persist: bool,
}

/// Why an `Alt-Svc` value could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid Alt-Svc value: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parses an `Alt-Svc` header value. Parameters other than `ma` and
/// `persist` are ignored, as RFC 7838 asks; an entry whose protocol id or
/// authority is malformed fails the whole value (a client then keeps what
/// it knew).
pub fn parse(value: &str) -> Result<AltSvc, ParseError> {
    let value = value.trim();
    if value == "clear" {
        return Ok(AltSvc::Clear);
    }
    let mut alternatives = Vec::new();
    for entry in split_outside_quotes(value, ',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        alternatives.push(parse_entry(entry)?);
    }
    if alternatives.is_empty() {
        return Err(ParseError("no alternative".into()));
    }
    Ok(AltSvc::Alternatives(alternatives))
}

fn parse_entry(entry: &str) -> Result<Alternative, ParseError> {
    let mut parts = split_outside_quotes(entry, ';').into_iter();
    let service = parts.next().unwrap_or_default().trim();
    let (protocol, authority) = service
        .split_once('=')
        .ok_or_else(|| ParseError(format!("{service:?} is not protocol=\"host:port\"")))?;
    let protocol = percent_encoding::percent_decode_str(protocol.trim())
        .decode_utf8()
        .map_err(|_| ParseError(format!("protocol id {protocol:?} is not UTF-8")))?
        .into_owned();
    if protocol.is_empty() {
        return Err(ParseError("empty protocol id".into()));
    }
    let authority = unquote(authority.trim())
        .ok_or_else(|| ParseError(format!("alt-authority {authority:?} is not quoted")))?;
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| ParseError(format!("alt-authority {authority:?} has no port")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| ParseError(format!("alt-authority {authority:?} has an invalid port")))?;
    let host = match host.trim_start_matches('[').trim_end_matches(']') {
        "" => None,
        host => Some(host.to_owned()),
    };
    let mut max_age = DEFAULT_MAX_AGE;
    let mut persist = false;
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = unquote(value).unwrap_or(value);
        match name.trim().to_ascii_lowercase().as_str() {
            "ma" => {
                let seconds: u64 = value
                    .parse()
                    .map_err(|_| ParseError(format!("ma={value:?} is not a number of seconds")))?;
                max_age = Duration::from_secs(seconds);
            }
            "persist" => persist = value == "1",
            _ => {}
        }
    }
    Ok(Alternative {
        protocol,
        host,
        port,
        max_age,
        persist,
    })
}

/// The contents of a quoted string (backslash escapes resolved), or
/// `None` if `s` is not quoted.
fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('"')?.strip_suffix('"')
}

/// Splits on `separator` where it is not inside a quoted string.
fn split_outside_quotes(s: &str, separator: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == separator && !in_quotes => {
                pieces.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    pieces.push(&s[start..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alternatives(value: &str) -> Vec<Alternative> {
        match parse(value).unwrap() {
            AltSvc::Alternatives(a) => a,
            AltSvc::Clear => panic!("clear"),
        }
    }

    #[test]
    fn same_host_other_port() {
        let a = alternatives(r#"h3=":443""#);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].protocol, "h3");
        assert_eq!(a[0].host, None);
        assert_eq!(a[0].port, 443);
        assert_eq!(a[0].max_age, DEFAULT_MAX_AGE);
        assert!(!a[0].persist);
    }

    #[test]
    fn parameters_and_several_entries() {
        let a = alternatives(
            r#"h3="alt.example:8443"; ma=60; persist=1, h3-29=":443";ma=10 , h2=":443""#,
        );
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].host.as_deref(), Some("alt.example"));
        assert_eq!(a[0].port, 8443);
        assert_eq!(a[0].max_age, Duration::from_secs(60));
        assert!(a[0].persist);
        assert_eq!(a[1].protocol, "h3-29");
        assert_eq!(a[1].max_age, Duration::from_secs(10));
        assert_eq!(a[2].protocol, "h2");
    }

    #[test]
    fn ipv6_hosts_unknown_parameters_and_percent_encoded_ids() {
        let a = alternatives(r#"w%3Dx%3Ay="[::1]:9000"; foo="a,b;c"; ma="5""#);
        assert_eq!(a[0].protocol, "w=x:y");
        assert_eq!(a[0].host.as_deref(), Some("::1"));
        assert_eq!(a[0].port, 9000);
        assert_eq!(a[0].max_age, Duration::from_secs(5));
    }

    #[test]
    fn clear_and_malformed_values() {
        assert_eq!(parse(" clear "), Ok(AltSvc::Clear));
        for bad in [
            "",
            "h3",
            "h3=:443",
            r#"h3="example.com""#,
            r#"h3=":99999""#,
            r#"h3=":443"; ma=soon"#,
            r#"="":443""#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
