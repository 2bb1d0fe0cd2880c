//! The closed vocabularies of the contract: roles, kinds, statuses, products, permissions.

use std::fmt;
use std::str::FromStr;

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A stored or typed-in value outside a closed vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} value {value:?}")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

text_enum!(
    /// Practice-level role; OWNER is the financial decision maker.
    Role { Owner => "OWNER", Champion => "CHAMPION", Admin => "ADMIN", Member => "MEMBER" }
);
text_enum!(UserKind { Provider => "PROVIDER", Staff => "STAFF" });
text_enum!(UserStatus { Invited => "INVITED", Active => "ACTIVE", Inactive => "INACTIVE" });
text_enum!(Product {
    Ehr => "EHR",
    Billing => "BILLING",
    PatientPortal => "PATIENT_PORTAL",
    Telehealth => "TELEHEALTH",
});
text_enum!(Permission {
    Scheduling => "SCHEDULING",
    ClinicalNotes => "CLINICAL_NOTES",
    Prescribing => "PRESCRIBING",
    Billing => "BILLING",
    Reporting => "REPORTING",
});
text_enum!(RequestKind {
    AddLicenses => "ADD_LICENSES",
    ChangePermissions => "CHANGE_PERMISSIONS",
    InactivateUser => "INACTIVATE_USER",
    ReactivateProvider => "REACTIVATE_PROVIDER",
});
text_enum!(SetupPurpose {
    Invitation => "INVITATION",
    Reset => "RESET",
});
text_enum!(RequestStatus {
    Submitted => "SUBMITTED",
    PendingApproval => "PENDING_APPROVAL",
    Approved => "APPROVED",
    Applied => "APPLIED",
    Rejected => "REJECTED",
    Cancelled => "CANCELLED",
    Expired => "EXPIRED",
    Failed => "FAILED",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_text() {
        for p in Product::ALL {
            assert_eq!(p.as_str().parse::<Product>(), Ok(*p));
        }
        for s in RequestStatus::ALL {
            assert_eq!(s.as_str().parse::<RequestStatus>(), Ok(*s));
        }
        assert!("owner".parse::<Role>().is_err());
    }
}
