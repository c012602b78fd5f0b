//! Options as `protoc --grpc-h3_opt=...` passes them.

use crate::{Error, Options};

const HELP: &str = "supported options: client=true|false, server=true|false, messages=true|false, \
extern_path=.proto.path=::rust::path, type_attribute=.proto.path=#[attribute], runtime_path=::grpc_h3, file_descriptor_set=true|false";

fn flag(key: &str, value: &str) -> Result<bool, Error> {
    match value {
        "true" | "" => Ok(true),
        "false" => Ok(false),
        other => Err(Error::new(format!(
            "option {key}={other}: expected true or false"
        ))),
    }
}

fn pair(key: &str, value: &str) -> Result<(String, String), Error> {
    match value.split_once('=') {
        Some((proto, rust)) if proto.starts_with('.') && !rust.is_empty() => {
            Ok((proto.to_owned(), rust.to_owned()))
        }
        _ => Err(Error::new(format!(
            "option {key}={value}: expected {key}=.proto.path=value (the protobuf path starts with a dot)"
        ))),
    }
}

impl Options {
    /// Parses the comma-separated parameter protoc hands a plugin. Values
    /// cannot contain commas: pass a second `--grpc-h3_opt` instead.
    ///
    /// ```
    /// let options = grpc_h3_codegen::Options::from_plugin_parameter(
    ///     "server=false,extern_path=.common=::common",
    /// ).unwrap();
    /// assert!(options.client && !options.server);
    /// assert_eq!(options.extern_paths, [(".common".to_owned(), "::common".to_owned())]);
    /// ```
    pub fn from_plugin_parameter(parameter: &str) -> Result<Options, Error> {
        let mut options = Options::default();
        for item in parameter
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            match key {
                "client" => options.client = flag(key, value)?,
                "server" => options.server = flag(key, value)?,
                "messages" => options.messages = flag(key, value)?,
                "file_descriptor_set" => options.file_descriptor_set = flag(key, value)?,
                "extern_path" => options.extern_paths.push(pair(key, value)?),
                "type_attribute" => options.type_attributes.push(pair(key, value)?),
                "runtime_path" if !value.is_empty() => options.runtime_path = value.to_owned(),
                _ => return Err(Error::new(format!("unknown option {item:?}; {HELP}"))),
            }
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_option() {
        let options = Options::from_plugin_parameter(
            "client=false, messages=false,file_descriptor_set=false,extern_path=.a.b=::x::b,type_attribute=.a.M=#[derive(Eq)],runtime_path=::rt",
        )
        .unwrap();
        assert!(!options.client && options.server && !options.messages);
        assert!(!options.file_descriptor_set);
        assert_eq!(options.extern_paths, [(".a.b".into(), "::x::b".into())]);
        assert_eq!(
            options.type_attributes,
            [(".a.M".into(), "#[derive(Eq)]".into())]
        );
        assert_eq!(options.runtime_path, "::rt");
    }

    #[test]
    fn bad_options_are_explained() {
        for bad in [
            "nope",
            "client=maybe",
            "extern_path=pkg",
            "extern_path=.pkg=",
        ] {
            let err = Options::from_plugin_parameter(bad).unwrap_err().to_string();
            assert!(
                err.contains("option") || err.contains("supported"),
                "{bad}: {err}"
            );
        }
    }
}
