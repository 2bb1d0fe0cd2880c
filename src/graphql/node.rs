//! The `Node` interface: every object with a global ID, from every area.

use super::audit::AuditEvent;
use super::objects::User;
use super::objects::{Organization, Practice};
use super::request::AccountRequest;
use async_graphql::{ID, Interface};

#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID"))]
pub enum Node {
    User(User),
    Organization(Organization),
    Practice(Practice),
    AuditEvent(AuditEvent),
    AccountRequest(AccountRequest),
}
