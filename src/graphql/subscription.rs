//! Subscription root: request status changes, pushed over `/graphql/ws`; a client that
//! reconnects names the last event it saw and gets every change after it, once, in order.

use super::ids::client_id;
use super::request::AccountRequest;
use super::types::{actor, app};
use super::{ChangesFromArrival, GqlResult, RequestContext, SessionToken, gql};
use crate::app::{Actor, App, AppError, ClientInfo, LiveChange, RequestChange, Requests};
use crate::domain::RequestId;
use async_graphql::{Context, ID, Subscription as SubscriptionRoot};
use futures_util::Stream;
use std::collections::{BTreeSet, VecDeque};
use tokio::sync::broadcast::{self, error::RecvError};

/// How long a subscriber's authentication stands while only others' changes arrive.
const RECHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
/// Events read per step of catching up.
const REPLAY_PAGE: i64 = 500;
/// How far behind the newest event one can commit late (PostgreSQL hands out event ids
/// before commit): a live change this close to the end of catching up may be news.
const LATE_WINDOW: i64 = 64;

#[derive(Default)]
pub struct Subscription;

#[SubscriptionRoot]
impl Subscription {
    /// Every status change of a request the caller may see; one request when requestId is
    /// given. With afterEventId (the `eventId` of the last update a client saw), the
    /// changes recorded since are sent first, each once and in order, then live ones.
    async fn request_updated(
        &self,
        ctx: &Context<'_>,
        request_id: Option<ID>,
        after_event_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<AccountRequest>> + use<>>
    {
        let (app, actor) = (app(ctx)?.clone(), actor(ctx)?.clone());
        let wanted = match request_id {
            Some(id) => {
                let unknown = || gql(AppError::BadUserInput("No such request.".into()));
                let id = client_id::<RequestId>(&id).ok_or_else(unknown)?;
                app.requests()
                    .request(&actor, id)
                    .await
                    .gql()?
                    .ok_or_else(unknown)?;
                Some(id)
            }
            None => None,
        };
        let after = match after_event_id {
            None => None,
            Some(id) => Some(id.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                gql(AppError::BadUserInput(
                    "afterEventId must be the eventId of an update.".into(),
                ))
            })?),
        };
        let arrival = ctx
            .data_opt::<ChangesFromArrival>()
            .and_then(|early| early.0.lock().ok()?.take());
        let (changes, newest) = app.requests().changes(arrival).await.gql()?;
        let feed = Feed {
            session: ctx.data_opt::<SessionToken>().cloned(),
            client: ctx.data::<RequestContext>()?.client.clone(),
            changes,
            checked: std::time::Instant::now(),
            app,
            actor,
            wanted,
            backlog: VecDeque::new(),
            // Catching up on (after, newest]; everything later comes live.
            replay_from: after.filter(|a| *a < newest),
            until: newest,
            replayed: BTreeSet::new(),
            late_after: after.map(|a| a.max(newest - LATE_WINDOW)),
            walked: after.unwrap_or(newest),
        };
        Ok(futures_util::stream::unfold(
            Some(feed),
            |feed| async move {
                let mut feed = feed?;
                let item = feed.next().await?;
                let ended = item.is_err();
                Some((item, (!ended).then_some(feed)))
            },
        ))
    }
}

/// One subscriber's position in the changes.
struct Feed {
    session: Option<SessionToken>,
    client: ClientInfo,
    changes: broadcast::Receiver<LiveChange>,
    /// When the subscriber was last authenticated.
    checked: std::time::Instant,
    app: App,
    actor: Actor,
    wanted: Option<RequestId>,
    backlog: VecDeque<RequestChange>,
    /// The event to read on from while catching up.
    replay_from: Option<i64>,
    /// The newest event when the subscription started: the end of catching up.
    until: i64,
    /// The events caught up on that a live one could repeat: those after `late_after`.
    replayed: BTreeSet<i64>,
    /// With a cursor: live changes up to `until` and after this one may have committed
    /// after they were caught up on (or never been read), and go out unless replayed.
    late_after: Option<i64>,
    /// The newest change handed to this subscriber's filter so far: where catching up
    /// starts again if it falls behind.
    walked: i64,
}

