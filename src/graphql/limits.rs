//! Document limits checked before execution, the same for HTTP and every WebSocket message:
//! size, nesting (before anything parses the text), aliases, and the depth of introspection.
//!
//! async-graphql's parser recurses into list and object values without a bound, so a 3 KB
//! document of nested brackets would overflow the stack; the raw text is scanned first.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use std::collections::HashMap;
use typename::Declared;

mod typename;

/// Nesting of any kind (selections, list and object values, variables) allowed in a document.
pub const MAX_NESTING: usize = 64;
/// The longest text any input may carry (fields have tighter caps of their own: search
/// filters 256, names 100, justifications and reasons 2,000).
pub const MAX_TEXT: usize = 10_000;
/// The most items a list input may hold (user IDs, practice IDs, permissions…).
pub const MAX_LIST: usize = 100;

/// How a document broke the limits; each becomes a GraphQL error with this code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn bad_input(message: impl Into<String>) -> Self {
        Self {
            code: "BAD_USER_INPUT",
            message: message.into(),
        }
    }

    fn too_complex(message: impl Into<String>) -> Self {
        Self {
            code: "QUERY_TOO_COMPLEX",
            message: message.into(),
        }
    }
}

/// The limits a document must meet before it is executed.
#[derive(Debug, Clone, Copy)]
pub struct DocumentLimits {
    pub max_bytes: usize,
    pub max_aliases: usize,
    pub max_depth: usize,
}

/// What a checked document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// Only `__schema`, `__type` and `__typename` at the top of every operation: answered
    /// with introspection's own bound on depth (see [`introspection_depth`]).
    Introspection,
    Regular,
}

/// Checks a request against the limits: its text and variables first, without trusting
/// the parser with anything it could choke on, then the document the parser made (parsed
/// once, and kept in the request for execution). A document that does not parse is left
/// to the executor, which explains why.
pub fn check(
    request: &mut async_graphql::Request,
    limits: DocumentLimits,
) -> Result<DocumentKind, Refusal> {
    check_raw(&request.query, &request.variables, limits)?;
    match request.parsed_query() {
        Ok(doc) => check_document(doc, limits),
        Err(_) => Ok(DocumentKind::Regular),
    }
}

/// What can be checked before parsing: size, nesting, and the variables' inputs.
fn check_raw(
    query: &str,
    variables: &async_graphql::Variables,
    limits: DocumentLimits,
) -> Result<(), Refusal> {
    if query.len() > limits.max_bytes {
        return Err(Refusal {
            code: "BAD_REQUEST",
            message: format!("The document is larger than {} bytes.", limits.max_bytes),
        });
    }
    if query.trim().is_empty() {
        return Err(Refusal {
            code: "BAD_REQUEST",
            message: "The request has no GraphQL document: send it as `query`.".into(),
        });
    }
    if text_nesting(query) > MAX_NESTING {
        return Err(Refusal::too_complex(format!(
            "The document is nested more than {MAX_NESTING} levels deep."
        )));
    }
    if variables
        .iter()
        .any(|(_, value)| value_nesting(value, 1) > MAX_NESTING)
    {
        return Err(Refusal::too_complex(format!(
            "The variables are nested more than {MAX_NESTING} levels deep."
        )));
    }
    for (_, value) in variables.iter() {
        check_input(value)?;
    }
    Ok(())
}

/// What the parsed document must meet: inputs written in it, aliases, and (for
/// introspection) depth.
fn check_document(
    doc: &ExecutableDocument,
    limits: DocumentLimits,
) -> Result<DocumentKind, Refusal> {
    check_arguments(doc)?;
    let mut walker = Walker::new(doc, limits.max_aliases);
    let shape = walker.operations();
    if shape.aliases > limits.max_aliases {
        return Err(Refusal::too_complex(format!(
            "The query uses more than {} aliases.",
            limits.max_aliases
        )));
    }
    if !is_introspection(doc) {
        return Ok(DocumentKind::Regular);
    }
    if shape.depth > limits.max_depth {
        return Err(Refusal::too_complex(format!(
            "The introspection query is nested too deep (more than {} levels besides ofType).",
            limits.max_depth
        )));
    }
    Ok(DocumentKind::Introspection)
}

