//! Bringing inactive users back: now where a license allows, or through the owner's
//! review for a provider recently deactivated with billing.

use super::Directory;
use crate::app::policy::Action;
use crate::app::{Actor, AppError, AppResult};
use crate::domain::id::ClientId;
use crate::domain::{
    DomainError, ErrorCode, Product, Timestamp, User, UserId, UserKind, UserStatus,
};
use crate::store::StoreError;

/// The outcome of reactivating several users: who came back, and why others did not
/// (with their position in the input list).
#[derive(Debug, Default)]
pub struct Reactivated {
    pub users: Vec<User>,
    /// REACTIVATE_PROVIDER requests filed for providers that need the owner's review.
    pub requests: Vec<crate::domain::AccountRequest>,
    pub refused: Vec<(usize, DomainError)>,
}

/// How one user comes back: now, or through a request the owner reviews.
enum Reactivation {
    Now(User),
    Requested(crate::domain::AccountRequest),
}

/// Billing for a provider deactivated less than this long ago goes through the owner.
const BILLING_REVIEW_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// A provider getting BILLING back within 30 days of deactivation needs the owner's
/// review (REACTIVATE_PROVIDER), as the vendors handle it.
fn needs_review(user: &User, products: &[Product], at: Timestamp) -> bool {
    user.kind == UserKind::Provider
        && products.contains(&Product::Billing)
        && user
            .deactivated_at
            .is_some_and(|deactivated| at - deactivated < BILLING_REVIEW_WINDOW)
}

impl Directory {
    /// Reactivates each user where a license allows, restoring `products` (default EHR).
    pub async fn reactivate_users(
        &self,
        actor: &Actor,
        ids: &[ClientId<UserId>],
        products: Option<Vec<Product>>,
    ) -> AppResult<Reactivated> {
        actor.require(Action::AdministerUser)?;
        let products = products.unwrap_or_else(|| vec![Product::Ehr]);
        if products.is_empty() {
            return Err(DomainError::invalid("products", "Give at least one product.").into());
        }
        let mut done = Reactivated::default();
        for (index, id) in ids.iter().enumerate() {
            match self.reactivate_one(actor, index, *id, &products).await {
                Ok(Reactivation::Now(user)) => done.users.push(user),
                Ok(Reactivation::Requested(request)) => done.requests.push(request),
                Err(AppError::Domain(refusal)) => done.refused.push((index, refusal)),
                Err(other) => return Err(other),
            }
        }
        Ok(done)
    }

    async fn reactivate_one(
        &self,
        actor: &Actor,
        index: usize,
        id: ClientId<UserId>,
        products: &[Product],
    ) -> AppResult<Reactivation> {
        let not_found = || {
            DomainError::new(
                ErrorCode::NotFound,
                format!("userIds[{index}] is not a user of this organization."),
            )
            .on("userIds")
        };
        let user_id = id.ok_or_else(not_found)?;
        let user = match self.store.user(actor.org_id(), user_id).await {
            Err(StoreError::NotFound) => return Err(not_found().into()),
            other => other?,
        };
        if user.status != UserStatus::Inactive {
            return Err(DomainError::new(
                ErrorCode::InvalidState,
                format!("{} is not inactive.", user.username),
            )
            .on("userIds")
            .into());
        }
        if needs_review(&user, products, self.now()) {
            let request = self
                .area::<crate::app::Requests>()
                .request_reactivation(actor, &user, products)
                .await?;
            return Ok(Reactivation::Requested(request));
        }
        let audit = actor.audit("user.reactivated").subject(user.id).details(serde_json::json!({
            "before": { "status": "INACTIVE" },
            "after": { "status": "ACTIVE", "products": products.iter().map(|p| p.as_str()).collect::<Vec<_>>() },
        }));
        let reactivation = crate::store::Reactivation {
            org_id: actor.org_id(),
            user_id: user.id,
            products: products.to_vec(),
            audit,
        };
        match self.store.reactivate_user(reactivation).await {
            Err(StoreError::NoLicense { product, kind }) => Err(DomainError::new(
                ErrorCode::NoLicenseAvailable,
                format!(
                    "No {product} license is available for {kind} users to reactivate {}.",
                    user.username
                ),
            )
            .on("userIds")
            .into()),
            Err(StoreError::Conflict(_)) => Err(DomainError::new(
                ErrorCode::InvalidState,
                format!("{} is not inactive.", user.username),
            )
            .on("userIds")
            .into()),
            other => Ok(Reactivation::Now(other?)),
        }
    }
}
