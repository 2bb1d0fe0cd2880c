//! The directory: finding users, inviting them within licenses, profiles, practices,
//! reactivation, and reading the audit log.

pub mod import;
mod invitee;
pub mod organization;
mod reactivation;
mod user;
mod view;

use invitee::Invitee;
pub use reactivation::Reactivated;
pub use view::OrgView;

use super::policy::Action;
use super::{Actor, AppError, AppResult, service};
use crate::app::page::{Page, decode_cursor, encode_cursor, page_size, present};
use crate::domain::id::ClientId;
use crate::domain::search::{digits, fold};
use crate::domain::values::parse_title;
use crate::domain::{Change, PermissionChange};
use crate::domain::{
    DomainError, ErrorCode, Mobile, Permission, PersonName, Practice, PracticeId, Product, Role,
    User, UserId, UserKind, UserStatus,
};
use crate::store::{AnyMatch, NewUser, StoreError, UserCreation, UserSearch, UserUpdate};

/// What the `users` query filters on, as typed.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub search: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub status: Option<UserStatus>,
    pub kind: Option<UserKind>,
    pub locked: Option<bool>,
    /// `None` inside: an ID that names no practice (so no user matches).
    pub practice_id: Option<ClientId<PracticeId>>,
}

/// What `inviteUser` receives.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub mobile: Option<String>,
    pub kind: UserKind,
    pub role: Option<Role>,
    pub permissions: Vec<Permission>,
    pub products: Option<Vec<Product>>,
    pub practice_ids: Vec<ClientId<PracticeId>>,
}

/// What `updateUser` receives; `None` leaves a field unchanged.
#[derive(Debug, Clone)]
pub struct ProfileUpdate {
    pub user_id: UserId,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// An empty string clears the mobile.
    pub mobile: Option<String>,
    pub practice_ids: Option<Vec<ClientId<PracticeId>>>,
}

/// The longest text a search filter takes (SPEC "Bad input and limits").
pub const MAX_FILTER_TEXT: usize = 256;

/// A query made only of a phone number's characters is matched on its digits too.
fn phone_like(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_digit() || " ()+-./".contains(c))
        && digits(text).len() >= 3
}

/// The practices asked for, each of the caller's organization.
fn known_practices(
    ids: &[ClientId<PracticeId>],
    known: &[Practice],
) -> Result<Vec<PracticeId>, DomainError> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            id.filter(|p| known.iter().any(|k| k.id == *p))
                .ok_or_else(|| {
                    DomainError::new(
                        ErrorCode::NotFound,
                        format!("practiceIds[{i}] is not a practice of this organization."),
                    )
                    .on("practiceIds")
                })
        })
        .collect()
}

service!(
    /// Organizations, users and practices.
    Directory
);

impl Directory {
    /// One page of the caller's organization's users, in directory order (last name,
    /// first name). Every role may search; `with_total` counts all matches too.
    pub async fn find_users(
        &self,
        actor: &Actor,
        filter: UserFilter,
        first: Option<i32>,
        after: Option<String>,
        with_total: bool,
    ) -> AppResult<Page<User>> {
        let size = page_size(first, self.config.limits.max_page_size)?;
        let after = after.as_deref().map(decode_cursor).transpose()?;
        for (name, text) in [
            ("search", &filter.search),
            ("name", &filter.name),
            ("username", &filter.username),
            ("email", &filter.email),
            ("mobile", &filter.mobile),
        ] {
            if text
                .as_deref()
                .is_some_and(|t| t.chars().count() > MAX_FILTER_TEXT)
            {
                return Err(AppError::BadUserInput(format!(
                    "filter.{name} is longer than {MAX_FILTER_TEXT} characters."
                )));
            }
        }
        let practice_id = match filter.practice_id {
            Some(Some(id)) => Some(id),
            // An unknown practice has no users.
            Some(None) => {
                return Ok(Page {
                    items: Vec::new(),
                    has_next: false,
                    total: with_total.then_some(0),
                });
            }
            None => None,
        };
        let search = UserSearch {
            org_id: actor.org_id(),
            name: present(&filter.name).map(fold),
            username: present(&filter.username).map(str::to_lowercase),
            email: present(&filter.email).map(str::to_lowercase),
            mobile: present(&filter.mobile)
                .map(digits)
                .map(|d| if d.is_empty() { "\u{0}".into() } else { d }),
            any: present(&filter.search).map(|q| AnyMatch {
                text: fold(q),
                digits: phone_like(q).then(|| digits(q)),
            }),
            status: filter.status,
            kind: filter.kind,
            locked: filter.locked,
            practice_id,
            now: self.now(),
            after,
            limit: size as i64 + 1,
            with_total,
        };
        let mut page = self.store.search_users(search).await?;
        let has_next = page.users.len() > size;
        page.users.truncate(size);
        let items = page
            .users
            .into_iter()
            .map(|(key, user)| (encode_cursor(&key), user))
            .collect();
        Ok(Page {
            items,
            has_next,
            total: page.total,
        })
    }

