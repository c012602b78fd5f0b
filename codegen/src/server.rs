//! `<service>_server`: the `<Service>` trait and `<Service>Server<T>`.

use proc_macro2::TokenStream;
use prost_build::{Method, Service};
use quote::{format_ident, quote};

use crate::names;
use crate::service::{full_name, MethodTypes};

pub(crate) fn generate(service: &Service, types: &[MethodTypes], rt: &TokenStream) -> TokenStream {
    let module = names::module(&service.name, "server");
    let service_trait = names::ident(&service.name);
    let server = format_ident!("{}Server", service.name);
    let full = full_name(service);
    let service_docs = names::docs(&service.comments);
    let module_doc = format!(" Server for the `{full}` service.");
    let trait_doc = format!(" The `{full}` service, implemented by the application.");
    let server_doc = format!(
        " Serves a [`{}`] implementation; add it with `Server::builder().add_service(..)`.",
        service.name
    );
    let items = service
        .methods
        .iter()
        .zip(types)
        .map(|(m, t)| trait_items(m, t, rt));
    let arms = service
        .methods
        .iter()
        .zip(types)
        .map(|(m, t)| dispatch_arm(&full, m, t, rt));
    // Methods the proto marks NO_SIDE_EFFECTS (1) or IDEMPOTENT (2): the
    // server may run them from 0-RTT early data.
    let replay_safe = service
        .methods
        .iter()
        .filter(|m| matches!(m.options.idempotency_level, Some(1 | 2)))
        .map(|m| m.proto_name.as_str());
    quote! {
        #[doc = #module_doc]
        pub mod #module {
            #![allow(unused_variables, dead_code, clippy::let_unit_value)]

            #[doc = #trait_doc]
            #service_docs
            #[doc = ""]
            #[doc = " Implement each method with `async fn`. The trait declares them as"]
            #[doc = " returning `impl Future + Send` (native async functions in traits):"]
            #[doc = " calls are not boxed per method, and no `async_trait` is needed."]
            pub trait #service_trait: Send + Sync + 'static {
                #(#items)*
            }

            #[doc = #server_doc]
            #[doc = ""]
            #[doc = " It is a `tower::Service` over `http` requests: it can sit behind tower"]
            #[doc = " layers, and be served by any server that speaks gRPC's HTTP mapping."]
            #[derive(Debug)]
            pub struct #server<T> {
                inner: #rt::codegen::Arc<T>,
                settings: #rt::codegen::ServiceSettings,
            }

            impl<T> #server<T> {
                /// Wraps an implementation.
                pub fn new(inner: T) -> Self {
                    Self::from_arc(#rt::codegen::Arc::new(inner))
                }

                /// Wraps an implementation that is shared elsewhere too.
                pub fn from_arc(inner: #rt::codegen::Arc<T>) -> Self {
                    Self { inner, settings: ::core::default::Default::default() }
                }

                /// Wraps an implementation behind an interceptor, which sees
                /// (and may change or refuse) every call's metadata first.
                pub fn with_interceptor<F>(
                    inner: T,
                    interceptor: F,
                ) -> #rt::codegen::InterceptedService<Self, F>
                where
                    F: #rt::codegen::Interceptor,
                {
                    #rt::codegen::InterceptedService::new(Self::new(inner), interceptor)
                }

                /// Largest request message accepted by this service.
                /// Default: the server's (4 MiB unless changed).
                #[must_use]
                pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
                    self.settings.max_decoding_message_size(limit);
                    self
                }

                /// Largest response message sent by this service.
                /// Default: the server's (4 GiB - 1 unless changed).
                #[must_use]
                pub fn max_encoding_message_size(mut self, limit: usize) -> Self {
                    self.settings.max_encoding_message_size(limit);
                    self
                }

                /// Accepts requests compressed with `encoding`. Default: the
                /// server's (every encoding compiled in).
                #[must_use]
                pub fn accept_compressed(mut self, encoding: #rt::codegen::CompressionEncoding) -> Self {
                    self.settings.accept_compressed(encoding);
                    self
                }

                /// Compresses responses with `encoding` when the client
                /// accepts it. Default: the server's (uncompressed).
                #[must_use]
                pub fn send_compressed(mut self, encoding: #rt::codegen::CompressionEncoding) -> Self {
                    self.settings.send_compressed(encoding);
                    self
                }
            }

            impl<T> Clone for #server<T> {
                fn clone(&self) -> Self {
                    Self { inner: self.inner.clone(), settings: self.settings.clone() }
                }
            }

            impl<T> #rt::codegen::NamedService for #server<T> {
                const NAME: &'static str = #full;
                const REPLAY_SAFE_METHODS: &'static [&'static str] = &[#(#replay_safe),*];
            }

            #[allow(deprecated, clippy::match_single_binding)]
            impl<T, B> #rt::codegen::Service<#rt::codegen::http::Request<B>> for #server<T>
            where
                T: #service_trait,
                B: #rt::codegen::http_body::Body<Data = #rt::codegen::Bytes> + Send + 'static,
                B::Error: Into<#rt::codegen::BoxError>,
            {
                type Response = #rt::codegen::http::Response<#rt::codegen::Body>;
                type Error = #rt::codegen::Infallible;
                type Future = #rt::codegen::BoxFuture<Result<Self::Response, Self::Error>>;

                fn poll_ready(
                    &mut self,
                    _cx: &mut #rt::codegen::Context<'_>,
                ) -> #rt::codegen::Poll<Result<(), Self::Error>> {
                    #rt::codegen::Poll::Ready(Ok(()))
                }

                fn call(&mut self, request: #rt::codegen::http::Request<B>) -> Self::Future {
                    let inner = self.inner.clone();
                    let settings = self.settings.clone();
                    match request.uri().path() {
                        #(#arms)*
                        _ => {
                            let answer = #rt::codegen::unimplemented(&request);
                            Box::pin(async move { Ok(answer) })
                        }
                    }
                }
            }
        }
    }
}

