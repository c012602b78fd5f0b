//! Compiles `.proto` files to grpc-h3 clients, servers and prost messages
//! from `build.rs`.
//!
//! ```no_run
//! // build.rs
//! fn main() -> std::io::Result<()> {
//!     grpc_h3_build::compile_protos(&["proto/helloworld.proto"], &["proto"])
//! }
//! ```
//!
//! ```ignore
//! // src/lib.rs
//! pub mod helloworld {
//!     grpc_h3::include_proto!("helloworld");
//! }
//! ```
//!
//! protoc is found through the `PROTOC` environment variable, then `PATH`,
//! then the protoc binary shipped in the `protoc-bin-vendored` crate, so a
//! fresh machine needs nothing installed; prost-build runs it. The code is
//! produced by the same generator as the `protoc-gen-grpc-h3` plugin, byte
//! for byte.
//!
//! The smallest layout, a proto next to `Cargo.toml`, works as it is:
//!
//! ```no_run
//! // build.rs
//! fn main() -> std::io::Result<()> {
//!     grpc_h3_build::compile_protos(&["helloworld.proto"], &["."])
//! }
//! ```

mod protoc;

use std::io;
use std::path::{Path, PathBuf};

use grpc_h3_codegen::Options;
use prost::Message;

/// Compiles `protos` (searching imports in `includes`) into `OUT_DIR` with
/// the default settings: messages, clients and servers.
pub fn compile_protos(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> io::Result<()> {
    configure().compile_protos(protos, includes)
}

/// Runs protoc on `protos` (imports searched in `includes`, paths as
/// [`Builder::compile_protos`] takes them) and returns the descriptors of
/// the protos and of every file they import, with source info: what tools
/// need to work with messages they were not compiled with.
///
/// ```no_run
/// let set = grpc_h3_build::descriptor_set(&["proto/helloworld.proto"], &["proto"])?;
/// assert!(set.file.iter().any(|f| f.name() == "helloworld.proto"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn descriptor_set(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> io::Result<prost_types::FileDescriptorSet> {
    let protos: Vec<&Path> = protos.iter().map(AsRef::as_ref).collect();
    let includes: Vec<&Path> = includes.iter().map(AsRef::as_ref).collect();
    protoc::Inputs::resolve(&protos, &includes)?.descriptor_set()
}

/// A [`Builder`] with the defaults, to change some before compiling.
pub fn configure() -> Builder {
    Builder {
        options: Options::default(),
        out_dir: None,
        file_descriptor_set_path: None,
        emit_rerun_if_changed: true,
    }
}

/// Settings for [`Builder::compile_protos`].
#[derive(Clone, Debug)]
pub struct Builder {
    options: Options,
    out_dir: Option<PathBuf>,
    file_descriptor_set_path: Option<PathBuf>,
    emit_rerun_if_changed: bool,
}

impl Builder {
    /// Generates clients. Default: true.
    #[must_use]
    pub fn build_client(mut self, enabled: bool) -> Self {
        self.options.client = enabled;
        self
    }

    /// Generates servers. Default: true.
    #[must_use]
    pub fn build_server(mut self, enabled: bool) -> Self {
        self.options.server = enabled;
        self
    }

    /// Generates the prost messages. With `false` only services are written
    /// and they refer to messages as `super::Message`. Default: true.
    #[must_use]
    pub fn build_messages(mut self, enabled: bool) -> Self {
        self.options.messages = enabled;
        self
    }

    /// Where the `.rs` files go. Default: `$OUT_DIR`.
    #[must_use]
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Uses Rust types from elsewhere for a protobuf path, e.g.
    /// `.extern_path(".common", "::common_protos")`. Default: none (the
    /// well-known types always map to `prost_types`).
    #[must_use]
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.options
            .extern_paths
            .push((proto_path.into(), rust_path.into()));
        self
    }

    /// Adds an attribute to generated types matching `path`, e.g.
    /// `.type_attribute(".", "#[derive(Eq, Hash)]")`. Default: none.
    #[must_use]
    pub fn type_attribute(mut self, path: impl Into<String>, attribute: impl Into<String>) -> Self {
        self.options
            .type_attributes
            .push((path.into(), attribute.into()));
        self
    }

    /// Adds to each package a `FILE_DESCRIPTOR_SET` constant (its files and
    /// their imports, encoded, without comments) to register with gRPC
    /// reflection. Default: true.
    #[must_use]
    pub fn file_descriptor_set(mut self, enabled: bool) -> Self {
        self.options.file_descriptor_set = enabled;
        self
    }

    /// Also writes the `FileDescriptorSet` protoc produced (with imports and
    /// source info) to `path`, e.g. for gRPC reflection. Default: not kept.
    #[must_use]
    pub fn file_descriptor_set_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.file_descriptor_set_path = Some(path.into());
        self
    }

    /// Prints `cargo:rerun-if-changed` for the protos and include
    /// directories. Default: true (turn off outside build scripts).
    #[must_use]
    pub fn emit_rerun_if_changed(mut self, enabled: bool) -> Self {
        self.emit_rerun_if_changed = enabled;
        self
    }

    /// Runs protoc and the generator, writing one `<package>.rs` per
    /// protobuf package into the output directory.
    ///
    /// Paths may be relative (to the crate root, where cargo runs build
    /// scripts) or absolute, with or without `./` or a trailing `/`: they
    /// are resolved before protoc sees them, so `["helloworld.proto"]` with
    /// `["."]` works as well as `["proto/x.proto"]` with `["proto/"]`. Cargo
    /// is told to watch the protos and the files they import from the
    /// include directories, never a directory itself.
    pub fn compile_protos(
        self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> io::Result<()> {
        let protos: Vec<&Path> = protos.iter().map(AsRef::as_ref).collect();
        let includes: Vec<&Path> = includes.iter().map(AsRef::as_ref).collect();
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or_else(|| {
                io::Error::other("OUT_DIR is not set: call compile_protos from build.rs, or set .out_dir(..)")
            })?,
        };
        if self.emit_rerun_if_changed {
            println!("cargo:rerun-if-env-changed=PROTOC");
        }
        let inputs = protoc::Inputs::resolve(&protos, &includes)?;
        let files_to_generate = protos
            .iter()
            .enumerate()
            .map(|(i, given)| inputs.name_of(i, given))
            .collect::<io::Result<Vec<String>>>()?;
        let fds = inputs.descriptor_set()?;
        if self.emit_rerun_if_changed {
            for path in inputs.watched(&fds) {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        if let Some(path) = &self.file_descriptor_set_path {
            std::fs::write(path, fds.encode_to_vec()).map_err(|e| {
                io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
            })?;
        }
        let files = grpc_h3_codegen::generate(&fds, &files_to_generate, &self.options)
            .map_err(|e| io::Error::other(e.to_string()))?;
        std::fs::create_dir_all(&out_dir).map_err(|e| {
            io::Error::new(e.kind(), format!("creating {}: {e}", out_dir.display()))
        })?;
        for file in files {
            let path = out_dir.join(&file.name);
            // Leave unchanged files alone so cargo does not rebuild for nothing.
            if std::fs::read(&path).ok().as_deref() != Some(file.content.as_bytes()) {
                std::fs::write(&path, file.content).map_err(|e| {
                    io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
                })?;
            }
        }
        Ok(())
    }
}
