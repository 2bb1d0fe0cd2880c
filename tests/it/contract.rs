//! The served schema against the API contract: `schema/contract.graphql` (the API we
//! promise, kept in the repository) must find no breaking change in
//! `schema/schema.graphql`. The comparison follows graphql-js's `findBreakingChanges`:
//! nothing a client written against the contract uses may be removed, change kind or type
//! incompatibly, or newly require an argument or input field. When the workshop's own
//! checker is beside the checkout (`../shared`), it runs too, and its contract must be the
//! one kept here.

use async_graphql::parser::types::{
    BaseType, InputValueDefinition, ServiceDocument, Type, TypeDefinition, TypeKind,
    TypeSystemDefinition,
};
use async_graphql::parser::{Positioned, parse_schema};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn schema_serves_the_whole_contract() {
    let breaking = breaking_changes(
        &read("schema/contract.graphql"),
        &read("schema/schema.graphql"),
    );
    assert!(
        breaking.is_empty(),
        "the schema breaks the contract:\n{}",
        breaking.join("\n")
    );
}

#[test]
fn the_contract_check_catches_what_would_break_a_client() {
    let contract = r#"
        type Query { user(id: ID!): User  users(first: Int): [User!]! }
        type User { id: ID!  name: String  status: Status! }
        enum Status { ACTIVE LOCKED }
        input Filter { name: String }
        union Node = User
    "#;
    // A compatible superset: a new field, a new optional argument, a stricter output,
    // a looser input.
    let superset = r#"
        type Query { user(id: ID): User  users(first: Int, after: String): [User!]!  extra: Int }
        type User { id: ID!  name: String!  status: Status! }
        enum Status { ACTIVE LOCKED INACTIVE }
        input Filter { name: String  kind: String }
        union Node = User
    "#;
    assert_eq!(breaking_changes(contract, superset), Vec::<String>::new());
    let broken = r#"
        type Query { user(id: Int!): User  users(first: Int, after: String!): [User] }
        type User { id: ID!  status: String! }
        enum Status { ACTIVE }
        input Filter { name: String!  kind: String! }
        scalar Node
    "#;
    let found = breaking_changes(contract, broken);
    for expected in [
        "Query.user(id) changed type from ID! to Int!",
        "Query.users(after) is a new required argument",
        "Query.users changed type from [User!]! to [User]",
        "User.name was removed",
        "User.status changed type from Status! to String!",
        "Status.LOCKED was removed",
        "Filter.name changed type from String to String!",
        "Filter.kind is a new required input field",
        "Node changed kind",
    ] {
        assert!(
            found.iter().any(|f| f == expected),
            "missed {expected:?} in {found:#?}"
        );
    }
}

