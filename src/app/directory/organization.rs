//! Organizations: the operator's `org create`, and what members may read of their own.

use super::Directory;
use crate::app::crypto::random_bytes;
use crate::app::{Actor, AppError, AppResult};
use crate::domain::password::Password;
use crate::domain::values::parse_title;
use crate::domain::{
    DomainError, EmailAddress, ErrorCode, Organization, PersonName, Product, Role, User, UserKind,
    Username,
};
use crate::store::{AuditEntry, NewOrganization, NewUser, StoreError, UserCreation};

/// What the operator asks for with `gatehouse org create`.
#[derive(Debug, Clone)]
pub struct CreateOrganization {
    pub name: String,
    pub owner_username: String,
    pub owner_email: String,
    pub owner_first_name: String,
    pub owner_last_name: String,
    pub owner_kind: UserKind,
    pub licenses: Vec<(Product, UserKind, i32)>,
    pub owner_password: Option<String>,
}

/// Parses `EHR:PROVIDER:5,EHR:STAFF:10` into license pools.
pub fn parse_licenses(spec: &str) -> Result<Vec<(Product, UserKind, i32)>, String> {
    let mut pools: Vec<(Product, UserKind, i32)> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let fields: Vec<&str> = part.split(':').map(str::trim).collect();
        let [product, kind, total] = fields[..] else {
            return Err(format!(
                "{part:?} must be PRODUCT:KIND:COUNT, like EHR:PROVIDER:5"
            ));
        };
        let product: Product = product.to_uppercase().parse().map_err(|_| {
            format!("unknown product {product:?} (use EHR, BILLING, PATIENT_PORTAL or TELEHEALTH)")
        })?;
        let kind: UserKind = kind
            .to_uppercase()
            .parse()
            .map_err(|_| format!("unknown user kind {kind:?} (use PROVIDER or STAFF)"))?;
        let total: i32 = total
            .parse()
            .ok()
            .filter(|n| (0..=1_000_000).contains(n))
            .ok_or_else(|| format!("{total:?} must be a count from 0 to 1000000"))?;
        if pools.iter().any(|(p, k, _)| (*p, *k) == (product, kind)) {
            return Err(format!("{product}:{kind} is given twice"));
        }
        pools.push((product, kind, total));
    }
    Ok(pools)
}

impl Directory {
    /// Creates an organization with its pools and OWNER. With a password the owner is
    /// ACTIVE; without, INVITED, and the account-setup email is queued.
    pub async fn create_organization(
        &self,
        input: CreateOrganization,
    ) -> AppResult<(Organization, User)> {
        let new = self.new_organization(input).await?;
        match self.store.create_organization(new).await {
            Err(StoreError::NoLicense { product, kind }) => Err(DomainError {
                code: ErrorCode::NoLicenseAvailable,
                field: Some("licenses"),
                message: format!(
                    "no {product} license is left for the {kind} owner; give {product}:{kind} at least 1"
                ),
            }
            .into()),
            Err(other) => {
                // A taken username or email is the owner's (the command's own flags).
                let mut err = AppError::from(other);
                if let AppError::Domain(refused) = &mut err {
                    refused.field = refused.field.map(|field| match field {
                        "username" => "owner-username",
                        "email" => "owner-email",
                        field => field,
                    });
                }
                Err(err)
            }
            Ok(created) => Ok(created),
        }
    }

    /// An organization checked and ready to create (the owner's password hashed), for
    /// `create_organization` or, many at once, `ImportStore::import_organizations`.
    pub async fn new_organization(&self, input: CreateOrganization) -> AppResult<NewOrganization> {
        let name = parse_title("name", &input.name)?;
        let username =
            Username::parse(&input.owner_username).map_err(|e| e.on("owner-username"))?;
        let email = EmailAddress::parse(&input.owner_email).map_err(|e| e.on("owner-email"))?;
        let first = PersonName::parse("owner-first-name", &input.owner_first_name)?;
        let last = PersonName::parse("owner-last-name", &input.owner_last_name)?;
        let password_hash = match &input.owner_password {
            Some(raw) => {
                let password = Password::parse(raw, username.as_str(), email.local_part())?;
                Some(self.hasher.hash(password.expose()).await?)
            }
            None => None,
        };
        let at = self.now();
        let invited = password_hash.is_none();
        let owner = NewUser {
            org_id: Default::default(),
            username: username.as_str().to_owned(),
            email: email.as_str().to_owned(),
            first_name: first.as_str().to_owned(),
            last_name: last.as_str().to_owned(),
            mobile: None,
            kind: input.owner_kind,
            role: Role::Owner,
            products: vec![Product::Ehr],
            permissions: Vec::new(),
            practice_ids: Vec::new(),
            password_hash,
            encryption_key: random_bytes::<32>().to_vec(),
            created_at: at,
        };
        let audit =
            AuditEntry::new(Default::default(), at, "user.invited").details(serde_json::json!({
                "via": "command line",
                "role": "OWNER",
                "kind": input.owner_kind.as_str(),
                "status": if invited { "INVITED" } else { "ACTIVE" },
            }));
        let new = NewOrganization {
            name,
            created_at: at,
            pools: input.licenses.clone(),
            owner: UserCreation {
                user: owner,
                audit,
                setup_email: invited
                    .then_some(crate::app::jobs::invitation_email as crate::domain::OutboxFor<_>),
            },
        };
        Ok(new)
    }

    /// The caller's organization.
    pub async fn organization(&self, actor: &Actor) -> AppResult<Organization> {
        Ok(self.store.organization(actor.org_id()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_specs_parse_and_explain_mistakes() {
        assert_eq!(
            parse_licenses("EHR:PROVIDER:5, ehr:staff:10").unwrap(),
            vec![
                (Product::Ehr, UserKind::Provider, 5),
                (Product::Ehr, UserKind::Staff, 10)
            ]
        );
        for (bad, says) in [
            ("EHR:PROVIDER", "PRODUCT:KIND:COUNT"),
            ("XRAY:STAFF:1", "unknown product"),
            ("EHR:ROBOT:1", "unknown user kind"),
            ("EHR:STAFF:-1", "count"),
            ("EHR:STAFF:1,EHR:STAFF:2", "twice"),
        ] {
            let err = parse_licenses(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
