//! `describe`: services, methods, messages and enums as proto source.

use std::fmt::Write;

use prost_reflect::{
    Cardinality, DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor,
    MethodDescriptor, ServiceDescriptor,
};

/// The proto source of `symbol` with a line saying what it is, or `None`
/// when the pool does not define it.
pub(crate) fn symbol(pool: &DescriptorPool, symbol: &str) -> Option<String> {
    let symbol = symbol.trim_start_matches('.');
    if let Some(service) = pool.get_service_by_name(symbol) {
        return Some(format!(
            "{symbol} is a service:\n{}",
            service_text(&service)
        ));
    }
    if let Some(message) = pool.get_message_by_name(symbol) {
        return Some(format!(
            "{symbol} is a message:\n{}",
            message_text(&message, "")
        ));
    }
    if let Some(enumeration) = pool.get_enum_by_name(symbol) {
        return Some(format!(
            "{symbol} is an enum:\n{}",
            enum_text(&enumeration, "")
        ));
    }
    let method = method(pool, symbol)?;
    Some(format!("{symbol} is a method:\n{}\n", method_text(&method)))
}

/// `pkg.Service/Method` or `pkg.Service.Method`.
pub(crate) fn method(pool: &DescriptorPool, name: &str) -> Option<MethodDescriptor> {
    let name = name.trim_start_matches('/').trim_start_matches('.');
    let (service, method) = name.rsplit_once('/').or_else(|| name.rsplit_once('.'))?;
    pool.get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)
}

fn method_text(method: &MethodDescriptor) -> String {
    let stream = |yes: bool| if yes { "stream " } else { "" };
    format!(
        "rpc {}({}{}) returns ({}{});",
        method.name(),
        stream(method.is_client_streaming()),
        method.input().full_name(),
        stream(method.is_server_streaming()),
        method.output().full_name()
    )
}

pub(crate) fn service_text(service: &ServiceDescriptor) -> String {
    let mut out = format!("service {} {{\n", service.name());
    for method in service.methods() {
        let _ = writeln!(out, "  {}", method_text(&method));
    }
    out.push_str("}\n");
    out
}

fn field_type(field: &FieldDescriptor) -> String {
    match field.kind() {
        Kind::Message(message) if message.is_map_entry() => format!(
            "map<{}, {}>",
            field_type(&message.map_entry_key_field()),
            field_type(&message.map_entry_value_field())
        ),
        Kind::Message(message) => format!(".{}", message.full_name()),
        Kind::Enum(enumeration) => format!(".{}", enumeration.full_name()),
        scalar => format!("{scalar:?}").to_lowercase(),
    }
}

fn field_line(field: &FieldDescriptor, proto3: bool) -> String {
    let label = if field.is_map() {
        ""
    } else {
        match field.cardinality() {
            Cardinality::Repeated => "repeated ",
            Cardinality::Required => "required ",
            Cardinality::Optional
                if !proto3 || field.field_descriptor_proto().proto3_optional() =>
            {
                "optional "
            }
            Cardinality::Optional => "",
        }
    };
    format!(
        "{label}{} {} = {};",
        field_type(field),
        field.name(),
        field.number()
    )
}

fn message_text(message: &MessageDescriptor, indent: &str) -> String {
    let proto3 = message.parent_file().syntax() == prost_reflect::Syntax::Proto3;
    let mut out = format!("{indent}message {} {{\n", message.name());
    let inner = format!("{indent}  ");
    for nested in message.child_messages().filter(|m| !m.is_map_entry()) {
        out.push_str(&message_text(&nested, &inner));
    }
    for nested in message.child_enums() {
        out.push_str(&enum_text(&nested, &inner));
    }
    let mut open_oneof: Option<String> = None;
    for field in message.fields() {
        let oneof = field
            .containing_oneof()
            .filter(|o| !o.is_synthetic())
            .map(|o| o.name().to_owned());
        if oneof != open_oneof {
            if open_oneof.is_some() {
                let _ = writeln!(out, "{inner}}}");
            }
            if let Some(name) = &oneof {
                let _ = writeln!(out, "{inner}oneof {name} {{");
            }
            open_oneof = oneof;
        }
        let pad = if open_oneof.is_some() { "  " } else { "" };
        let _ = writeln!(out, "{inner}{pad}{}", field_line(&field, proto3));
    }
    if open_oneof.is_some() {
        let _ = writeln!(out, "{inner}}}");
    }
    let _ = writeln!(out, "{indent}}}");
    out
}

fn enum_text(enumeration: &EnumDescriptor, indent: &str) -> String {
    let mut out = format!("{indent}enum {} {{\n", enumeration.name());
    for value in enumeration.values() {
        let _ = writeln!(out, "{indent}  {} = {};", value.name(), value.number());
    }
    let _ = writeln!(out, "{indent}}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(grpc_h3_reflection::pb::v1::FILE_DESCRIPTOR_SET).unwrap()
    }

    #[test]
    fn describes_each_kind_of_symbol_as_proto_source() {
        let pool = pool();
        let service = symbol(&pool, "grpc.reflection.v1.ServerReflection").unwrap();
        assert!(service.contains(
            "rpc ServerReflectionInfo(stream grpc.reflection.v1.ServerReflectionRequest) returns (stream grpc.reflection.v1.ServerReflectionResponse);"
        ), "{service}");
        let message = symbol(&pool, ".grpc.reflection.v1.ServerReflectionRequest").unwrap();
        assert!(
            message.contains("  oneof message_request {\n    string file_by_filename = 3;"),
            "{message}"
        );
        let list = symbol(&pool, "grpc.reflection.v1.ListServiceResponse").unwrap();
        assert!(
            list.contains("repeated .grpc.reflection.v1.ServiceResponse service = 1;"),
            "{list}"
        );
        assert!(symbol(
            &pool,
            "grpc.reflection.v1.ServerReflection.ServerReflectionInfo"
        )
        .is_some());
        assert!(symbol(&pool, "grpc.reflection.v1.Nope").is_none());
        assert!(method(
            &pool,
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        )
        .is_some());
    }
}