impl Feed {
    async fn next(&mut self) -> Option<async_graphql::Result<AccountRequest>> {
        loop {
            let live = match self.next_change().await? {
                Ok(live) => live,
                Err(err) => return Some(Err(err)),
            };
            let change = live.change;
            if change.org_id != self.actor.org_id()
                || self.wanted.is_some_and(|w| w != change.request_id)
            {
                continue;
            }
            if let Err(err) = self.check_caller(live.request.as_deref()).await {
                return Some(Err(err));
            }
            let request = match live.request {
                // Read once for every subscriber of the node.
                Some(request) => {
                    Requests::may_see(&self.actor, &request).then(|| (*request).clone())
                }
                None => match self
                    .app
                    .requests()
                    .request(&self.actor, change.request_id)
                    .await
                {
                    Ok(request) => request,
                    Err(err) => return Some(Err(gql(err))),
                },
            };
            match request {
                // Shown as of this change, even when it has moved on since.
                Some(request) => {
                    return Some(Ok(AccountRequest::live(
                        request,
                        change.status,
                        change.event_id,
                    )));
                }
                None => continue,
            }
        }
    }

    /// Authenticates the subscriber again when what it may see could have changed: a
    /// change about itself (a role or status of its own applied), a change read from the
    /// table, or a minute since it last did. A session that ends closes the connection
    /// (within seconds, on any node) without waiting for this.
    async fn check_caller(
        &mut self,
        request: Option<&crate::domain::AccountRequest>,
    ) -> async_graphql::Result<()> {
        let me = self.actor.user.id;
        let stale = match request {
            Some(request) => request.involves(me) || self.checked.elapsed() > RECHECK_AFTER,
            None => true,
        };
        let Some(SessionToken(token)) = self.session.as_ref().filter(|_| stale) else {
            return Ok(());
        };
        match self.app.identity().authenticate(token, &self.client).await {
            Ok(Some(current)) => {
                self.actor = current.actor().map_err(gql)?.clone();
                self.checked = std::time::Instant::now();
                Ok(())
            }
            Ok(None) => Err(gql(AppError::Unauthenticated)),
            Err(err) => Err(gql(err)),
        }
    }

    /// Whether a live change was not sent already. Without a cursor every change
    /// handed out since the subscription arrived is news; with one, those up to `until`
    /// were caught up on from the table, except any committed after it was read.
    fn is_news(&mut self, event: i64) -> bool {
        match self.late_after {
            None => true,
            Some(_) if event > self.until => true,
            Some(late_after) => event > late_after && self.replayed.insert(event),
        }
    }

    /// The next change: from the backlog while catching up, then live.
    async fn next_change(&mut self) -> Option<async_graphql::Result<LiveChange>> {
        loop {
            if let Some(change) = self.backlog.pop_front() {
                self.walked = self.walked.max(change.event_id);
                let request = None;
                return Some(Ok(LiveChange { change, request }));
            }
            if let Some(from) = self.replay_from {
                let page = self
                    .app
                    .requests()
                    .changes_between(from, self.until, REPLAY_PAGE)
                    .await;
                let page = match page {
                    Ok(page) => page,
                    Err(err) => return Some(Err(gql(err))),
                };
                self.replay_from = match page.last() {
                    Some(last) if last.event_id < self.until => Some(last.event_id),
                    _ => None,
                };
                if let Some(late_after) = self.late_after {
                    self.replayed.extend(
                        page.iter()
                            .map(|c| c.event_id)
                            .filter(|id| *id > late_after),
                    );
                }
                self.backlog.extend(page);
                continue;
            }
            match self.changes.recv().await {
                Ok(live) if self.is_news(live.change.event_id) => {
                    self.walked = self.walked.max(live.change.event_id);
                    return Some(Ok(live));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    // Too slow to keep up with the node: what went by is read from the
                    // table, from the last change it was walked past, then live again.
                    tracing::warn!(missed, "a slow subscriber fell behind; catching up");
                    let newest = match self.app.requests().newest_event().await {
                        Ok(newest) => newest,
                        Err(err) => return Some(Err(gql(err))),
                    };
                    self.replay_from = Some(self.walked).filter(|w| *w < newest);
                    self.until = newest;
                    self.late_after = Some(self.walked.max(newest - LATE_WINDOW));
                    self.replayed.clear();
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
