//! What a server's own certificate says about itself, read from its DER
//! encoding, so that the server can warn at start-up about certificates
//! clients will refuse (the usual tutorial certificate is both a CA and
//! without subjectAltName).

/// Facts about a certificate that decide whether TLS clients accept it as a
/// server certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    /// basicConstraints says CA:TRUE: clients refuse it as a leaf.
    pub(crate) is_ca: bool,
    /// It names hosts in a subjectAltName extension (TLS ignores the CN).
    pub(crate) has_subject_alt_name: bool,
}

const SEQUENCE: u8 = 0x30;
const BOOLEAN: u8 = 0x01;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const EXTENSIONS: u8 = 0xa3; // [3], constructed
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];

/// One DER element: its tag, its content, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The content of an element that must have `tag`.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, content, rest) = element(input)?;
    (found == tag).then_some((content, rest))
}

/// Reads the facts of a DER certificate; `None` if it cannot be parsed.
pub(crate) fn facts(der: &[u8]) -> Option<Facts> {
    let (certificate, _) = expect(der, SEQUENCE)?;
    let (mut tbs, _) = expect(certificate, SEQUENCE)?;
    let mut facts = Facts::default();
    while !tbs.is_empty() {
        let (tag, content, rest) = element(tbs)?;
        tbs = rest;
        if tag != EXTENSIONS {
            continue;
        }
        let (mut extensions, _) = expect(content, SEQUENCE)?;
        while !extensions.is_empty() {
            let (extension, rest) = expect(extensions, SEQUENCE)?;
            extensions = rest;
            let (oid, mut value) = expect(extension, OID)?;
            if let Some((BOOLEAN, _, rest)) = element(value) {
                value = rest; // the `critical` flag
            }
            let (value, _) = expect(value, OCTET_STRING)?;
            if oid == SUBJECT_ALT_NAME {
                facts.has_subject_alt_name = true;
            } else if oid == BASIC_CONSTRAINTS {
                let (constraints, _) = expect(value, SEQUENCE)?;
                if let Some((BOOLEAN, ca, _)) = element(constraints) {
                    facts.is_ca = ca.first().is_some_and(|b| *b != 0);
                }
            }
        }
    }
    Some(facts)
}

/// Logs a warning for each problem clients will have with `der`, the
/// server's certificate.
pub(crate) fn warn_about(der: &[u8]) {
    let Some(facts) = facts(der) else {
        tracing::warn!("the server's certificate could not be parsed to check it");
        return;
    };
    if facts.is_ca {
        tracing::warn!(
            "the server's certificate is a CA certificate (basicConstraints CA:TRUE): TLS clients \
             refuse it as a server certificate unless they pin it; re-issue it with \
             `-addext basicConstraints=critical,CA:FALSE -addext subjectAltName=DNS:<host>`"
        );
    }
    if !facts.has_subject_alt_name {
        tracing::warn!(
            "the server's certificate has no subjectAltName: TLS clients ignore the subject's CN, \
             so it is valid for no host unless pinned; re-issue it with \
             `-addext subjectAltName=DNS:<host>`"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    fn der(ca: bool, names: &[&str]) -> Vec<u8> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn tells_ca_certificates_and_missing_names_apart() {
        let leaf = Facts {
            is_ca: false,
            has_subject_alt_name: true,
        };
        assert_eq!(facts(&der(false, &["localhost"])), Some(leaf));
        assert_eq!(
            facts(&der(true, &["localhost"])),
            Some(Facts {
                is_ca: true,
                ..leaf
            })
        );
        assert_eq!(
            facts(&der(true, &[])),
            Some(Facts {
                is_ca: true,
                has_subject_alt_name: false
            })
        );
        assert_eq!(facts(b"\x30\x03\x02\x01"), None, "truncated input");
        assert_eq!(facts(b""), None);
    }
}