/// The deepest nesting of `{`, `[` and `(` in GraphQL text, outside strings and comments.
/// Stops counting once past the limit.
pub fn text_nesting(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    // An escaped triple quote inside a block string.
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > MAX_NESTING {
                    return deepest;
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// The nesting of a variable value (JSON parsing bounds it at 128 already).
fn value_nesting(value: &async_graphql::Value, level: usize) -> usize {
    use async_graphql::Value;
    if level > MAX_NESTING {
        return level;
    }
    match value {
        Value::List(items) => items
            .iter()
            .map(|v| value_nesting(v, level + 1))
            .max()
            .unwrap_or(level),
        Value::Object(fields) => fields
            .values()
            .map(|v| value_nesting(v, level + 1))
            .max()
            .unwrap_or(level),
        _ => level,
    }
}

/// Text without control characters (tab and line breaks aside) and within [`MAX_TEXT`];
/// lists within [`MAX_LIST`]. The same on both databases, and before anything reaches them
/// (PostgreSQL cannot store a NUL in text at all).
fn check_text(text: &str) -> Result<(), Refusal> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(Refusal::bad_input(
            "Text inputs may not contain control characters (such as NUL).",
        ));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(Refusal::bad_input(format!(
            "A text input is longer than {MAX_TEXT} characters."
        )));
    }
    Ok(())
}

fn check_list(len: usize) -> Result<(), Refusal> {
    if len > MAX_LIST {
        return Err(Refusal::bad_input(format!(
            "A list input has more than {MAX_LIST} items."
        )));
    }
    Ok(())
}

/// A variable's value (bounded in depth by `check` already).
fn check_input(value: &async_graphql::Value) -> Result<(), Refusal> {
    use async_graphql::Value;
    match value {
        Value::String(text) => check_text(text),
        Value::Enum(name) => check_text(name),
        Value::List(items) => {
            check_list(items.len())?;
            items.iter().try_for_each(check_input)
        }
        Value::Object(fields) => fields.iter().try_for_each(|(key, value)| {
            check_text(key)?;
            check_input(value)
        }),
        _ => Ok(()),
    }
}

/// A literal argument in the document.
fn check_literal(value: &async_graphql_value::Value) -> Result<(), Refusal> {
    use async_graphql_value::Value;
    match value {
        Value::String(text) => check_text(text),
        Value::List(items) => {
            check_list(items.len())?;
            items.iter().try_for_each(check_literal)
        }
        Value::Object(fields) => fields.values().try_for_each(check_literal),
        _ => Ok(()),
    }
}

/// Every argument written in the document, in operations and fragments; and each
/// `__typename`, which the executor's validation passes over.
fn check_arguments(doc: &ExecutableDocument) -> Result<(), Refusal> {
    fn walk(set: &SelectionSet, level: usize, declared: &Declared<'_>) -> Result<(), Refusal> {
        if level > MAX_NESTING {
            return Ok(());
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    if field.node.name.node == "__typename" {
                        typename::check(&field.node, declared)?;
                    }
                    for (_, value) in &field.node.arguments {
                        check_literal(&value.node)?;
                    }
                    walk(&field.node.selection_set.node, level + 1, declared)?;
                }
                Selection::InlineFragment(fragment) => {
                    walk(&fragment.node.selection_set.node, level + 1, declared)?;
                }
                Selection::FragmentSpread(_) => {}
            }
        }
        Ok(())
    }
    let declared = Declared::of(doc);
    for (_, op) in doc.operations.iter() {
        walk(&op.node.selection_set.node, 0, &declared)?;
    }
    for fragment in doc.fragments.values() {
        walk(&fragment.node.selection_set.node, 0, &declared)?;
    }
    Ok(())
}

/// Every operation selects only introspection fields at its top.
fn is_introspection(doc: &ExecutableDocument) -> bool {
    doc.operations.iter().all(|(_, op)| {
        op.node.selection_set.node.items.iter().all(
            |item| matches!(&item.node, Selection::Field(f) if f.node.name.node.starts_with("__")),
        )
    })
}

