//! The fields of an invitation checked by the rules of `inviteUser`, once for both the
//! API and the bulk import.

use super::Invitation;
use crate::app::page::present;
use crate::domain::{DomainError, EmailAddress, Mobile, PersonName, Product, Role, Username};

/// An invitation's checked fields.
pub(super) struct Invitee {
    pub username: Username,
    pub first: PersonName,
    pub last: PersonName,
    pub email: EmailAddress,
    pub mobile: Option<Mobile>,
    pub role: Role,
    pub products: Vec<Product>,
}

impl Invitee {
    /// Checks the fields of `input` in the order of the form; the first problem is the
    /// error, named by its GraphQL field.
    pub fn parse(input: &Invitation) -> Result<Self, DomainError> {
        let username = Username::parse(&input.username)?;
        let first = PersonName::parse("firstName", &input.first_name)?;
        let last = PersonName::parse("lastName", &input.last_name)?;
        let email = EmailAddress::parse(&input.email)?;
        let mobile = present(&input.mobile).map(Mobile::parse).transpose()?;
        let role = input.role.unwrap_or(Role::Member);
        if role == Role::Owner {
            return Err(DomainError::invalid(
                "role",
                "OWNER cannot be given with an invitation; file a permission change request for it.",
            ));
        }
        let products = input.products.clone().unwrap_or_else(|| vec![Product::Ehr]);
        if products.is_empty() {
            return Err(DomainError::invalid(
                "products",
                "Give at least one product.",
            ));
        }
        Ok(Self {
            username,
            first,
            last,
            email,
            mobile,
            role,
            products,
        })
    }
}
