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
        .map(|(m, t)| dispatch_arm(m, t, rt));
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
            #[derive(Debug)]
            pub struct #server<T> {
                inner: #rt::codegen::Arc<T>,
            }

            impl<T> #server<T> {
                /// Wraps an implementation.
                pub fn new(inner: T) -> Self {
                    Self { inner: #rt::codegen::Arc::new(inner) }
                }

                /// Wraps an implementation that is shared elsewhere too.
                pub fn from_arc(inner: #rt::codegen::Arc<T>) -> Self {
                    Self { inner }
                }
            }

            impl<T> Clone for #server<T> {
                fn clone(&self) -> Self {
                    Self { inner: self.inner.clone() }
                }
            }

            impl<T> #rt::codegen::NamedService for #server<T> {
                const NAME: &'static str = #full;
            }

            #[allow(deprecated, clippy::match_single_binding)]
            impl<T: #service_trait> #rt::codegen::Service for #server<T> {
                fn call(
                    &self,
                    method: &str,
                    call: #rt::codegen::ServerCall,
                ) -> Option<#rt::codegen::CallFuture> {
                    match method {
                        #(#arms)*
                        _ => None,
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

fn dispatch_arm(method: &Method, types: &MethodTypes, rt: &TokenStream) -> TokenStream {
    let name = names::ident(&method.name);
    let proto_name = &method.proto_name;
    let (input, output) = (&types.input, &types.output);
    let kind = match (method.client_streaming, method.server_streaming) {
        (false, false) => quote!(unary),
        (false, true) => quote!(server_streaming),
        (true, false) => quote!(client_streaming),
        (true, true) => quote!(streaming),
    };
    quote! {
        #proto_name => {
            let inner = self.inner.clone();
            Some(Box::pin(#rt::codegen::#kind(
                call,
                #rt::codegen::ProstCodec::<#output, #input>::default(),
                move |request| async move { inner.#name(request).await },
            )))
        }
    }
}
