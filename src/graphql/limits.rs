//! Document limits that async-graphql does not enforce itself: aliases.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// The number of aliased fields a document would execute, counting a fragment each time it
/// is spread; stops counting once past `cap` (so fragment bombs cost nothing).
pub fn count_aliases(doc: &ExecutableDocument, cap: usize) -> usize {
    let mut count = 0;
    for (_, operation) in doc.operations.iter() {
        walk(doc, &operation.node.selection_set.node, cap, &mut count, 0);
    }
    count
}

fn walk(doc: &ExecutableDocument, set: &SelectionSet, cap: usize, count: &mut usize, depth: usize) {
    // Fragment cycles are invalid documents; the depth bound keeps them finite here.
    if *count > cap || depth > 64 {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                if field.node.alias.is_some() {
                    *count += 1;
                }
                walk(doc, &field.node.selection_set.node, cap, count, depth + 1);
            }
            Selection::InlineFragment(fragment) => walk(
                doc,
                &fragment.node.selection_set.node,
                cap,
                count,
                depth + 1,
            ),
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                    walk(
                        doc,
                        &fragment.node.selection_set.node,
                        cap,
                        count,
                        depth + 1,
                    );
                }
            }
        }
        if *count > cap {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(query: &str) -> usize {
        count_aliases(&async_graphql::parser::parse_query(query).unwrap(), 1000)
    }

    #[test]
    fn aliases_are_counted_through_fragments() {
        assert_eq!(count("{ a: me { id } b: me { id } }"), 2);
        assert_eq!(
            count("{ me { ...F } x: me { ...F } } fragment F on User { n: id m: id }"),
            5
        );
        assert_eq!(count("{ me { id } }"), 0);
    }

    #[test]
    fn counting_stops_past_the_cap() {
        let bomb = "{ ...A } fragment A on Query { a: me { id } b: me { id } ...B ...B ...B } fragment B on Query { c: me { id } d: me { id } }";
        let doc = async_graphql::parser::parse_query(bomb).unwrap();
        assert!(count_aliases(&doc, 3) > 3);
    }
}
