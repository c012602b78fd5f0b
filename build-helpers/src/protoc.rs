//! Finding and running protoc.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The name protoc gives `proto`: its path relative to the first include
/// directory that contains it.
pub(crate) fn name_in_includes(proto: &Path, includes: &[&Path]) -> io::Result<String> {
    includes
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
                "{} is not inside any include directory ({}); pass its directory in includes",
                proto.display(),
                includes
                    .iter()
                    .map(|i| i.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Runs protoc and returns the serialized `FileDescriptorSet` of `protos`
/// and everything they import, with source info (comments).
pub(crate) fn descriptor_set(
    protos: &[&Path],
    includes: &[&Path],
    scratch: &Path,
) -> io::Result<Vec<u8>> {
    let protoc = find()?;
    std::fs::create_dir_all(scratch)?;
    let out = scratch.join(format!("grpc-h3-descriptors-{}.bin", std::process::id()));
    let mut command = Command::new(&protoc.path);
    command
        .arg("--include_imports")
        .arg("--include_source_info");
    let mut set_out = OsString::from("--descriptor_set_out=");
    set_out.push(&out);
    command.arg(set_out);
    for include in includes.iter().copied().chain(protoc.include.as_deref()) {
        let mut arg = OsString::from("-I");
        arg.push(include);
        command.arg(arg);
    }
    command.args(protos);
    let output = command
        .output()
        .map_err(|e| io::Error::other(format!("running {}: {e}", protoc.path.display())))?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "protoc ({}) failed: {}",
            protoc.path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let bytes = std::fs::read(&out)?;
    let _ = std::fs::remove_file(&out);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_relative_to_the_include_directory() {
        let includes = [Path::new("proto"), Path::new("third_party")];
        assert_eq!(
            name_in_includes(Path::new("proto/pkg/a.proto"), &includes).unwrap(),
            "pkg/a.proto"
        );
        assert_eq!(
            name_in_includes(Path::new("third_party/b.proto"), &includes).unwrap(),
            "b.proto"
        );
        let err = name_in_includes(Path::new("elsewhere/c.proto"), &includes).unwrap_err();
        assert!(err.to_string().contains("not inside any include directory"));
    }
}
