//! `<service>_client::<Service>Client`.

use proc_macro2::TokenStream;
use prost_build::{Method, Service};
use quote::{format_ident, quote};

use crate::names;
use crate::service::{full_name, MethodTypes};

pub(crate) fn generate(service: &Service, types: &[MethodTypes], rt: &TokenStream) -> TokenStream {
    let module = names::module(&service.name, "client");
    let client = format_ident!("{}Client", service.name);
    let full = full_name(service);
    let service_docs = names::docs(&service.comments);
    let module_doc = format!(" Client for the `{full}` service.");
    let methods = service
        .methods
        .iter()
        .zip(types)
        .map(|(m, t)| method(&full, m, t, rt));
    quote! {
        #[doc = #module_doc]
        pub mod #module {
            #![allow(unused_variables, dead_code, clippy::let_unit_value)]

            #service_docs
            #[doc = ""]
            #[doc = " Calls go through `T`, a grpc-h3 `Channel` unless"]
            #[doc = " chosen otherwise: any `tower::Service` over gRPC `http` requests"]
            #[doc = " (a channel behind layers or an interceptor, another HTTP client)."]
            #[doc = " Cheap to clone: clones share the channel and its connection."]
            #[derive(Debug, Clone)]
            pub struct #client<T = #rt::codegen::Channel> {
                inner: #rt::codegen::Grpc<T>,
            }

            impl<T> #client<T> {
                /// The fully qualified service name.
                pub const SERVICE_NAME: &'static str = #full;

                /// A client calling the service through `inner`.
                pub fn new(inner: T) -> Self {
                    Self { inner: #rt::codegen::Grpc::new(inner) }
                }

                /// A client whose calls pass `interceptor` first, which may
                /// add metadata (credentials) or refuse them.
                pub fn with_interceptor<F>(
                    inner: T,
                    interceptor: F,
                ) -> #client<#rt::codegen::InterceptedService<T, F>>
                where
                    F: #rt::codegen::Interceptor,
                {
                    #client::new(#rt::codegen::InterceptedService::new(inner, interceptor))
                }

                /// Compresses request messages with `encoding`. Default: uncompressed.
                #[must_use]
                pub fn send_compressed(mut self, encoding: #rt::codegen::CompressionEncoding) -> Self {
                    self.inner.options_mut().send_compression = Some(encoding);
                    self
                }

                /// Accepts responses compressed with `encoding` (advertised in
                /// `grpc-accept-encoding`), as tonic's builder of that name
                /// does. Default: every encoding compiled in (gzip and zstd
                /// with the default features) is accepted already.
                #[must_use]
                pub fn accept_compressed(mut self, encoding: #rt::codegen::CompressionEncoding) -> Self {
                    self.inner.options_mut().accept_compression.enable(encoding);
                    self
                }

                /// Largest response message accepted. Default: 4 MiB.
                #[must_use]
                pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
                    self.inner.options_mut().max_decoding_message_size = limit;
                    self
                }

                /// Largest request message sent. Default: 4 GiB - 1.
                #[must_use]
                pub fn max_encoding_message_size(mut self, limit: usize) -> Self {
                    self.inner.options_mut().max_encoding_message_size = limit;
                    self
                }

                /// Timeout for calls whose request sets none. Default: none.
                #[must_use]
                pub fn timeout(mut self, timeout: #rt::codegen::Duration) -> Self {
                    self.inner.options_mut().timeout = Some(timeout);
                    self
                }
            }

            impl<T> #client<T>
            where
                T: #rt::codegen::GrpcService<#rt::codegen::Body> + Clone + Send + Sync + 'static,
                T::Future: Send,
                T::ResponseBody: Send + 'static,
                <T::ResponseBody as #rt::codegen::http_body::Body>::Error: Into<#rt::codegen::BoxError>,
            {
                #(#methods)*
            }
        }
    }
}

fn method(service: &str, method: &Method, types: &MethodTypes, rt: &TokenStream) -> TokenStream {
    let name = names::ident(&method.name);
    let path = format!("/{service}/{}", method.proto_name);
    let (input, output) = (&types.input, &types.output);
    let default_doc = format!(" Calls `{}`.", method.proto_name);
    let docs = names::docs_or(&method.comments, &default_doc);
    let deprecated = names::deprecated(method.options.deprecated);
    let codec = quote!(#rt::codegen::ProstCodec::default());
    let path_value = quote!(#rt::codegen::http::uri::PathAndQuery::from_static(#path));
    let status = quote!(#rt::codegen::Status);
    // The proto's idempotency_level, for the channel's retry policies.
    let idempotency = match method.options.idempotency_level.unwrap_or(0) {
        1 => Some(quote!(#rt::codegen::Idempotency::NoSideEffects)),
        2 => Some(quote!(#rt::codegen::Idempotency::Idempotent)),
        _ => None,
    };
    let bind = |into: TokenStream| match &idempotency {
        Some(level) => quote! {
            let mut request = #into;
            request.extensions_mut().insert(#level);
        },
        None => quote!(let request = #into;),
    };
    let single = bind(quote!(#rt::codegen::IntoRequest::into_request(request)));
    let streaming =
        bind(quote!(#rt::codegen::IntoStreamingRequest::into_streaming_request(request)));
    match (method.client_streaming, method.server_streaming) {
        (false, false) => quote! {
            #docs
            #deprecated
            pub async fn #name(
                &self,
                request: impl #rt::codegen::IntoRequest<#input>,
            ) -> Result<#rt::codegen::Response<#output>, #status> {
                #single
                self.inner.unary(request, #path_value, #codec).await
            }
        },
        (false, true) => quote! {
            #docs
            #deprecated
            pub async fn #name(
                &self,
                request: impl #rt::codegen::IntoRequest<#input>,
            ) -> Result<#rt::codegen::Response<#rt::codegen::Streaming<#output>>, #status> {
                #single
                self.inner.server_streaming(request, #path_value, #codec).await
            }
        },
        (true, false) => quote! {
            #docs
            #deprecated
            pub async fn #name(
                &self,
                request: impl #rt::codegen::IntoStreamingRequest<Message = #input>,
            ) -> Result<#rt::codegen::Response<#output>, #status> {
                #streaming
                self.inner.client_streaming(request, #path_value, #codec).await
            }
        },
        (true, true) => quote! {
            #docs
            #deprecated
            pub async fn #name(
                &self,
                request: impl #rt::codegen::IntoStreamingRequest<Message = #input>,
            ) -> Result<#rt::codegen::Response<#rt::codegen::Streaming<#output>>, #status> {
                #streaming
                self.inner.streaming(request, #path_value, #codec).await
            }
        },
    }
}
