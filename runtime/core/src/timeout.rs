//! The `grpc-timeout` header: at most eight digits followed by one unit
//! (`H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds,
//! `n` nanoseconds).

use std::fmt;
use std::time::Duration;

/// Name of the header carrying the call's timeout.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

const MAX_VALUE: u128 = 99_999_999;

/// A `grpc-timeout` value that does not follow the specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeoutError {
    value: String,
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed grpc-timeout {:?}: expected 1 to 8 digits followed by one of H, M, S, m, u, n",
            self.value
        )
    }
}

impl std::error::Error for TimeoutError {}

/// Encodes a timeout with the finest unit that fits in eight digits,
/// rounding up so the peer never sees a shorter deadline than ours.
/// Timeouts beyond 99,999,999 hours are clamped to that.
///
/// ```
/// use std::time::Duration;
/// use grpc_h3_core::timeout::encode_timeout;
/// assert_eq!(encode_timeout(Duration::from_millis(1500)), "1500000u");
/// assert_eq!(encode_timeout(Duration::from_secs(3600 * 24 * 365)), "31536000S");
/// ```
pub fn encode_timeout(timeout: Duration) -> String {
    let nanos = timeout.as_nanos();
    const UNITS: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (scale, unit) in UNITS {
        let value = nanos.div_ceil(scale);
        if value <= MAX_VALUE {
            return format!("{value}{unit}");
        }
    }
    format!("{MAX_VALUE}H")
}

/// Parses a `grpc-timeout` value.
///
/// ```
/// use std::time::Duration;
/// use grpc_h3_core::timeout::parse_timeout;
/// assert_eq!(parse_timeout("250m").unwrap(), Duration::from_millis(250));
/// assert!(parse_timeout("123456789S").is_err());
/// assert!(parse_timeout("1s").is_err());
/// ```
pub fn parse_timeout(value: &str) -> Result<Duration, TimeoutError> {
    let err = || TimeoutError {
        value: value.to_owned(),
    };
    let bytes = value.as_bytes();
    let (&unit, digits) = bytes.split_last().ok_or_else(err)?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(err());
    }
    let number = digits
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    Ok(match unit {
        b'H' => Duration::from_secs(number * 3600),
        b'M' => Duration::from_secs(number * 60),
        b'S' => Duration::from_secs(number),
        b'm' => Duration::from_millis(number),
        b'u' => Duration::from_micros(number),
        b'n' => Duration::from_nanos(number),
        _ => return Err(err()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_the_finest_unit_that_fits() {
        assert_eq!(encode_timeout(Duration::ZERO), "0n");
        assert_eq!(
            encode_timeout(Duration::from_nanos(99_999_999)),
            "99999999n"
        );
        assert_eq!(encode_timeout(Duration::from_nanos(100_000_001)), "100001u");
        assert_eq!(encode_timeout(Duration::from_secs(100)), "100000m");
        assert_eq!(encode_timeout(Duration::from_secs(200_000)), "200000S");
        assert_eq!(encode_timeout(Duration::MAX), "99999999H");
    }

    #[test]
    fn encoding_never_shortens_the_timeout() {
        for nanos in [
            1u64,
            999,
            1_001,
            123_456_789,
            99_999_999_999,
            7_777_777_777_777,
        ] {
            let d = Duration::from_nanos(nanos);
            let back = parse_timeout(&encode_timeout(d)).unwrap();
            assert!(back >= d, "{d:?} became {back:?}");
        }
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_timeout("2H").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_timeout("3M").unwrap(), Duration::from_secs(180));
        assert_eq!(parse_timeout("4S").unwrap(), Duration::from_secs(4));
        assert_eq!(parse_timeout("5m").unwrap(), Duration::from_millis(5));
        assert_eq!(parse_timeout("6u").unwrap(), Duration::from_micros(6));
        assert_eq!(
            parse_timeout("99999999n").unwrap(),
            Duration::from_nanos(99_999_999)
        );
        assert_eq!(
            parse_timeout("99999999H").unwrap(),
            Duration::from_secs(99_999_999 * 3600)
        );
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            "",
            "S",
            "1",
            "1x",
            "-1S",
            "1.5S",
            " 1S",
            "1S ",
            "123456789m",
            "1ms",
            "１S",
        ] {
            let err = parse_timeout(bad).unwrap_err();
            assert!(
                err.to_string().contains("malformed grpc-timeout"),
                "{bad:?}"
            );
        }
    }
}
