//! `__typename` as GraphQL validates it. async-graphql's validator does not visit
//! `__typename` fields at all, so an argument there, an unknown or repeated directive, or
//! a `@skip`/`@include` without a Boolean `if` would otherwise run.

use super::Refusal;
use async_graphql::parser::types::{BaseType, ExecutableDocument, Field};
use async_graphql_value::Value;

/// The variables the document's operations declare, and whether each is a Boolean.
pub(super) struct Declared<'a>(Vec<(&'a str, bool)>);

impl<'a> Declared<'a> {
    pub(super) fn of(doc: &'a ExecutableDocument) -> Self {
        let declared = doc.operations.iter().flat_map(|(_, op)| {
            op.node.variable_definitions.iter().map(|d| {
                let boolean =
                    matches!(&d.node.var_type.node.base, BaseType::Named(n) if n == "Boolean");
                (d.node.name.node.as_str(), boolean)
            })
        });
        Self(declared.collect())
    }

    fn boolean(&self, name: &str) -> Option<bool> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
    }
}

/// Refuses what validation would of a `__typename` field.
pub(super) fn check(field: &Field, declared: &Declared<'_>) -> Result<(), Refusal> {
    if let Some((name, _)) = field.arguments.first() {
        return Err(invalid(format!(
            "Unknown argument \"{}\" on field \"__typename\".",
            name.node
        )));
    }
    let mut seen: Vec<&str> = Vec::new();
    for directive in &field.directives {
        let name = directive.node.name.node.as_str();
        if !matches!(name, "skip" | "include") {
            return Err(invalid(format!("Unknown directive \"@{name}\".")));
        }
        if seen.contains(&name) {
            return Err(invalid(format!(
                "The directive \"@{name}\" can only be used once at this location."
            )));
        }
        seen.push(name);
        let [(argument, value)] = directive.node.arguments.as_slice() else {
            return Err(invalid(format!(
                "Directive \"@{name}\" takes one argument, \"if\" (Boolean!)."
            )));
        };
        if argument.node != "if" {
            return Err(invalid(format!(
                "Unknown argument \"{}\" on directive \"@{name}\".",
                argument.node
            )));
        }
        match &value.node {
            Value::Boolean(_) => {}
            Value::Variable(variable) => match declared.boolean(variable) {
                Some(true) => {}
                Some(false) => {
                    return Err(invalid(format!(
                        "Variable \"${variable}\" is not a Boolean, as \"if\" of \"@{name}\" needs."
                    )));
                }
                None => {
                    return Err(invalid(format!("Variable \"${variable}\" is not defined.")));
                }
            },
            _ => {
                return Err(invalid(format!(
                    "Argument \"if\" of \"@{name}\" must be a Boolean."
                )));
            }
        }
    }
    Ok(())
}

fn invalid(message: String) -> Refusal {
    Refusal {
        code: "BAD_REQUEST",
        message,
    }
}
