//! The prost-build hook: prost hands over each service with its message
//! types already resolved to Rust paths.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use proc_macro2::TokenStream;
use prost_build::{Service, ServiceGenerator};

use crate::{client, names, server};

pub(crate) struct Generator {
    pub(crate) client: bool,
    pub(crate) server: bool,
    pub(crate) runtime: TokenStream,
    /// Service code by protobuf package, for `messages = false`.
    pub(crate) output: Rc<RefCell<BTreeMap<String, String>>>,
    /// Problems found while generating (prost's hook cannot return them).
    pub(crate) errors: Rc<RefCell<Vec<String>>>,
}

/// A method with its message types resolved for the service modules.
pub(crate) struct MethodTypes {
    pub(crate) input: TokenStream,
    pub(crate) output: TokenStream,
}

fn resolve(service: &Service) -> Result<Vec<MethodTypes>, String> {
    service
        .methods
        .iter()
        .map(|m| {
            let place = |e: String| {
                format!(
                    "service {}, method {}: {e}",
                    full_name(service),
                    m.proto_name
                )
            };
            Ok(MethodTypes {
                input: names::message_type(&m.input_type).map_err(place)?,
                output: names::message_type(&m.output_type).map_err(place)?,
            })
        })
        .collect()
}

/// `package.Service`, as it appears in `:path`.
pub(crate) fn full_name(service: &Service) -> String {
    if service.package.is_empty() {
        service.proto_name.clone()
    } else {
        format!("{}.{}", service.package, service.proto_name)
    }
}

impl ServiceGenerator for Generator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let types = match resolve(&service) {
            Ok(types) => types,
            Err(e) => {
                self.errors.borrow_mut().push(e);
                return;
            }
        };
        let mut tokens = TokenStream::new();
        if self.client {
            tokens.extend(client::generate(&service, &types, &self.runtime));
        }
        if self.server {
            tokens.extend(server::generate(&service, &types, &self.runtime));
        }
        let code = tokens.to_string();
        buf.push_str(&code);
        buf.push('\n');
        let mut output = self.output.borrow_mut();
        let package = output.entry(service.package.clone()).or_default();
        package.push_str(&code);
        package.push('\n');
    }
}