fn trait_items(method: &Method, types: &MethodTypes, rt: &TokenStream) -> TokenStream {
    let name = names::ident(&method.name);
    let (input, output) = (&types.input, &types.output);
    let default_doc = format!(" Handles `{}`.", method.proto_name);
    let docs = names::docs_or(&method.comments, &default_doc);
    let deprecated = names::deprecated(method.options.deprecated);
    let status = quote!(#rt::codegen::Status);
    let request = if method.client_streaming {
        quote!(#rt::codegen::Request<#rt::codegen::Streaming<#input>>)
    } else {
        quote!(#rt::codegen::Request<#input>)
    };
    let (stream_type, response) = if method.server_streaming {
        let stream = names::stream_type(&method.proto_name);
        let stream_doc = format!(" The stream of responses `{}` returns.", method.proto_name);
        (
            quote! {
                #[doc = #stream_doc]
                type #stream: #rt::codegen::Stream<Item = Result<#output, #status>> + Send + 'static;
            },
            quote!(Self::#stream),
        )
    } else {
        (quote!(), output.clone())
    };
    quote! {
        #stream_type

        #docs
        #deprecated
        fn #name(
            &self,
            request: #request,
        ) -> impl #rt::codegen::Future<Output = Result<#rt::codegen::Response<#response>, #status>> + Send;
    }
}

fn dispatch_arm(
    service: &str,
    method: &Method,
    types: &MethodTypes,
    rt: &TokenStream,
) -> TokenStream {
    let name = names::ident(&method.name);
    let path = format!("/{service}/{}", method.proto_name);
    let (input, output) = (&types.input, &types.output);
    let kind = match (method.client_streaming, method.server_streaming) {
        (false, false) => quote!(unary),
        (false, true) => quote!(server_streaming),
        (true, false) => quote!(client_streaming),
        (true, true) => quote!(streaming),
    };
    quote! {
        #path => Box::pin(async move {
            #rt::codegen::#kind(
                request,
                &settings,
                #rt::codegen::ProstCodec::<#output, #input>::default(),
                move |request| async move { inner.#name(request).await },
            )
            .await
        }),
    }
}
