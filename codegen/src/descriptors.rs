//! The `FILE_DESCRIPTOR_SET` constant each generated package carries, for
//! gRPC reflection and tools that need the schema at run time.

use std::collections::{BTreeSet, HashMap};

use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};
use quote::quote;

/// The encoded `FileDescriptorSet` of `package`: its files among
/// `files_to_generate` and everything they import, transitively,
/// dependencies before dependents, without source info (comments and
/// spans), so the set stands on its own and stays small.
pub(crate) fn package_set(
    fds: &FileDescriptorSet,
    files_to_generate: &[String],
    package: &str,
) -> Vec<u8> {
    let by_name: HashMap<&str, &FileDescriptorProto> =
        fds.file.iter().map(|f| (f.name(), f)).collect();
    let mut ordered = Vec::new();
    let mut seen = BTreeSet::new();
    for file in fds
        .file
        .iter()
        .filter(|f| f.package() == package && files_to_generate.iter().any(|n| n == f.name()))
    {
        visit(file, &by_name, &mut seen, &mut ordered);
    }
    FileDescriptorSet { file: ordered }.encode_to_vec()
}

/// Depth first over imports, so every file comes after what it imports.
fn visit(
    file: &FileDescriptorProto,
    by_name: &HashMap<&str, &FileDescriptorProto>,
    seen: &mut BTreeSet<String>,
    ordered: &mut Vec<FileDescriptorProto>,
) {
    if !seen.insert(file.name().to_owned()) {
        return;
    }
    for dependency in &file.dependency {
        // Validation has checked that every import is in the set.
        if let Some(imported) = by_name.get(dependency.as_str()) {
            visit(imported, by_name, seen, ordered);
        }
    }
    let mut file = file.clone();
    file.source_code_info = None;
    ordered.push(file);
}

/// The constant's source, appended to the package's file.
pub(crate) fn constant(package: &str, encoded: &[u8]) -> String {
    let doc = format!(
        " The encoded `google.protobuf.FileDescriptorSet` of the `{package}` files compiled \
         here and everything they import, for gRPC reflection \
         (`grpc_h3_reflection::Builder::register_encoded_file_descriptor_set`)."
    );
    let bytes = proc_macro2::Literal::byte_string(encoded);
    let code = quote! {
        #[doc = #doc]
        // Binaries that never register it would otherwise warn.
        #[allow(dead_code)]
        pub const FILE_DESCRIPTOR_SET: &[u8] = #bytes;
    };
    crate::names::format_file(&code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, package: &str, imports: &[&str]) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.into()),
            package: Some(package.into()),
            dependency: imports.iter().map(|s| s.to_string()).collect(),
            source_code_info: Some(Default::default()),
            ..Default::default()
        }
    }

    #[test]
    fn holds_the_package_and_its_imports_in_order_without_source_info() {
        let fds = FileDescriptorSet {
            file: vec![
                file("base.proto", "base", &[]),
                file("mid.proto", "mid", &["base.proto"]),
                file("a.proto", "app", &["mid.proto", "base.proto"]),
                file("b.proto", "app", &["base.proto"]),
                file("unrelated.proto", "other", &[]),
            ],
        };
        let wanted = ["a.proto".to_owned(), "b.proto".to_owned()];
        let set = FileDescriptorSet::decode(&package_set(&fds, &wanted, "app")[..]).unwrap();
        let names: Vec<_> = set.file.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["base.proto", "mid.proto", "a.proto", "b.proto"]);
        assert!(set.file.iter().all(|f| f.source_code_info.is_none()));
    }
}
