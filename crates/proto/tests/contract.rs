//! Proves our `.proto` files are the published Chaukas contract: every message, field
//! (name, number, type, label, oneof, JSON name), enum value and RPC must equal the
//! descriptors shipped in the PyPI packages `chaukas-spec-client` and `chaukas-spec-server`.
//!
//! `make test` installs those packages into a throwaway virtualenv and dumps their
//! descriptors (tests/contract/dump_published.py) to the file named by
//! `CHAUKAS_PUBLISHED_DESCRIPTORS`. Without that file the test fails and says how to make
//! it: a contract test that quietly skips proves nothing.

use std::collections::BTreeSet;

use prost::Message;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    field_descriptor_proto::{Label, Type},
};

/// Flattens a descriptor set into one line per contract fact, so two sets can be diffed
/// line by line and a difference reads as a sentence.
fn contract_lines(set: &FileDescriptorSet) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for file in set
        .file
        .iter()
        .filter(|file| file.name().starts_with("chaukas/"))
    {
        file_lines(file, &mut lines);
    }
    lines
}

fn file_lines(file: &FileDescriptorProto, lines: &mut BTreeSet<String>) {
    let package = file.package();
    let mut deps = file.dependency.clone();
    deps.sort();
    lines.insert(format!(
        "file {} package {package} syntax {} imports [{}]",
        file.name(),
        file.syntax(),
        deps.join(", ")
    ));
    for message in &file.message_type {
        message_lines(file.name(), package, message, lines);
    }
    for enumeration in &file.enum_type {
        enum_lines(file.name(), package, enumeration, lines);
    }
    for service in &file.service {
        let name = format!("{package}.{}", service.name());
        lines.insert(format!("{}: service {name}", file.name()));
        for method in &service.method {
            lines.insert(format!(
                "{}: rpc {name}.{}({}{}) returns ({}{})",
                file.name(),
                method.name(),
                if method.client_streaming() {
                    "stream "
                } else {
                    ""
                },
                method.input_type(),
                if method.server_streaming() {
                    "stream "
                } else {
                    ""
                },
                method.output_type(),
            ));
        }
    }
}

fn message_lines(file: &str, scope: &str, message: &DescriptorProto, lines: &mut BTreeSet<String>) {
    let name = format!("{scope}.{}", message.name());
    let map_entry = message
        .options
        .as_ref()
        .is_some_and(|options| options.map_entry());
    lines.insert(format!(
        "{file}: message {name}{}",
        if map_entry { " (map entry)" } else { "" }
    ));
    for field in &message.field {
        let oneof = field
            .oneof_index
            .filter(|_| !field.proto3_optional())
            .and_then(|index| message.oneof_decl.get(usize::try_from(index).ok()?))
            .map_or_else(|| "-".to_owned(), |oneof| oneof.name().to_owned());
        let label = Label::try_from(field.label.unwrap_or_default())
            .map_or_else(|_| "?".to_owned(), |label| label.as_str_name().to_owned());
        let field_type = Type::try_from(field.r#type.unwrap_or_default())
            .map_or_else(|_| "?".to_owned(), |kind| kind.as_str_name().to_owned());
        lines.insert(format!(
            "{file}: field {name}.{} = {} {label} {field_type}{} oneof={oneof} json={}{}",
            field.name(),
            field.number(),
            field
                .type_name
                .as_deref()
                .map(|type_name| format!(" {type_name}"))
                .unwrap_or_default(),
            field.json_name(),
            if field.proto3_optional() {
                " proto3_optional"
            } else {
                ""
            },
        ));
    }
    for nested in &message.nested_type {
        message_lines(file, &name, nested, lines);
    }
    for enumeration in &message.enum_type {
        enum_lines(file, &name, enumeration, lines);
    }
}

fn enum_lines(
    file: &str,
    scope: &str,
    enumeration: &EnumDescriptorProto,
    lines: &mut BTreeSet<String>,
) {
    let name = format!("{scope}.{}", enumeration.name());
    lines.insert(format!("{file}: enum {name}"));
    for value in &enumeration.value {
        lines.insert(format!(
            "{file}: enum value {name}.{} = {}",
            value.name(),
            value.number()
        ));
    }
}

/// A readable diff: what the published contract has that we lack, and the reverse.
fn diff(published: &BTreeSet<String>, ours: &BTreeSet<String>) -> Option<String> {
    let missing: Vec<&String> = published.difference(ours).collect();
    let extra: Vec<&String> = ours.difference(published).collect();
    if missing.is_empty() && extra.is_empty() {
        return None;
    }
    let mut report =
        String::from("our protos differ from the published chaukas-spec descriptors\n");
    for line in missing {
        report.push_str(&format!("  - published, missing in ours: {line}\n"));
    }
    for line in extra {
        report.push_str(&format!("  + in ours, not published:     {line}\n"));
    }
    Some(report)
}

fn ours() -> FileDescriptorSet {
    FileDescriptorSet::decode(chaukas_proto::FILE_DESCRIPTOR_SET)
        .expect("our descriptor set decodes")
}

#[test]
fn our_protos_match_the_published_descriptors() {
    let path = std::env::var("CHAUKAS_PUBLISHED_DESCRIPTORS").unwrap_or_else(|_| {
        format!(
            "{}/../../target/contract/published.binpb",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let bytes = std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "cannot read the published descriptors at {path} ({error}); `make test` creates \
             them, or run `make contract-descriptors` once"
        )
    });
    let published = FileDescriptorSet::decode(bytes.as_slice()).expect("published set decodes");
    let published_lines = contract_lines(&published);
    for file in [
        "chaukas/spec/common/v1/events.proto",
        "chaukas/spec/common/v1/query.proto",
        "chaukas/spec/server/v1/server.proto",
        "chaukas/spec/client/v1/client.proto",
    ] {
        assert!(
            published_lines
                .iter()
                .any(|line| line.starts_with(&format!("file {file} "))),
            "the published set lacks {file}: wrong packages installed?"
        );
    }
    if let Some(report) = diff(&published_lines, &contract_lines(&ours())) {
        panic!("{report}");
    }
}

#[test]
fn a_changed_field_shows_up_in_the_diff() {
    let original = ours();
    let mut changed = original.clone();
    let event = changed
        .file
        .iter_mut()
        .flat_map(|file| file.message_type.iter_mut())
        .find(|message| message.name() == "Event")
        .expect("Event is defined");
    let trace_id = event
        .field
        .iter_mut()
        .find(|field| field.name() == "trace_id")
        .expect("Event.trace_id is defined");
    trace_id.number = Some(24);
    let report = diff(&contract_lines(&original), &contract_lines(&changed))
        .expect("a renumbered field must be reported");
    assert!(report.contains("missing in ours: chaukas/spec/common/v1/events.proto: field chaukas.spec.common.v1.Event.trace_id = 23"), "{report}");
    assert!(report.contains("not published:     chaukas/spec/common/v1/events.proto: field chaukas.spec.common.v1.Event.trace_id = 24"), "{report}");
}
