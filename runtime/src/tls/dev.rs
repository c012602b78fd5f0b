//! Development certificates: made with rcgen, kept per user so that a
//! server and a client in different processes agree without passing files
//! around.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::Identity;
use crate::Error;

/// A self-signed certificate for development and tests, made with rcgen.
///
/// Never used unless asked for: a server needs an explicit
/// `.dev_certificate()` and a client has to trust it explicitly. It is a
/// leaf certificate (not a CA) for `localhost`, `127.0.0.1` and `::1`, so
/// trusting it lets a client reach local servers and nothing else.
///
/// ```
/// let cert = grpc_h3::tls::DevCertificate::generate(&["localhost"]).unwrap();
/// assert!(cert.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// ```
#[derive(Clone)]
pub struct DevCertificate {
    cert_pem: String,
    key_pem: String,
}

/// Environment variable naming the directory of the per-user development
/// certificate, instead of the default.
pub const DEV_CERTIFICATE_DIR_ENV: &str = "GRPC_H3_DEV_CERT_DIR";

const FILE_NAME: &str = "localhost.pem";

impl DevCertificate {
    /// A new certificate valid for `names` (DNS names or IP addresses).
    pub fn generate(names: &[&str]) -> Result<DevCertificate, Error> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| Error::tls(format!("generating a development certificate: {e}")))?;
        Ok(DevCertificate {
            cert_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
        })
    }

    /// A new certificate for `localhost`, `127.0.0.1` and `::1`.
    pub fn localhost() -> Result<DevCertificate, Error> {
        DevCertificate::generate(&["localhost", "127.0.0.1", "::1"])
    }

    /// The development certificate of the current user: the one at
    /// [`DevCertificate::user_path`], made on first use. A server started
    /// with [`ServerBuilder::dev_certificate`](crate::server::ServerBuilder::dev_certificate)
    /// uses it, and a client trusts it with
    /// [`ClientTlsConfig::trust_dev_certificate`](super::ClientTlsConfig::trust_dev_certificate),
    /// in any process of the same user.
    pub fn for_this_user() -> Result<DevCertificate, Error> {
        DevCertificate::load_or_make(&DevCertificate::user_path()?)
    }

    /// The certificate saved at `path`, made and saved there first if there
    /// is none.
    fn load_or_make(path: &Path) -> Result<DevCertificate, Error> {
        if let Ok(existing) = DevCertificate::read(path) {
            return Ok(existing);
        }
        let dir = path.parent().expect("the path has a directory");
        create_private_dir(dir)?;
        let made = DevCertificate::localhost()?;
        // Written whole under a temporary name, then linked into place: if
        // two processes race, one link wins and both use its certificate.
        static ATTEMPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let attempt = ATTEMPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temporary = dir.join(format!(".{FILE_NAME}.{}.{attempt}", std::process::id()));
        write_private(&temporary, &format!("{}{}", made.cert_pem, made.key_pem))?;
        let linked = std::fs::hard_link(&temporary, path);
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => Ok(made),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => DevCertificate::read(path),
            Err(e) => Err(Error::io(&format!("saving {}", path.display()), e)),
        }
    }

    /// Where the current user's development certificate and key live:
    /// `$GRPC_H3_DEV_CERT_DIR/localhost.pem` if that is set, else
    /// `localhost.pem` under `$XDG_STATE_HOME/grpc-h3` or
    /// `~/.local/state/grpc-h3` (a directory only the user can read).
    pub fn user_path() -> Result<PathBuf, Error> {
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let dir = if let Some(dir) = env(DEV_CERTIFICATE_DIR_ENV) {
            PathBuf::from(dir)
        } else if let Some(state) = env("XDG_STATE_HOME") {
            PathBuf::from(state).join("grpc-h3")
        } else if let Some(home) = env("HOME").or_else(|| env("USERPROFILE")) {
            PathBuf::from(home).join(".local/state/grpc-h3")
        } else {
            return Err(Error::config(format!(
                "no place for the development certificate: set {DEV_CERTIFICATE_DIR_ENV} (or HOME) to a directory"
            )));
        };
        Ok(dir.join(FILE_NAME))
    }

    /// Reads a certificate and key saved in one PEM file.
    fn read(path: &Path) -> Result<DevCertificate, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(&format!("reading {}", path.display()), e))?;
        let start = text.find("-----BEGIN PRIVATE KEY-----").ok_or_else(|| {
            Error::tls(format!(
                "{} holds no private key; delete it and a new development certificate is made",
                path.display()
            ))
        })?;
        Ok(DevCertificate {
            cert_pem: text[..start].to_owned(),
            key_pem: text[start..].to_owned(),
        })
    }

    /// The certificate, PEM. Clients trust it with
    /// `ClientTlsConfig::ca_certificate` (or `pin_certificate`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The certificate and key as an [`Identity`].
    pub fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }
}

impl fmt::Debug for DevCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DevCertificate { .. }")
    }
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| Error::io(&format!("creating {}", dir.display()), e))
}

fn write_private(path: &Path, contents: &str) -> Result<(), Error> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .map_err(|e| Error::io(&format!("writing {}", path.display()), e))
}

/// Reads the current user's development certificate for a client to trust.
pub(crate) fn user_certificate_pem() -> Result<String, Error> {
    certificate_pem_at(&DevCertificate::user_path()?)
}

fn certificate_pem_at(path: &Path) -> Result<String, Error> {
    match DevCertificate::read(path) {
        Ok(cert) => Ok(cert.cert_pem),
        Err(_) if !path.exists() => Err(Error::tls(format!(
            "no development certificate at {}: start a server with `.dev_certificate()` first, as the same user \
             (or set {DEV_CERTIFICATE_DIR_ENV} to the directory the server uses)",
            path.display()
        ))),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_certificate_is_made_once_and_shared() {
        let dir = std::env::temp_dir().join(format!("grpc-h3-devcert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join(FILE_NAME);
        assert!(certificate_pem_at(&path)
            .unwrap_err()
            .to_string()
            .contains("start a server with `.dev_certificate()` first"));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || DevCertificate::load_or_make(&path).unwrap())
            })
            .collect();
        let made: Vec<DevCertificate> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(
            made.iter().all(|c| c.cert_pem == made[0].cert_pem),
            "racing makers agree"
        );
        assert_eq!(certificate_pem_at(&path).unwrap(), made[0].cert_pem);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join(FILE_NAME)), 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
