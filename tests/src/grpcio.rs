//! grpcio (Python's binding of the Google C-core) as a peer for tests:
//! finds or installs it, generates the interop stubs, and runs
//! `tests/interop/grpcio_peer.py` as a client or a server.
//!
//! grpcio comes from `$GRPC_H3_PYTHON` (default `python3`) if it can import
//! it; otherwise the pinned versions are installed into a virtual
//! environment under the caller's scratch directory (which needs PyPI
//! once). `.ci/run` installs them up front.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use grpc_h3::tls::DevCertificate;

const GRPCIO: &str = "grpcio==1.85.1";
const GRPCIO_TOOLS: &str = "grpcio-tools==1.85.1";
const GRPCIO_HEALTH: &str = "grpcio-health-checking==1.85.1";
const GRPCIO_REFLECTION: &str = "grpcio-reflection==1.85.1";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn can_import_grpc(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import grpc, grpc_tools, grpc_health.v1.health, grpc_reflection.v1alpha.reflection",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python with grpcio and grpcio-tools, and the generated stubs.
struct Python {
    python: PathBuf,
    stubs: PathBuf,
}

fn python(scratch: &Path) -> &'static Python {
    static PYTHON: OnceLock<Python> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let tmp = scratch;
        let system = PathBuf::from(std::env::var_os("GRPC_H3_PYTHON").unwrap_or_else(|| "python3".into()));
        let python = if can_import_grpc(&system) {
            system
        } else {
            let venv = tmp.join("grpcio-venv");
            let python = venv.join("bin/python");
            if !can_import_grpc(&python) {
                let made = Command::new(&system)
                    .args(["-m", "venv"])
                    .arg(&venv)
                    .status()
                    .unwrap_or_else(|e| {
                        panic!("running {} failed ({e}): the grpcio interop tests need Python 3; install it or point GRPC_H3_PYTHON at one", system.display())
                    });
                assert!(made.success(), "creating a virtual environment in {} failed", venv.display());
                let installed = Command::new(&python)
                    .args(["-m", "pip", "install", "--quiet", GRPCIO, GRPCIO_TOOLS, GRPCIO_HEALTH, GRPCIO_REFLECTION])
                    .status()
                    .unwrap();
                assert!(
                    installed.success(),
                    "installing {GRPCIO}, {GRPCIO_TOOLS}, {GRPCIO_HEALTH} and {GRPCIO_REFLECTION} with pip failed (PyPI unreachable?); install them into the Python named by GRPC_H3_PYTHON"
                );
            }
            python
        };
        let stubs = tmp.join("grpcio-stubs");
        std::fs::create_dir_all(&stubs).unwrap();
        let protos = repo().join("proto");
        let generated = Command::new(&python)
            .args(["-m", "grpc_tools.protoc", "-I"])
            .arg(&protos)
            .arg(format!("--python_out={}", stubs.display()))
            .arg(format!("--grpc_python_out={}", stubs.display()))
            .args([
                "grpc/testing/empty.proto",
                "grpc/testing/messages.proto",
                "grpc/testing/test.proto",
            ])
            .status()
            .unwrap();
        assert!(generated.success(), "grpc_tools.protoc failed on {}", protos.display());
        Python { python, stubs }
    })
}

/// A command running `tests/interop/grpcio_peer.py` with `args` (a
/// Python with grpcio set up under `scratch` first if needed).
pub fn peer(scratch: &Path, args: &[&str]) -> Command {
    let python = python(scratch);
    let mut command = Command::new(&python.python);
    command
        .arg(repo().join("interop/grpcio_peer.py"))
        .args(args)
        .env("GRPC_H3_STUBS", &python.stubs);
    command
}

/// A fresh directory `name` under `scratch`, for this process.
pub fn tempdir(scratch: &Path, name: &str) -> PathBuf {
    let dir = scratch.join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A grpcio server process, killed when dropped.
pub struct GrpcioServer {
    child: Child,
    /// The plaintext (h2c) port.
    pub plain: u16,
    /// The TLS port.
    pub tls: u16,
}

impl Drop for GrpcioServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts grpcio's interop server (TestService, health, reflection) on
/// 127.0.0.1 with `cert` on its TLS port.
pub fn grpcio_server(scratch: &Path, cert: &DevCertificate) -> GrpcioServer {
    let dir = tempdir(scratch, "grpcio-server");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert_pem()).unwrap();
    std::fs::write(&key_path, cert.key_pem()).unwrap();
    let mut child = peer(
        scratch,
        &[
            "server",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .expect("starting the grpcio server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ports: Vec<u16> = line
        .strip_prefix("ports ")
        .unwrap_or_else(|| panic!("grpcio server said {line:?}"))
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    child.stdin.as_mut().unwrap().flush().unwrap();
    GrpcioServer {
        child,
        plain: ports[0],
        tls: ports[1],
    }
}
