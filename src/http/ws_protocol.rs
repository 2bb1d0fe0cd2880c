//! The rules of graphql-transport-ws that async-graphql's handler leaves to us, checked
//! on each client message before it reaches the handler: a message the protocol does not
//! define closes the socket with 4400, a `subscribe` before the connection is
//! acknowledged with 4401, and a `subscribe` under an ID whose operation still runs with
//! 4409 (the handler would silently drop the running one). Close reasons are kept within
//! the 123 bytes a close frame can carry. Also the writing side: what the handler has
//! ready goes out in one write.

use async_graphql::http::WsMessage;
use axum::extract::ws::{CloseFrame, Message};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Mutex;

/// Close codes of graphql-transport-ws.
pub const BAD_REQUEST: u16 = 4400;
pub const UNAUTHORIZED: u16 = 4401;
pub const FORBIDDEN: u16 = 4403;
pub const SUBSCRIBER_EXISTS: u16 = 4409;
pub const INTERNAL: u16 = 4500;

/// Why a connection is closed: a close code and its reason.
pub type Closing = (u16, Cow<'static, str>);

/// The operations a connection runs, by the client's IDs.
#[derive(Default)]
pub struct Operations(Mutex<HashSet<String>>);

/// A client message, as far as the rules need to read it.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    id: Option<String>,
    /// A subscribe's payload: an object naming its query (the values are read later, by
    /// the handler).
    payload: Option<serde_json::Value>,
}

/// A subscribe's payload: an object with a string `query` (the rest is the handler's).
#[derive(Deserialize)]
struct SubscribePayload {
    #[serde(rename = "query")]
    _query: String,
}

