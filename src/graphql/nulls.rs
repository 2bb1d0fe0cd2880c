//! Null propagation for field errors, as the GraphQL specification has it: a field that
//! raised an error is `null`, and when its type is non-null the `null` moves up to the
//! nearest nullable field or list item (or the whole `data`). async-graphql instead
//! leaves the field out of its object, which gives clients an object missing a field the
//! schema promises (`sessions: [Session!]!` absent from a `User`).

use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet, Type,
    TypeKind, TypeSystemDefinition,
};
use async_graphql::{Name, PathSegment, Response, Value};
use std::collections::HashMap;

/// The declared type of every field of the schema's objects and interfaces.
#[derive(Debug, Default)]
pub struct FieldTypes(HashMap<String, HashMap<String, Type>>);

impl FieldTypes {
    /// Read from the schema's SDL.
    pub fn from_sdl(sdl: &str) -> Self {
        let mut types = HashMap::new();
        let Ok(document) = async_graphql::parser::parse_schema(sdl) else {
            return Self(types);
        };
        for definition in document.definitions {
            let TypeSystemDefinition::Type(definition) = definition else {
                continue;
            };
            let definition = definition.node;
            let fields = match definition.kind {
                TypeKind::Object(object) => object.fields,
                TypeKind::Interface(interface) => interface.fields,
                _ => continue,
            };
            let fields = fields
                .into_iter()
                .map(|field| (field.node.name.node.to_string(), field.node.ty.node))
                .collect();
            types.insert(definition.name.node.to_string(), fields);
        }
        Self(types)
    }

    fn field(&self, parent: &str, name: &str) -> Option<&Type> {
        self.0.get(parent)?.get(name)
    }
}

/// Puts the `null`s of the response's field errors where the specification puts them.
/// `query` is the document that ran (parsed again only when an error has a path).
pub fn propagate(
    response: &mut Response,
    query: &str,
    operation: Option<&str>,
    types: &FieldTypes,
) {
    if response.errors.iter().all(|error| error.path.is_empty()) {
        return;
    }
    let Ok(document) = async_graphql::parser::parse_query(query) else {
        return;
    };
    let Some((root, selection)) = operation_of(&document, operation) else {
        return;
    };
    let paths: Vec<Vec<PathSegment>> = response
        .errors
        .iter()
        .map(|error| error.path.clone())
        .filter(|path| !path.is_empty())
        .collect();
    for path in paths {
        if value_at(&response.data, &path).is_some() {
            continue; // the field has a value: async-graphql left nothing out
        }
        let Some(nullable) = nullability(&document, types, root, selection, &path) else {
            continue;
        };
        match nullable.iter().rposition(|nullable| *nullable) {
            Some(at) => set_null(&mut response.data, &path[..=at]),
            None => response.data = Value::Null,
        }
    }
}

/// The root type and selection set of the operation that ran.
fn operation_of<'d>(
    document: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<(&'static str, &'d SelectionSet)> {
    let operation = match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name)?,
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()?
        }
        _ => return None,
    };
    let root = match operation.node.ty {
        OperationType::Query => "Query",
        OperationType::Mutation => "Mutation",
        OperationType::Subscription => "Subscription",
    };
    Some((root, &operation.node.selection_set.node))
}

/// For each segment of `path`, whether the value there may be null.
fn nullability(
    document: &ExecutableDocument,
    types: &FieldTypes,
    root: &str,
    selection: &SelectionSet,
    path: &[PathSegment],
) -> Option<Vec<bool>> {
    let (mut parent, mut selection) = (root.to_owned(), selection);
    let mut nullable = Vec::with_capacity(path.len());
    let mut segments = path.iter().peekable();
    while let Some(segment) = segments.next() {
        let PathSegment::Field(key) = segment else {
            return None;
        };
        let (field, on) = find_field(document, selection, key, None)?;
        let owner = on.unwrap_or(parent.as_str());
        if field.name.node.as_str() == "__typename" {
            nullable.push(false);
            break;
        }
        let mut ty = types.field(owner, field.name.node.as_str())?;
        nullable.push(ty.nullable);
        while let Some(PathSegment::Index(_)) = segments.peek() {
            segments.next();
            let BaseType::List(item) = &ty.base else {
                return None;
            };
            ty = item;
            nullable.push(ty.nullable);
        }
        if segments.peek().is_none() {
            break;
        }
        let BaseType::Named(named) = &ty.base else {
            return None;
        };
        parent = named.to_string();
        selection = &field.selection_set.node;
    }
    Some(nullable)
}