#[test]
fn the_workshop_checker_agrees_when_it_is_at_hand() {
    // The contract lives beside the checkout in the workshop (`../shared`);
    // GATEHOUSE_SHARED_DIR points elsewhere when a checkout sits somewhere else.
    let shared = std::env::var_os("GATEHOUSE_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"));
    let tool = shared.join("tools/check-contract");
    if !tool.exists() {
        // The contract itself is checked above from the copy kept here.
        return;
    }
    let theirs = std::fs::read_to_string(shared.join("api/contract.graphql")).unwrap();
    assert_eq!(
        theirs,
        read("schema/contract.graphql"),
        "schema/contract.graphql differs from the workshop's contract: copy it again"
    );
    let out = Command::new(&tool)
        .arg(root().join("schema/schema.graphql"))
        .output()
        .expect("check-contract runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("0 breaking change(s)"),
        "check-contract: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every change from `contract` to `schema` that could break a client of the contract.
fn breaking_changes(contract: &str, schema: &str) -> Vec<String> {
    let (contract, schema) = (
        parse_schema(contract).expect("the contract parses"),
        parse_schema(schema).expect("the schema parses"),
    );
    let (contract, schema) = (types(&contract), types(&schema));
    let mut found = Vec::new();
    for (name, old) in &contract {
        let Some(new) = schema.get(name) else {
            found.push(format!("{name} was removed"));
            continue;
        };
        compare(name, &old.kind, &new.kind, &mut found);
    }
    found
}

fn types(doc: &ServiceDocument) -> HashMap<String, &TypeDefinition> {
    doc.definitions
        .iter()
        .filter_map(|d| match d {
            TypeSystemDefinition::Type(t) => Some((t.node.name.node.to_string(), &t.node)),
            _ => None,
        })
        .collect()
}

fn compare(name: &str, old: &TypeKind, new: &TypeKind, found: &mut Vec<String>) {
    match (old, new) {
        (TypeKind::Scalar, TypeKind::Scalar) => {}
        (TypeKind::Object(o), TypeKind::Object(n)) => {
            fields(name, &o.fields, &n.fields, found);
            implements(name, &o.implements, &n.implements, found);
        }
        (TypeKind::Interface(o), TypeKind::Interface(n)) => {
            fields(name, &o.fields, &n.fields, found);
            implements(name, &o.implements, &n.implements, found);
        }
        (TypeKind::Union(o), TypeKind::Union(n)) => {
            for member in missing(&o.members, &n.members) {
                found.push(format!("{member} was removed from the union {name}"));
            }
        }
        (TypeKind::Enum(o), TypeKind::Enum(n)) => {
            let values = |e: &async_graphql::parser::types::EnumType| {
                e.values
                    .iter()
                    .map(|v| v.node.value.clone())
                    .collect::<Vec<_>>()
            };
            for value in missing(&values(o), &values(n)) {
                found.push(format!("{name}.{value} was removed"));
            }
        }
        (TypeKind::InputObject(o), TypeKind::InputObject(n)) => {
            inputs(name, "input field", &o.fields, &n.fields, found);
        }
        _ => found.push(format!("{name} changed kind")),
    }
}

fn missing<T: PartialEq + std::fmt::Display + Clone>(
    old: &[Positioned<T>],
    new: &[Positioned<T>],
) -> Vec<T> {
    old.iter()
        .filter(|o| !new.iter().any(|n| n.node == o.node))
        .map(|o| o.node.clone())
        .collect()
}

fn implements(
    name: &str,
    old: &[Positioned<async_graphql::Name>],
    new: &[Positioned<async_graphql::Name>],
    found: &mut Vec<String>,
) {
    for interface in missing(old, new) {
        found.push(format!("{name} no longer implements {interface}"));
    }
}

fn fields(
    owner: &str,
    old: &[Positioned<async_graphql::parser::types::FieldDefinition>],
    new: &[Positioned<async_graphql::parser::types::FieldDefinition>],
    found: &mut Vec<String>,
) {
    for o in old {
        let name = &o.node.name.node;
        let Some(n) = new.iter().find(|n| n.node.name.node == *name) else {
            found.push(format!("{owner}.{name} was removed"));
            continue;
        };
        if !output_compatible(&o.node.ty.node, &n.node.ty.node) {
            found.push(format!(
                "{owner}.{name} changed type from {} to {}",
                o.node.ty.node, n.node.ty.node
            ));
        }
        inputs(
            &format!("{owner}.{name}"),
            "argument",
            &o.node.arguments,
            &n.node.arguments,
            found,
        );
    }
}

/// Arguments (`Type.field(arg)`) or input fields (`Input.field`).
fn inputs(
    owner: &str,
    what: &str,
    old: &[Positioned<InputValueDefinition>],
    new: &[Positioned<InputValueDefinition>],
    found: &mut Vec<String>,
) {
    let label = |name: &str| match what {
        "argument" => format!("{owner}({name})"),
        _ => format!("{owner}.{name}"),
    };
    for o in old {
        let name = &o.node.name.node;
        match new.iter().find(|n| n.node.name.node == *name) {
            None => found.push(format!("{} was removed", label(name))),
            Some(n) if !input_compatible(&o.node.ty.node, &n.node.ty.node) => found.push(format!(
                "{} changed type from {} to {}",
                label(name),
                o.node.ty.node,
                n.node.ty.node
            )),
            Some(_) => {}
        }
    }
    for n in new {
        let name = &n.node.name.node;
        let required = !n.node.ty.node.nullable && n.node.default_value.is_none();
        if required && !old.iter().any(|o| o.node.name.node == *name) {
            found.push(format!("{} is a new required {what}", label(name)));
        }
    }
}

/// What a field returns may only become stricter (never null where it could be).
fn output_compatible(old: &Type, new: &Type) -> bool {
    if old.nullable || !new.nullable {
        base_compatible(&old.base, &new.base, output_compatible)
    } else {
        false
    }
}

/// What an argument or input field takes may only become looser (optional where it was
/// required).
fn input_compatible(old: &Type, new: &Type) -> bool {
    if !old.nullable || new.nullable {
        base_compatible(&old.base, &new.base, input_compatible)
    } else {
        false
    }
}

fn base_compatible(old: &BaseType, new: &BaseType, item: fn(&Type, &Type) -> bool) -> bool {
    match (old, new) {
        (BaseType::Named(o), BaseType::Named(n)) => o == n,
        (BaseType::List(o), BaseType::List(n)) => item(o, n),
        _ => false,
    }
}