/// The size of a selection: aliased fields executed (a fragment counted each time it is
/// spread) and depth, where `ofType` does not count: it walks one type reference down a
/// chain bounded by the schema, and graphql-js's standard introspection query nests it
/// seven times, which a plain depth limit of 12 would refuse.
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    aliases: usize,
    depth: usize,
}

struct Walker<'a> {
    doc: &'a ExecutableDocument,
    cap: usize,
    /// Fragments measured once, so that a fragment bomb costs nothing; `None` while a
    /// fragment is being measured (a cycle, which validation refuses later anyway).
    fragments: HashMap<&'a str, Option<Shape>>,
}

impl<'a> Walker<'a> {
    fn new(doc: &'a ExecutableDocument, cap: usize) -> Self {
        Self {
            doc,
            cap,
            fragments: HashMap::new(),
        }
    }

    fn operations(&mut self) -> Shape {
        let mut total = Shape::default();
        let doc = self.doc;
        for (_, op) in doc.operations.iter() {
            let shape = self.set(&op.node.selection_set.node, 0);
            total.aliases = total.aliases.saturating_add(shape.aliases);
            total.depth = total.depth.max(shape.depth);
        }
        total
    }

    fn set(&mut self, set: &'a SelectionSet, level: usize) -> Shape {
        let mut shape = Shape::default();
        if level > MAX_NESTING {
            return shape;
        }
        for item in &set.items {
            let inner = match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let below = self.set(&field.selection_set.node, level + 1);
                    let own = usize::from(field.name.node != "ofType");
                    Shape {
                        aliases: below.aliases + usize::from(field.alias.is_some()),
                        depth: below.depth + own,
                    }
                }
                Selection::InlineFragment(fragment) => {
                    self.set(&fragment.node.selection_set.node, level + 1)
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str(), level)
                }
            };
            shape.aliases = shape
                .aliases
                .saturating_add(inner.aliases)
                .min(self.cap + 1);
            shape.depth = shape.depth.max(inner.depth);
        }
        shape
    }

    fn fragment(&mut self, name: &'a str, level: usize) -> Shape {
        match self.fragments.get(name) {
            Some(Some(shape)) => return *shape,
            Some(None) => return Shape::default(),
            None => {}
        }
        let doc = self.doc;
        let Some((key, fragment)) = doc.fragments.get_key_value(name) else {
            return Shape::default();
        };
        self.fragments.insert(key.as_str(), None);
        let shape = self.set(&fragment.node.selection_set.node, level + 1);
        self.fragments.insert(key.as_str(), Some(shape));
        shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DocumentLimits = DocumentLimits {
        max_bytes: 256 * 1024,
        max_aliases: 30,
        max_depth: 12,
    };

    fn check_text(query: &str) -> Result<DocumentKind, Refusal> {
        check(&mut async_graphql::Request::new(query), LIMITS)
    }

    fn check_with(query: &str, variables: serde_json::Value) -> Result<DocumentKind, Refusal> {
        let variables = async_graphql::Variables::from_json(variables);
        check(
            &mut async_graphql::Request::new(query).variables(variables),
            LIMITS,
        )
    }

    /// The depth of an introspection document as `check` measures it.
    fn introspection_depth(query: &str) -> Option<usize> {
        let doc = async_graphql::parser::parse_query(query).ok()?;
        Some(Walker::new(&doc, usize::MAX - 1).operations().depth)
    }

    fn aliases(query: &str) -> usize {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        Walker::new(&doc, 1000).operations().aliases
    }

    #[test]
    fn typename_is_validated_like_any_field() {
        for query in [
            "{ __typename(arg: 1) }",
            "{ __typename @unknown }",
            "{ __typename @include }",
            "{ __typename @skip(if: \"yes\") }",
            "{ __typename @skip(if: true, also: 1) }",
            "{ __typename @skip(unless: true) }",
            "{ __typename @skip(if: false) @skip(if: false) }",
            "{ __typename @skip(if: $undefined) }",
            "query($n: Int) { __typename @include(if: $n) }",
            "query { ...F } fragment F on Query { __typename @include }",
        ] {
            let refusal = check_text(query).expect_err(query);
            assert_eq!(refusal.code, "BAD_REQUEST", "{query}");
        }
        for query in [
            "{ __typename }",
            "{ a: __typename @skip(if: false) @include(if: true) }",
            "query($b: Boolean!) { me @include(if: $b) { __typename @skip(if: $b) } }",
        ] {
            assert!(check_text(query).is_ok(), "{query}");
        }
    }

    #[test]
    fn aliases_are_counted_through_fragments() {
        assert_eq!(aliases("{ a: me { id } b: me { id } }"), 2);
        assert_eq!(
            aliases("{ me { ...F } x: me { ...F } } fragment F on User { n: id m: id }"),
            5
        );
        assert_eq!(aliases("{ me { id } }"), 0);
    }

    #[test]
    fn a_fragment_bomb_is_counted_without_expanding_it() {
        let mut bomb = String::from("{ ...F0 }");
        for i in 0..40 {
            bomb.push_str(&format!(
                " fragment F{i} on Query {{ a{i}: me {{ id }} ...F{n} ...F{n} }}",
                n = i + 1
            ));
        }
        bomb.push_str(" fragment F40 on Query { z: me { id } }");
        assert!(matches!(check_text(&bomb), Err(r) if r.code == "QUERY_TOO_COMPLEX"));
    }

    #[test]
    fn deep_values_are_refused_before_parsing() {
        let deep = format!(
            "{{ me(x: {}1{}) {{ id }} }}",
            "[".repeat(1600),
            "]".repeat(1600)
        );
        let refusal = check_text(&deep).unwrap_err();
        assert_eq!(refusal.code, "QUERY_TOO_COMPLEX");
        let objects = format!(
            "{{ me(x: {}) {{ id }} }}",
            "{a: ".repeat(100) + &"}".repeat(100)
        );
        assert!(check_text(&objects).is_err());
        let ok = format!(
            "{{ me(x: {}1{}) {{ id }} }}",
            "[".repeat(60),
            "]".repeat(60)
        );
        assert!(check_text(&ok).is_ok());
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let text = format!(
            "# {}\n{{ users(filter: {{search: \"{}\"}}) {{ totalCount }} }} \"\"\"{}\"\"\"",
            "[".repeat(100),
            "{".repeat(100),
            "(".repeat(100)
        );
        assert_eq!(text_nesting(&text), 3);
        assert_eq!(text_nesting(r#"{ a(s: "\"[[[") }"#), 2);
    }

    #[test]
    fn deep_variables_are_refused() {
        let mut value = serde_json::json!(1);
        for _ in 0..70 {
            value = serde_json::json!([value]);
        }
        let refusal = check_with(
            "query($x: Int) { me { id } }",
            serde_json::json!({ "x": value }),
        )
        .unwrap_err();
        assert_eq!(refusal.code, "QUERY_TOO_COMPLEX");
    }

    #[test]
    fn control_characters_long_text_and_long_lists_are_bad_input() {
        let nul = check_text("{ users(filter: {search: \"a\\u0000b\"}) { totalCount } }");
        assert_eq!(nul.unwrap_err().code, "BAD_USER_INPUT");
        let long = format!(
            "{{ users(filter: {{search: \"{}\"}}) {{ totalCount }} }}",
            "a".repeat(MAX_TEXT + 1)
        );
        assert_eq!(check_text(&long).unwrap_err().code, "BAD_USER_INPUT");
        let ids = format!(
            "{{ users(filter: {{practiceIds: [{}]}}) {{ totalCount }} }}",
            vec!["\"x\""; MAX_LIST + 1].join(",")
        );
        assert_eq!(check_text(&ids).unwrap_err().code, "BAD_USER_INPUT");
        let refused = check_with(
            "query($s: String) { me { id } }",
            serde_json::json!({ "s": "bell\u{7}" }),
        )
        .unwrap_err();
        assert_eq!(refused.code, "BAD_USER_INPUT");
        let fine = serde_json::json!({ "s": "two\nlines\tand a tab" });
        assert!(check_with("query($s: String) { me { id } }", fine).is_ok());
    }

    #[test]
    fn introspection_depth_does_not_count_of_type() {
        let query = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } }";
        assert_eq!(introspection_depth(query), Some(5));
        assert_eq!(check_text(query), Ok(DocumentKind::Introspection));
        assert_eq!(
            check_text("{ __typename me { id } }"),
            Ok(DocumentKind::Regular)
        );
    }
}
