//! Generates grpc-h3 clients and servers (and, through prost-build, the
//! messages) from protobuf descriptors.
//!
//! This is the one generator behind both front ends: the
//! `protoc-gen-grpc-h3` plugin and the `grpc-h3-build` helper for
//! `build.rs`. Both hand it a `FileDescriptorSet` made by protoc and get
//! byte-identical files back.
//!
//! ```no_run
//! # fn f(fds: prost_types::FileDescriptorSet) -> Result<(), grpc_h3_codegen::Error> {
//! let options = grpc_h3_codegen::Options::default();
//! for file in grpc_h3_codegen::generate(&fds, &["helloworld.proto".to_owned()], &options)? {
//!     std::fs::write(&file.name, &file.content).unwrap();
//! }
//! # Ok(()) }
//! ```

mod client;
mod descriptors;
mod names;
mod plugin_options;
mod server;
mod service;
mod validate;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;

use prost_build::Module;
use prost_types::FileDescriptorSet;

/// What to generate and how to name things.
#[derive(Clone, Debug)]
pub struct Options {
    /// Generate `<service>_client` modules. Default: true.
    pub client: bool,
    /// Generate `<service>_server` modules. Default: true.
    pub server: bool,
    /// Generate the prost message types. With `false` the files hold only
    /// services, which refer to messages as `super::Message`: include them
    /// where the package's messages already live. Default: true.
    pub messages: bool,
    /// Protobuf paths whose types live in other crates, as
    /// `(".pkg", "::crate::pkg")` (see prost-build's `extern_path`).
    pub extern_paths: Vec<(String, String)>,
    /// Attributes added to generated types, as `(".pkg.Message", "#[derive(Eq)]")`.
    pub type_attributes: Vec<(String, String)>,
    /// Path of the runtime crate in generated code. Default: `::grpc_h3`.
    pub runtime_path: String,
    /// Add to each package a `FILE_DESCRIPTOR_SET` constant: the encoded
    /// descriptors of its files and of everything they import (without
    /// comments), what gRPC reflection serves. Default: true.
    pub file_descriptor_set: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            client: true,
            server: true,
            messages: true,
            extern_paths: Vec::new(),
            type_attributes: Vec::new(),
            runtime_path: "::grpc_h3".to_owned(),
            file_descriptor_set: true,
        }
    }
}

/// One generated Rust file: the code of one protobuf package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// File name, e.g. `helloworld.rs` or `grpc.testing.rs`.
    pub name: String,
    /// Formatted Rust source.
    pub content: String,
}

/// Why generation failed; the message names the file and element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Generates one file per protobuf package declared by `files_to_generate`
/// (names as protoc reports them, e.g. `helloworld.proto`). `fds` must also
/// hold every file they import.
pub fn generate(
    fds: &FileDescriptorSet,
    files_to_generate: &[String],
    options: &Options,
) -> Result<Vec<GeneratedFile>, Error> {
    validate::descriptor_set(fds, files_to_generate)?;
    let runtime = names::path(&options.runtime_path)
        .map_err(|e| Error::new(format!("runtime_path {:?}: {e}", options.runtime_path)))?;

    let services = Rc::new(RefCell::new(BTreeMap::<String, String>::new()));
    let errors = Rc::new(RefCell::new(Vec::new()));
    let generator = service::Generator {
        client: options.client,
        server: options.server,
        runtime,
        output: services.clone(),
        errors: errors.clone(),
    };
    let mut config = prost_build::Config::new();
    config.service_generator(Box::new(generator));
    for (proto, rust) in &options.extern_paths {
        config.extern_path(proto, rust);
    }
    for (path, attribute) in &options.type_attributes {
        config.type_attribute(path, attribute);
    }
    // prost-build must see every file (its message graph needs imported
    // types; it skips extern ones itself); we then keep only the packages
    // of the files asked for, as protoc plugins do.
    let requests: Vec<_> = fds
        .file
        .iter()
        .map(|f| (Module::from_protobuf_package_name(f.package()), f.clone()))
        .collect();
    let wanted: BTreeSet<String> = fds
        .file
        .iter()
        .filter(|f| files_to_generate.iter().any(|name| name == f.name()))
        .map(|f| f.package().to_owned())
        .collect();

    // prost-build reports some descriptor problems by panicking; validation
    // above catches the ones we know, this turns any other into an error.
    let generated =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.generate(requests)))
            .map_err(|panic| {
                let reason = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown reason");
                Error::new(format!(
                    "prost-build could not generate code for {}: {reason}",
                    files_to_generate.join(", ")
                ))
            })?
            .map_err(|e| Error::new(format!("prost-build: {e}")))?;
    if let Some(first) = errors.borrow().first() {
        return Err(Error::new(format!(
            "{}: {first}",
            files_to_generate.join(", ")
        )));
    }

    let mut files: Vec<GeneratedFile> = if options.messages {
        generated
            .into_iter()
            .filter(|(module, _)| {
                wanted
                    .iter()
                    .any(|p| Module::from_protobuf_package_name(p) == *module)
            })
            .map(|(module, content)| GeneratedFile {
                name: module.to_file_name_or("_"),
                content,
            })
            .collect()
    } else {
        services
            .borrow()
            .iter()
            .filter(|(package, code)| wanted.contains(*package) && !code.is_empty())
            .map(|(package, code)| GeneratedFile {
                name: Module::from_protobuf_package_name(package).to_file_name_or("_"),
                content: names::format_file(code),
            })
            .collect()
    };
    if options.file_descriptor_set {
        for package in &wanted {
            let name = Module::from_protobuf_package_name(package).to_file_name_or("_");
            let encoded = descriptors::package_set(fds, files_to_generate, package);
            let constant = descriptors::constant(package, &encoded);
            // Only into files made anyway: services-only output skips
            // packages without services, and so does their constant.
            if let Some(file) = files.iter_mut().find(|f| f.name == name) {
                file.content.push('\n');
                file.content.push_str(&constant);
            }
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}
