//! Finding protoc, running it through prost-build, and mapping the files
//! given by the user to the names protoc gives them.

use std::io;
use std::path::{Path, PathBuf};

use prost_types::FileDescriptorSet;

/// A protoc binary, and the include directory of the well-known types
/// when it comes without one next to it.
struct Protoc {
    path: PathBuf,
    include: Option<PathBuf>,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `PROTOC`, then `protoc` on `PATH`, then the binary from
/// protoc-bin-vendored.
fn find() -> io::Result<Protoc> {
    if let Some(path) = std::env::var_os("PROTOC").filter(|p| !p.is_empty()) {
        return Ok(Protoc {
            path: PathBuf::from(path),
            include: None,
        });
    }
    if let Some(path) = on_path(if cfg!(windows) {
        "protoc.exe"
    } else {
        "protoc"
    }) {
        return Ok(Protoc {
            path,
            include: None,
        });
    }
    let path = protoc_bin_vendored::protoc_bin_path().map_err(|e| {
        io::Error::other(format!(
            "protoc not found: PROTOC is unset, no protoc on PATH, and protoc-bin-vendored has none for this platform ({e}); install protoc or set PROTOC"
        ))
    })?;
    Ok(Protoc {
        path,
        include: protoc_bin_vendored::include_path().ok(),
    })
}

/// A path made absolute and free of `.`, `..` and symlinks, so that
/// `helloworld.proto`, `./helloworld.proto` and its absolute path compare
/// equal.
fn resolve(path: &Path, what: &str) -> io::Result<PathBuf> {
    path.canonicalize().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{what} {} cannot be read ({e}); paths are relative to the crate root ({})",
                path.display(),
                std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            ),
        )
    })
}

/// The protos and include directories, resolved, plus the include
/// directory of the well-known types when protoc needs one.
pub(crate) struct Inputs {
    pub(crate) protos: Vec<PathBuf>,
    pub(crate) includes: Vec<PathBuf>,
    well_known: Option<PathBuf>,
    protoc: PathBuf,
}

impl Inputs {
    pub(crate) fn resolve(protos: &[&Path], includes: &[&Path]) -> io::Result<Inputs> {
        let protoc = find()?;
        Ok(Inputs {
            protos: protos
                .iter()
                .map(|p| resolve(p, "proto file"))
                .collect::<io::Result<_>>()?,
            includes: includes
                .iter()
                .map(|i| resolve(i, "include directory"))
                .collect::<io::Result<_>>()?,
            well_known: protoc.include,
            protoc: protoc.path,
        })
    }

    /// Runs protoc (through prost-build) on the resolved paths; returns the
    /// descriptor set of the protos and everything they import, with
    /// comments.
    pub(crate) fn descriptor_set(&self) -> io::Result<FileDescriptorSet> {
        let mut config = prost_build::Config::new();
        config.protoc_executable(&self.protoc);
        if let Some(include) = &self.well_known {
            config.protoc_arg(format!("-I{}", include.display()));
        }
        config.load_fds(&self.protos, &self.includes).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("protoc ({}) failed: {e}", self.protoc.display()),
            )
        })
    }

    /// The name protoc gives `proto` (its `index`-th input): its path
    /// relative to the first include directory holding it.
    pub(crate) fn name_of(&self, index: usize, given: &Path) -> io::Result<String> {
        let proto = &self.protos[index];
        self.includes
            .iter()
            .find_map(|include| proto.strip_prefix(include).ok())
            .map(|relative| {
                relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .ok_or_else(|| {
                io::Error::other(format!(
                    "{} ({}) is not inside any include directory ({}); add its directory to the includes",
                    given.display(),
                    proto.display(),
                    self.includes
                        .iter()
                        .map(|i| i.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The files behind the descriptor set that live in the user's include
    /// directories (the protos and what they import from there): what
    /// cargo should watch. Never a directory, so nothing else in it makes
    /// cargo rerun the build script.
    pub(crate) fn watched(&self, fds: &FileDescriptorSet) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fds
            .file
            .iter()
            .filter_map(|file| {
                self.includes
                    .iter()
                    .map(|include| include.join(file.name()))
                    .find(|path| path.is_file())
            })
            .collect();
        files.sort();
        files.dedup();
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_watches_the_protos_and_their_imports_never_a_directory() {
        let root = std::env::temp_dir().join(format!("grpc-h3-watch-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("a.proto"),
            "syntax = \"proto3\"; package a; import \"b.proto\"; import \"google/protobuf/empty.proto\"; message A { b.B b = 1; }",
        )
        .unwrap();
        std::fs::write(
            root.join("b.proto"),
            "syntax = \"proto3\"; package b; message B {}",
        )
        .unwrap();
        std::fs::write(root.join("unrelated.proto"), "syntax = \"proto3\";").unwrap();
        let inputs = Inputs::resolve(&[&root.join("a.proto")], &[&root]).unwrap();
        let fds = inputs.descriptor_set().unwrap();
        let root = root.canonicalize().unwrap();
        assert_eq!(
            inputs.watched(&fds),
            [root.join("a.proto"), root.join("b.proto")],
            "the protos used, not the directory, not the well-known types"
        );
        assert_eq!(inputs.name_of(0, Path::new("a.proto")).unwrap(), "a.proto");
        let _ = std::fs::remove_dir_all(&root);
    }
}
