//! Account values that cannot exist unless valid: usernames, email addresses, names.

use super::error::{DomainError, ErrorCode};
use std::fmt;

/// Local parts of shared role mailboxes, refused because accounts are personal.
const SHARED_MAILBOXES: &[&str] = &[
    "info",
    "office",
    "admin",
    "frontdesk",
    "front.desk",
    "reception",
    "billing",
    "contact",
    "support",
    "help",
    "hello",
    "team",
    "staff",
    "mail",
    "noreply",
    "no-reply",
    "sales",
];

/// 3–64 of `a-z 0-9 . _ -`, stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let value = input.trim().to_lowercase();
        let len = value.chars().count();
        if !(3..=64).contains(&len) {
            return Err(DomainError::invalid(
                "username",
                "Username must be 3 to 64 characters.",
            ));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        {
            return Err(DomainError::invalid(
                "username",
                "Username may contain only letters a-z, digits, '.', '_' and '-'.",
            ));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A personal email address (shared role mailboxes are refused).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let value = input.trim();
        let invalid = || {
            DomainError::invalid(
                "email",
                "Email must be a valid address, like name@example.com.",
            )
        };
        if value.len() > 254 {
            return Err(invalid());
        }
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()));
        if !local_ok || !domain_ok {
            return Err(invalid());
        }
        let local_lower = local.to_ascii_lowercase();
        let base = local_lower.split('+').next().unwrap_or_default();
        if SHARED_MAILBOXES.contains(&base) {
            return Err(DomainError {
                code: ErrorCode::SharedEmailNotAllowed,
                field: Some("email"),
                message: format!(
                    "'{local}@' is a shared mailbox; each user needs a personal email address."
                ),
            });
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the '@', which a password may not contain.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(l, _)| l)
    }
}

/// A first or last name: 1–100 characters, no control characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(field: &'static str, input: &str) -> Result<Self, DomainError> {
        let value = input.trim();
        let len = value.chars().count();
        if len == 0 || len > 100 {
            return Err(DomainError::invalid(
                field,
                "Name must be 1 to 100 characters.",
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                field,
                "Name may not contain control characters.",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A practice or organization name: 1–100 characters (the cap of every name), no control
/// characters.
pub fn parse_title(field: &'static str, input: &str) -> Result<String, DomainError> {
    let value = input.trim();
    let len = value.chars().count();
    if len == 0 || len > 100 || value.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "Name must be 1 to 100 characters without control characters.",
        ));
    }
    Ok(value.to_owned())
}

macro_rules! display_as_str {
    ($($t:ty),+) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(&self.0) }
        }
    )+};
}
display_as_str!(Username, EmailAddress, PersonName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lower_cased_and_limited() {
        assert_eq!(Username::parse("J.Smith_2").unwrap().as_str(), "j.smith_2");
        for bad in ["ab", "has space", "émile", &"x".repeat(65), "semi;colon"] {
            assert_eq!(
                Username::parse(bad).unwrap_err().code,
                ErrorCode::InvalidInput,
                "{bad}"
            );
        }
    }

    #[test]
    fn emails_must_be_valid_and_personal() {
        assert_eq!(
            EmailAddress::parse("Ana.Garcia@Clinic.EXAMPLE")
                .unwrap()
                .as_str(),
            "Ana.Garcia@clinic.example"
        );
        for bad in [
            "",
            "no-at",
            "a@b",
            "@x.com",
            "a@.com",
            "a b@x.com",
            "a@x..com",
            "a@-x.com",
        ] {
            assert_eq!(
                EmailAddress::parse(bad).unwrap_err().code,
                ErrorCode::InvalidInput,
                "{bad}"
            );
        }
        for shared in [
            "info@x.com",
            "Front.Desk@x.com",
            "no-reply@x.com",
            "billing+1@x.com",
        ] {
            assert_eq!(
                EmailAddress::parse(shared).unwrap_err().code,
                ErrorCode::SharedEmailNotAllowed,
                "{shared}"
            );
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            PersonName::parse("firstName", "  García ")
                .unwrap()
                .as_str(),
            "García"
        );
        assert!(PersonName::parse("firstName", "   ").is_err());
        assert!(PersonName::parse("firstName", "a\u{0}b").is_err());
    }
}

/// A mobile number in E.164 (`+15035550123`), parsed from any common formatting; numbers
/// without a country code are taken as US numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mobile(String);

impl Mobile {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let invalid = || {
            DomainError::invalid(
                "mobile",
                "Mobile must be a valid phone number, like (503) 555-0123 or +44 7911 123456.",
            )
        };
        if input.trim().is_empty() || input.len() > 40 {
            return Err(invalid());
        }
        let number = phonenumber::parse(Some(phonenumber::country::Id::US), input.trim())
            .map_err(|_| invalid())?;
        if !phonenumber::is_valid(&number) {
            return Err(invalid());
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod mobile_tests {
    use super::*;

    #[test]
    fn mobiles_are_stored_in_e164() {
        for typed in [
            "(503) 555-0123",
            "503.555.0123",
            "+1 503 555 0123",
            "1-503-555-0123",
        ] {
            assert_eq!(
                Mobile::parse(typed).unwrap().as_str(),
                "+15035550123",
                "{typed}"
            );
        }
        assert_eq!(
            Mobile::parse("+44 7911 123456").unwrap().as_str(),
            "+447911123456"
        );
        for bad in ["", "12", "call me", "+1 000 000 0000"] {
            assert!(Mobile::parse(bad).is_err(), "{bad}");
        }
    }
}