    /// Invites a user: validated, within the licenses, with the setup email on its way.
    pub async fn invite_user(&self, actor: &Actor, input: Invitation) -> AppResult<User> {
        actor.require(Action::InviteUser)?;
        let Invitee {
            username,
            first,
            last,
            email,
            mobile,
            role,
            products,
        } = Invitee::parse(&input)?;
        let practices = self.store.practices(actor.org_id()).await?;
        let practice_ids = known_practices(&input.practice_ids, &practices)?;
        // Nobody gains more than an owner approved: from anyone but an owner, a higher
        // role or permissions become a request to the owners about the new member.
        let (role, permissions, asked) = if actor.grants_directly() {
            (role, input.permissions, None)
        } else {
            let mut grant = input.permissions;
            grant.sort();
            grant.dedup();
            let asked_role = (role != Role::Member).then_some(role);
            let asked = (!grant.is_empty() || asked_role.is_some()).then(|| PermissionChange {
                grant,
                revoke: Vec::new(),
                role: asked_role,
            });
            (Role::Member, Vec::new(), asked)
        };
        let at = self.now();
        let audit = actor.audit("user.invited").details(serde_json::json!({
            "username": username.as_str(),
            "role": role.as_str(),
            "kind": input.kind.as_str(),
            "products": products.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "permissions": permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "practiceIds": practice_ids.iter().map(|p| p.to_global()).collect::<Vec<_>>(),
        }));
        let new = NewUser {
            org_id: actor.org_id(),
            username: username.as_str().to_owned(),
            email: email.as_str().to_owned(),
            first_name: first.as_str().to_owned(),
            last_name: last.as_str().to_owned(),
            mobile: mobile.map(|m| m.as_str().to_owned()),
            kind: input.kind,
            role,
            products,
            permissions,
            practice_ids,
            password_hash: None,
            encryption_key: super::crypto::random_bytes::<32>().to_vec(),
            created_at: at,
        };
        let user = match self.store.create_user(UserCreation { user: new, audit, setup_email: Some(crate::app::jobs::invitation_email) }).await {
            Err(StoreError::NoLicense { product, kind }) => Err(DomainError::new(
                ErrorCode::NoLicenseAvailable,
                format!("No {product} license is available for {kind} users; request more licenses first."),
            )
            .on("products")
            .into()),
            other => other.map_err(AppError::from),
        }?;
        if let Some(change) = asked {
            let requests = self.area::<crate::app::Requests>();
            let new = requests.new_request(
                actor,
                Change::Permissions(change),
                Some(user.id),
                Some("Asked for in the invitation of a new user.".into()),
                None,
            );
            let filed = requests.file(new).await;
            if let Err(err) = filed {
                // The member exists with no more than a member's rights; the owners can
                // still be asked with requestPermissionChange.
                tracing::error!(error = ?err, user_id = user.id.0, "cannot file the invitation's permission request");
            }
        }
        Ok(user)
    }

    /// Changes names, mobile and practices: the user's own names and mobile, or anyone's
    /// profile for an admin.
    pub async fn update_user(&self, actor: &Actor, input: ProfileUpdate) -> AppResult<User> {
        actor.require_on(input.user_id, Action::UpdateSelf, Action::AdministerUser)?;
        if input.practice_ids.is_some() {
            actor.require(Action::AdministerUser)?;
        }
        let user = self.target(actor, input.user_id).await?;
        let first = input
            .first_name
            .as_deref()
            .map(|v| PersonName::parse("firstName", v))
            .transpose()?;
        let last = input
            .last_name
            .as_deref()
            .map(|v| PersonName::parse("lastName", v))
            .transpose()?;
        let mobile = match input.mobile.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(typed) => Some(Some(Mobile::parse(typed)?.as_str().to_owned())),
        };
        let practice_ids = match &input.practice_ids {
            Some(ids) => Some(known_practices(
                ids,
                &self.store.practices(actor.org_id()).await?,
            )?),
            None => None,
        };
        let mut before = serde_json::Map::new();
        let mut after = serde_json::Map::new();
        let mut note = |field: &str, old: serde_json::Value, new: serde_json::Value| {
            if old != new {
                before.insert(field.into(), old);
                after.insert(field.into(), new);
            }
        };
        if let Some(first) = &first {
            note(
                "firstName",
                user.first_name.clone().into(),
                first.as_str().into(),
            );
        }
        if let Some(last) = &last {
            note(
                "lastName",
                user.last_name.clone().into(),
                last.as_str().into(),
            );
        }
        if let Some(mobile) = &mobile {
            note("mobile", user.mobile.clone().into(), mobile.clone().into());
        }
        if let Some(ids) = &practice_ids {
            let old: Vec<String> = self
                .store
                .practices_of_users(&[user.id])
                .await?
                .into_iter()
                .map(|(_, p)| p.id.to_global())
                .collect();
            let new: Vec<String> = ids.iter().map(|p| p.to_global()).collect();
            note("practiceIds", old.into(), new.into());
        }
        let audit = actor
            .audit("user.updated")
            .subject(user.id)
            .details(serde_json::json!({ "before": before, "after": after }));
        let update = UserUpdate {
            org_id: actor.org_id(),
            user_id: user.id,
            first_name: first.map(|n| n.as_str().to_owned()),
            last_name: last.map(|n| n.as_str().to_owned()),
            mobile,
            practice_ids,
            audit,
        };
        Ok(self.store.update_user(update).await?)
    }

    pub async fn create_practice(&self, actor: &Actor, name: &str) -> AppResult<Practice> {
        actor.require(Action::CreatePractice)?;
        let name = parse_title("name", name)?;
        Ok(self
            .store
            .create_practice(actor.org_id(), &name, actor.audit("practice.created"))
            .await?)
    }
}
