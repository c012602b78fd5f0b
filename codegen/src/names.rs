//! Identifiers, paths and doc comments for generated code.

use heck::{ToSnakeCase, ToUpperCamelCase};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// Parses a Rust path such as `::grpc_h3` or `super::HelloRequest`.
pub(crate) fn path(text: &str) -> Result<TokenStream, String> {
    syn::parse_str::<syn::Path>(text)
        .map(|p| quote!(#p))
        .map_err(|e| e.to_string())
}

/// A Rust identifier, raw when it is a keyword (`r#type`).
pub(crate) fn ident(text: &str) -> syn::Ident {
    syn::parse_str::<syn::Ident>(text).unwrap_or_else(|_| format_ident!("r#{}", text))
}

/// The module of a service's generated code, e.g. `greeter_client`.
pub(crate) fn module(service: &str, suffix: &str) -> syn::Ident {
    format_ident!("{}_{}", service.to_snake_case(), suffix)
}

/// The associated stream type of a server-streaming method.
pub(crate) fn stream_type(method_proto_name: &str) -> syn::Ident {
    format_ident!("{}Stream", method_proto_name.to_upper_camel_case())
}

/// A message type as seen from inside a generated service module: paths
/// relative to the package module get one more `super::`; absolute paths
/// and `()` (prost's `google.protobuf.Empty`) stay as they are.
pub(crate) fn message_type(rust_type: &str) -> Result<TokenStream, String> {
    let absolute = rust_type.starts_with("::")
        || rust_type.starts_with("crate::")
        || rust_type.starts_with('(');
    let full = if absolute {
        rust_type.to_owned()
    } else {
        format!("super::{rust_type}")
    };
    syn::parse_str::<syn::Type>(&full)
        .map(|t| quote!(#t))
        .map_err(|e| {
            format!(
                "prost resolved a message type to {rust_type:?}, which is not a Rust type ({e})"
            )
        })
}

/// `#[doc = ...]` attributes from protobuf comments, or `fallback` when
/// the element has none.
pub(crate) fn docs_or(comments: &prost_build::Comments, fallback: &str) -> TokenStream {
    if comments.leading.is_empty() && comments.trailing.is_empty() {
        quote!(#[doc = #fallback])
    } else {
        docs(comments)
    }
}

/// `#[doc = ...]` attributes from protobuf comments.
pub(crate) fn docs(comments: &prost_build::Comments) -> TokenStream {
    let lines = comments
        .leading
        .iter()
        .chain(comments.trailing.iter())
        .map(|line| {
            // A leading space keeps rustdoc's markdown as the author wrote it.
            let line = if line.starts_with(' ') || line.is_empty() {
                line.clone()
            } else {
                format!(" {line}")
            };
            quote!(#[doc = #line])
        });
    quote!(#(#lines)*)
}

/// `#[deprecated]` when the protobuf option says so.
pub(crate) fn deprecated(is_deprecated: Option<bool>) -> TokenStream {
    if is_deprecated == Some(true) {
        quote!(#[deprecated])
    } else {
        quote!()
    }
}

/// Formats service code the same way prost-build formats messages.
pub(crate) fn format_file(code: &str) -> String {
    match syn::parse_file(code) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => code.to_owned(),
    }
}
