//! Typed database identifiers and their opaque, type-tagged GraphQL form.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fmt;

macro_rules! id_type {
    ($name:ident, $tag:literal) => {
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl $name {
            /// The type name carried inside the global ID.
            pub const TAG: &'static str = $tag;

            /// The opaque global ID handed to clients.
            pub fn to_global(self) -> String {
                encode_global($tag, self.0)
            }

            /// Parses a global ID of this type; anything else is `None`.
            pub fn from_global(id: &str) -> Option<Self> {
                match decode_global(id)? {
                    ($tag, n) => Some(Self(n)),
                    _ => None,
                }
            }
        }

        impl GlobalId for $name {
            fn from_global(id: &str) -> Option<Self> {
                $name::from_global(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

/// An ID a client sent, once parsed: `Some` when it names an object of its kind, `None`
/// when it names nothing (malformed, or another kind of object). Use cases answer `None`
/// as they answer an unknown object, after their own authorization checks, so that what
/// a caller sent never changes the order of refusals.
pub type ClientId<T> = Option<T>;

/// An ID type with a global form.
pub trait GlobalId: Sized {
    /// Parses a global ID of this type; anything else is `None`.
    fn from_global(id: &str) -> Option<Self>;
}

id_type!(OrgId, "Organization");
id_type!(PracticeId, "Practice");
id_type!(UserId, "User");
id_type!(RequestId, "AccountRequest");
id_type!(AuditEventId, "AuditEvent");
id_type!(SessionId, "Session");

fn encode_global(tag: &str, n: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tag}:{n}"))
}

/// Splits a global ID into its type tag and number. The tag is returned as one of the
/// known static names so callers can match on it.
pub fn decode_global(id: &str) -> Option<(&'static str, i64)> {
    if id.len() > 64 {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(id).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    let (tag, num) = text.split_once(':')?;
    let n: i64 = num.parse().ok().filter(|n| *n > 0)?;
    let tag = [
        OrgId::TAG,
        PracticeId::TAG,
        UserId::TAG,
        RequestId::TAG,
        AuditEventId::TAG,
        SessionId::TAG,
    ]
    .into_iter()
    .find(|t| *t == tag)?;
    Some((tag, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_round_trip_and_keep_their_type() {
        let id = UserId(42).to_global();
        assert_eq!(UserId::from_global(&id), Some(UserId(42)));
        assert_eq!(PracticeId::from_global(&id), None);
    }

    #[test]
    fn garbage_is_not_an_id() {
        for bad in ["", "x", "VXNlcjo=", "VXNlcjotMQ", "VXNlcjphYmM", "Zm9vOjE"] {
            assert_eq!(UserId::from_global(bad), None, "{bad}");
        }
    }
}