/// The field selected under response key `key`, looking into fragments, with the type
/// condition of the innermost fragment it was found in.
fn find_field<'d>(
    document: &'d ExecutableDocument,
    selection: &'d SelectionSet,
    key: &str,
    on: Option<&'d str>,
) -> Option<(&'d async_graphql::parser::types::Field, Option<&'d str>)> {
    for item in &selection.items {
        let found = match &item.node {
            Selection::Field(field) => {
                let field = &field.node;
                let name = field.alias.as_ref().unwrap_or(&field.name);
                (name.node.as_str() == key).then_some((field, on))
            }
            Selection::InlineFragment(fragment) => {
                let fragment = &fragment.node;
                let on = fragment
                    .type_condition
                    .as_ref()
                    .map(|condition| condition.node.on.node.as_str())
                    .or(on);
                find_field(document, &fragment.selection_set.node, key, on)
            }
            Selection::FragmentSpread(spread) => {
                let fragment = document.fragments.get(&spread.node.fragment_name.node)?;
                let on = Some(fragment.node.type_condition.node.on.node.as_str());
                find_field(document, &fragment.node.selection_set.node, key, on)
            }
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn value_at<'v>(value: &'v Value, path: &[PathSegment]) -> Option<&'v Value> {
    path.iter()
        .try_fold(value, |value, segment| match (value, segment) {
            (Value::Object(fields), PathSegment::Field(key)) => fields.get(key.as_str()),
            (Value::List(items), PathSegment::Index(i)) => items.get(*i),
            _ => None,
        })
}

/// Sets the value at `path` to null, unless a container on the way is null already.
fn set_null(data: &mut Value, path: &[PathSegment]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut value = data;
    for segment in parents {
        value = match (value, segment) {
            (Value::Object(fields), PathSegment::Field(key)) => {
                match fields.get_mut(key.as_str()) {
                    Some(value) => value,
                    None => return,
                }
            }
            (Value::List(items), PathSegment::Index(i)) => match items.get_mut(*i) {
                Some(value) => value,
                None => return,
            },
            _ => return,
        };
    }
    match (value, last) {
        (Value::Object(fields), PathSegment::Field(key)) => {
            fields.insert(Name::new(key), Value::Null);
        }
        (Value::List(items), PathSegment::Index(i)) => {
            if let Some(item) = items.get_mut(*i) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::ServerError;

    const SDL: &str = r#"
        type Query { me: User users: UserConnection! node(id: ID!): Node }
        interface Node { id: ID! }
        type User implements Node { id: ID! name: String! sessions: [Session!]! nick: String friends: [User]! }
        type Session { id: ID! }
        type UserConnection { edges: [UserEdge!]! }
        type UserEdge { node: User! }
    "#;

    fn run(query: &str, data: serde_json::Value, paths: &[serde_json::Value]) -> Value {
        let mut response = Response::new(Value::from_json(data).unwrap());
        for path in paths {
            let mut error = ServerError::new("FORBIDDEN", None);
            error.path = path
                .as_array()
                .unwrap()
                .iter()
                .map(|segment| match segment {
                    serde_json::Value::String(key) => PathSegment::Field(key.clone()),
                    other => PathSegment::Index(other.as_u64().unwrap() as usize),
                })
                .collect();
            response.errors.push(error);
        }
        propagate(&mut response, query, None, &FieldTypes::from_sdl(SDL));
        response.data
    }

    #[test]
    fn a_nullable_field_that_failed_is_null() {
        let data = run(
            "{ me { id nick } }",
            serde_json::json!({ "me": { "id": "1" } }),
            &[serde_json::json!(["me", "nick"])],
        );
        assert_eq!(
            data.into_json().unwrap(),
            serde_json::json!({ "me": { "id": "1", "nick": null } })
        );
    }

    #[test]
    fn a_non_null_field_that_failed_nulls_the_nearest_nullable_parent() {
        let data = run(
            "{ me { id sessions { id } } }",
            serde_json::json!({ "me": { "id": "1" } }),
            &[serde_json::json!(["me", "sessions"])],
        );
        assert_eq!(data.into_json().unwrap(), serde_json::json!({ "me": null }));
        // Through fragments and aliases, a nullable list item stops it.
        let data = run(
            "query { me { pals: friends { ...F } } } fragment F on User { s: sessions { id } }",
            serde_json::json!({ "me": { "pals": [{}, { "s": [] }] } }),
            &[serde_json::json!(["me", "pals", 0, "s"])],
        );
        assert_eq!(
            data.into_json().unwrap(),
            serde_json::json!({ "me": { "pals": [null, { "s": [] }] } })
        );
        let data = run(
            "query($id: ID!) { node(id: $id) { ... on User { sessions { id } } } }",
            serde_json::json!({ "node": {} }),
            &[serde_json::json!(["node", "sessions"])],
        );
        assert_eq!(
            data.into_json().unwrap(),
            serde_json::json!({ "node": null })
        );
    }

    #[test]
    fn with_no_nullable_parent_the_data_is_null() {
        let data = run(
            "{ me { id } users { edges { node { name sessions { id } } } } }",
            serde_json::json!({ "me": { "id": "1" }, "users": { "edges": [{ "node": { "name": "a" } }] } }),
            &[serde_json::json!(["users", "edges", 0, "node", "sessions"])],
        );
        assert_eq!(data, Value::Null);
    }

    #[test]
    fn fields_with_values_and_errors_without_paths_are_left_alone() {
        let data = run(
            "{ me { id nick } }",
            serde_json::json!({ "me": { "id": "1", "nick": "x" } }),
            &[serde_json::json!(["me", "nick"]), serde_json::json!([])],
        );
        assert_eq!(
            data.into_json().unwrap(),
            serde_json::json!({ "me": { "id": "1", "nick": "x" } })
        );
    }
}