impl Operations {
    /// Checks a client's message (`acknowledged`: its `connection_init` was accepted);
    /// `Err` is how the connection must close.
    pub fn receive(&self, message: &[u8], acknowledged: bool) -> Result<(), Closing> {
        let bad = |why: &str| Err((BAD_REQUEST, reason(format!("Invalid message: {why}"))));
        let Ok(incoming) = serde_json::from_slice::<Incoming<'_>>(message) else {
            return bad("expected a JSON object with a string `type`.");
        };
        match incoming.kind.as_ref() {
            "connection_init" | "ping" | "pong" => Ok(()),
            "subscribe" => {
                let Some(id) = incoming.id.filter(|id| !id.is_empty()) else {
                    return bad("a subscribe needs an `id`.");
                };
                let payload = incoming.payload.map(SubscribePayload::deserialize);
                if !matches!(payload, Some(Ok(_))) {
                    return bad("a subscribe's payload needs a `query`.");
                }
                if !acknowledged {
                    return Err((UNAUTHORIZED, "Unauthorized".into()));
                }
                if !self.ids().insert(id.clone()) {
                    return Err((
                        SUBSCRIBER_EXISTS,
                        reason(format!("Subscriber for {id} already exists")),
                    ));
                }
                Ok(())
            }
            "complete" => {
                let Some(id) = incoming.id else {
                    return bad("a complete needs an `id`.");
                };
                self.ids().remove(&id);
                Ok(())
            }
            other => bad(&format!("unknown type `{other}`.")),
        }
    }

    /// Notes a message the server sends: a `complete` frees its operation's ID.
    pub fn sent(&self, message: &str) {
        if message.starts_with(r#"{"type":"complete""#)
            && let Ok(Incoming { id: Some(id), .. }) = serde_json::from_str(message)
        {
            self.ids().remove(&id);
        }
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A close frame's reason: at most 123 bytes, cut at a character's boundary.
pub fn reason(text: impl Into<Cow<'static, str>>) -> Cow<'static, str> {
    const MAX: usize = 123;
    let text = text.into();
    if text.len() <= MAX {
        return text;
    }
    let cut = (0..=MAX)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    Cow::Owned(text[..cut].to_owned())
}

/// Writes `first` and whatever else the protocol has ready now (updates queued while the
/// node was busy) in one go, noting the operations it completes; false when the
/// connection is to end.
pub async fn write_ready<S, K>(
    first: WsMessage,
    protocol: &mut S,
    sink: &mut K,
    ids: &Operations,
) -> bool
where
    S: futures_util::Stream<Item = WsMessage> + Unpin,
    K: futures_util::Sink<Message> + Unpin,
{
    let mut pending = Some(first);
    let mut open = true;
    while let Some(message) = pending.take() {
        match message {
            WsMessage::Text(text) => {
                ids.sent(&text);
                if sink.feed(Message::Text(text.into())).await.is_err() {
                    return false;
                }
            }
            WsMessage::Close(code, reason) => {
                let close = CloseFrame {
                    code,
                    reason: self::reason(reason).as_ref().into(),
                };
                let _ = sink.send(Message::Close(Some(close))).await;
                return false;
            }
        }
        match protocol.next().now_or_never() {
            Some(Some(more)) => pending = Some(more),
            // The protocol ended: what was fed still goes out.
            Some(None) => open = false,
            None => {}
        }
    }
    sink.flush().await.is_ok() && open
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(result: Result<(), Closing>) -> Option<u16> {
        result.err().map(|(code, _)| code)
    }

    #[test]
    fn messages_outside_the_protocol_close_with_4400() {
        let ops = Operations::default();
        for message in [
            "not json",
            "[]",
            r#"{"type": 1}"#,
            r#"{"type": "hello"}"#,
            r#"{"type": "start", "id": "1", "payload": {"query": "{ me { id } }"}}"#,
            r#"{"type": "subscribe", "payload": {"query": "{ me { id } }"}}"#,
            r#"{"type": "subscribe", "id": "", "payload": {"query": "{ me { id } }"}}"#,
            r#"{"type": "subscribe", "id": "1"}"#,
            r#"{"type": "subscribe", "id": "1", "payload": {"variables": {}}}"#,
            r#"{"type": "complete"}"#,
        ] {
            assert_eq!(
                code(ops.receive(message.as_bytes(), true)),
                Some(4400),
                "{message}"
            );
        }
        for message in [
            r#"{"type": "connection_init"}"#,
            r#"{"type": "ping", "payload": {"x": 1}}"#,
            r#"{"type": "pong"}"#,
        ] {
            assert_eq!(
                code(ops.receive(message.as_bytes(), false)),
                None,
                "{message}"
            );
        }
    }

    #[test]
    fn a_subscribe_needs_the_acknowledgement_and_a_free_id() {
        let ops = Operations::default();
        let subscribe = |id: &str| {
            format!(
                r#"{{"type":"subscribe","id":"{id}","payload":{{"query":"{{ me {{ id }} }}","variables":null}}}}"#
            )
        };
        assert_eq!(
            code(ops.receive(subscribe("1").as_bytes(), false)),
            Some(4401)
        );
        assert_eq!(code(ops.receive(subscribe("1").as_bytes(), true)), None);
        assert_eq!(code(ops.receive(subscribe("2").as_bytes(), true)), None);
        let (code_, why) = ops.receive(subscribe("1").as_bytes(), true).unwrap_err();
        assert_eq!(
            (code_, why.as_ref()),
            (4409, "Subscriber for 1 already exists")
        );
        // Freed when the server completes it, or the client does.
        ops.sent(r#"{"type":"next","id":"1","payload":{"data":{}}}"#);
        assert_eq!(
            code(ops.receive(subscribe("1").as_bytes(), true)),
            Some(4409)
        );
        ops.sent(r#"{"type":"complete","id":"1"}"#);
        assert_eq!(code(ops.receive(subscribe("1").as_bytes(), true)), None);
        assert_eq!(
            code(ops.receive(br#"{"type":"complete","id":"2"}"#, true)),
            None
        );
        assert_eq!(code(ops.receive(subscribe("2").as_bytes(), true)), None);
    }

    #[test]
    fn reasons_fit_a_close_frame() {
        assert_eq!(reason("short"), "short");
        let long = reason(format!("Subscriber for {} already exists", "é".repeat(200)));
        assert!(long.len() <= 123 && long.len() >= 120, "{}", long.len());
    }
}
