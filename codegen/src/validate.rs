//! Checks a descriptor set before generation, so that problems come back
//! as errors naming the file and element instead of panics inside
//! prost-build.

use std::collections::{HashMap, HashSet};

use heck::ToSnakeCase;
use prost_types::field_descriptor_proto::Type;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

use crate::Error;

/// Fully qualified (`.pkg.Outer.Inner`) message and enum names.
#[derive(Default)]
struct Types {
    messages: HashSet<String>,
    enums: HashSet<String>,
}

impl Types {
    fn add_message(&mut self, scope: &str, message: &DescriptorProto) {
        let name = format!("{scope}.{}", message.name());
        for nested in &message.nested_type {
            self.add_message(&name, nested);
        }
        for e in &message.enum_type {
            self.enums.insert(format!("{name}.{}", e.name()));
        }
        self.messages.insert(name);
    }
}

fn scope(file: &FileDescriptorProto) -> String {
    if file.package().is_empty() {
        String::new()
    } else {
        format!(".{}", file.package())
    }
}

pub(crate) fn descriptor_set(
    fds: &FileDescriptorSet,
    files_to_generate: &[String],
) -> Result<(), Error> {
    let by_name: HashMap<&str, &FileDescriptorProto> =
        fds.file.iter().map(|f| (f.name(), f)).collect();
    let mut types = Types::default();
    for file in &fds.file {
        if file.name().is_empty() {
            return Err(Error::new("the descriptor set holds a file without a name"));
        }
        for dependency in &file.dependency {
            if !by_name.contains_key(dependency.as_str()) {
                return Err(Error::new(format!(
                    "{}: imports {dependency}, which is not in the descriptor set (protoc needs --include_imports)",
                    file.name()
                )));
            }
        }
        let scope = scope(file);
        for message in &file.message_type {
            types.add_message(&scope, message);
        }
        for e in &file.enum_type {
            types.enums.insert(format!("{scope}.{}", e.name()));
        }
    }
    for name in files_to_generate {
        let file = by_name.get(name.as_str()).ok_or_else(|| {
            Error::new(format!(
                "{name}: asked to generate it, but it is not in the descriptor set"
            ))
        })?;
        check_file(file, &types)?;
    }
    Ok(())
}

fn check_message(
    file: &str,
    scope: &str,
    message: &DescriptorProto,
    types: &Types,
) -> Result<(), Error> {
    let name = format!("{scope}.{}", message.name());
    for field in &message.field {
        let kind = field.r#type.and_then(|t| Type::try_from(t).ok());
        let expects = match kind {
            Some(Type::Message) | Some(Type::Group) => Some(&types.messages),
            Some(Type::Enum) => Some(&types.enums),
            None if field.type_name.is_some() => {
                // protoc always resolves the kind; accept either here.
                let t = field.type_name();
                if types.messages.contains(t) || types.enums.contains(t) {
                    None
                } else {
                    Some(&types.messages)
                }
            }
            _ => None,
        };
        if let Some(known) = expects {
            if !known.contains(field.type_name()) {
                return Err(Error::new(format!(
                    "{file}: message {}, field {}: type {:?} is not defined in the descriptor set",
                    &name[1..],
                    field.name(),
                    field.type_name()
                )));
            }
        }
    }
    for nested in &message.nested_type {
        check_message(file, &name, nested, types)?;
    }
    Ok(())
}

fn check_file(file: &FileDescriptorProto, types: &Types) -> Result<(), Error> {
    let scope = scope(file);
    for message in &file.message_type {
        check_message(file.name(), &scope, message, types)?;
    }
    let mut modules = HashMap::new();
    for service in &file.service {
        let service_name = format!("{}.{}", file.package(), service.name())
            .trim_start_matches('.')
            .to_owned();
        if service.name().is_empty() {
            return Err(Error::new(format!(
                "{}: a service has no name",
                file.name()
            )));
        }
        if let Some(other) = modules.insert(service.name().to_snake_case(), service.name()) {
            return Err(Error::new(format!(
                "{}: services {other} and {} would both generate module {}_server; rename one",
                file.name(),
                service.name(),
                service.name().to_snake_case()
            )));
        }
        let mut methods = HashMap::new();
        for method in &service.method {
            let place = format!(
                "{}: service {service_name}, method {}",
                file.name(),
                method.name()
            );
            if method.name().is_empty() {
                return Err(Error::new(format!(
                    "{}: service {service_name} has a method without a name",
                    file.name()
                )));
            }
            for (what, t) in [
                ("input", method.input_type()),
                ("output", method.output_type()),
            ] {
                if !types.messages.contains(t) {
                    return Err(Error::new(format!(
                        "{place}: {what} type {t:?} is not a message defined in the descriptor set"
                    )));
                }
            }
            if let Some(other) = methods.insert(method.name().to_snake_case(), method.name()) {
                return Err(Error::new(format!(
                    "{place}: methods {other} and {} would both become fn {}; rename one",
                    method.name(),
                    method.name().to_snake_case()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{FieldDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto};

    fn file_with(method: MethodDescriptorProto) -> FileDescriptorSet {
        FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: Some("x.proto".into()),
                package: Some("pkg".into()),
                message_type: vec![DescriptorProto {
                    name: Some("Msg".into()),
                    ..Default::default()
                }],
                service: vec![ServiceDescriptorProto {
                    name: Some("Svc".into()),
                    method: vec![method],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn method(name: &str, input: &str) -> MethodDescriptorProto {
        MethodDescriptorProto {
            name: Some(name.into()),
            input_type: Some(input.into()),
            output_type: Some(".pkg.Msg".into()),
            ..Default::default()
        }
    }

    #[test]
    fn valid_set_passes() {
        descriptor_set(&file_with(method("Get", ".pkg.Msg")), &["x.proto".into()]).unwrap();
    }

    #[test]
    fn unknown_method_type_names_file_service_and_method() {
        let err = descriptor_set(
            &file_with(method("Get", ".pkg.Missing")),
            &["x.proto".into()],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.proto: service pkg.Svc, method Get: input type \".pkg.Missing\" is not a message defined in the descriptor set"
        );
    }

    #[test]
    fn missing_import_and_unknown_file() {
        let mut fds = file_with(method("Get", ".pkg.Msg"));
        fds.file[0].dependency.push("other.proto".into());
        let err = descriptor_set(&fds, &["x.proto".into()]).unwrap_err();
        assert!(err.to_string().contains("imports other.proto"), "{err}");
        let err =
            descriptor_set(&file_with(method("Get", ".pkg.Msg")), &["y.proto".into()]).unwrap_err();
        assert!(err.to_string().starts_with("y.proto:"), "{err}");
    }

    #[test]
    fn unknown_field_type() {
        let mut fds = file_with(method("Get", ".pkg.Msg"));
        fds.file[0].message_type[0]
            .field
            .push(FieldDescriptorProto {
                name: Some("f".into()),
                r#type: Some(Type::Message as i32),
                type_name: Some(".pkg.Nope".into()),
                ..Default::default()
            });
        let err = descriptor_set(&fds, &["x.proto".into()]).unwrap_err();
        assert!(
            err.to_string().contains("message pkg.Msg, field f"),
            "{err}"
        );
    }

    #[test]
    fn colliding_method_names() {
        let mut fds = file_with(method("GetItem", ".pkg.Msg"));
        fds.file[0].service[0]
            .method
            .push(method("Get_Item", ".pkg.Msg"));
        let err = descriptor_set(&fds, &["x.proto".into()]).unwrap_err();
        assert!(
            err.to_string().contains("would both become fn get_item"),
            "{err}"
        );
    }
}
