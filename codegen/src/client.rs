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
            #[doc = " Cheap to clone: clones share the channel and its connection."]
            #[derive(Debug, Clone)]
            pub struct #client {
                channel: #rt::codegen::Channel,
                options: #rt::codegen::CallOptions,
            }

            impl #client {
                /// The fully qualified service name.
                pub const SERVICE_NAME: &'static str = #full;

                /// A client calling the service over `channel`.
                pub fn new(channel: #rt::codegen::Channel) -> Self {
                    Self { channel, options: #rt::codegen::CallOptions::default() }
                }

                /// Compresses request messages with `encoding`. Default: uncompressed.
                #[must_use]
                pub fn send_compressed(mut self, encoding: #rt::codegen::CompressionEncoding) -> Self {
                    self.options.send_compression = Some(encoding);
                    self
                }

                /// Largest response message accepted. Default: 4 MiB.
                #[must_use]
                pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
                    self.options.max_decoding_message_size = limit;
                    self
                }

                /// Largest request message sent. Default: 4 GiB - 1.
                #[must_use]
                pub fn max_encoding_message_size(mut self, limit: usize) -> Self {
                    self.options.max_encoding_message_size = limit;
                    self
                }

                /// Timeout for calls whose request sets none. Default: none.
                #[must_use]
                pub fn timeout(mut self, timeout: #rt::codegen::Duration) -> Self {
                    self.options.timeout = Some(timeout);
                    self
                }

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
    let status = quote!(#rt::codegen::Status);
    match (method.client_streaming, method.server_streaming) {
        (false, false) => quote! {
            #docs
            #deprecated
            pub async fn #name(
                &self,
                request: impl #rt::codegen::IntoRequest<#input>,
            ) -> Result<#rt::codegen::Response<#output>, #status> {
                let request = #rt::codegen::IntoRequest::into_request(request);
                self.channel.unary(request, #path, #codec, &self.options).await
            }
        },
        (false, true) => quote! {
            #docs
            #deprecated
            pub async fn #name(
                &self,
                request: impl #rt::codegen::IntoRequest<#input>,
            ) -> Result<#rt::codegen::Response<#rt::codegen::Streaming<#output>>, #status> {
                let request = #rt::codegen::IntoRequest::into_request(request);
                self.channel.server_streaming(request, #path, #codec, &self.options).await
            }
        },
        (true, false) => quote! {
            #docs
            #deprecated
            pub async fn #name(
                &self,
                request: impl #rt::codegen::IntoStreamingRequest<Message = #input>,
            ) -> Result<#rt::codegen::Response<#output>, #status> {
                let request = #rt::codegen::IntoStreamingRequest::into_streaming_request(request);
                self.channel.client_streaming(request, #path, #codec, &self.options).await
            }
        },
        (true, true) => quote! {
            #docs
            #deprecated
            pub async fn #name(
                &self,
                request: impl #rt::codegen::IntoStreamingRequest<Message = #input>,
            ) -> Result<#rt::codegen::Response<#rt::codegen::Streaming<#output>>, #status> {
                let request = #rt::codegen::IntoStreamingRequest::into_streaming_request(request);
                self.channel.streaming(request, #path, #codec, &self.options).await
            }
        },
    }
}
