//! The request workflow as data: every step a request can take, from which statuses, to
//! which, under which audit action; who may decide; and why a change no longer applies.

use super::AccountRequest;
use crate::domain::{Product, RequestStatus, Timestamp, UserId, UserKind};
use RequestStatus::*;

/// A step of the workflow. The store takes a step and moves a request only from the
/// statuses the step starts from, so a request that moved on meanwhile is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// An owner's own filing is their approval.
    ApproveAsFiler,
    /// Sent to the organization's other owners.
    Route,
    /// Nobody could decide it.
    FailUnroutable,
    Approve,
    Reject,
    /// By the requester (or any owner) while still open.
    Cancel,
    /// Nobody decided in time.
    Expire,
    /// Carried out.
    Apply,
    /// The change no longer applies to the data as it is now.
    FailToApply,
}

/// One row of the workflow table.
#[derive(Debug, Clone, Copy)]
pub struct Move {
    pub step: Step,
    pub from: &'static [RequestStatus],
    pub to: RequestStatus,
}

/// The whole workflow. A request is SUBMITTED when filed; APPLIED, REJECTED, CANCELLED,
/// EXPIRED and FAILED are final.
pub const WORKFLOW: &[Move] = &[
    Move {
        step: Step::ApproveAsFiler,
        from: &[Submitted],
        to: Approved,
    },
    Move {
        step: Step::Route,
        from: &[Submitted],
        to: PendingApproval,
    },
    Move {
        step: Step::FailUnroutable,
        from: &[Submitted],
        to: Failed,
    },
    Move {
        step: Step::Approve,
        from: &[PendingApproval],
        to: Approved,
    },
    Move {
        step: Step::Reject,
        from: &[PendingApproval],
        to: Rejected,
    },
    Move {
        step: Step::Cancel,
        from: &[Submitted, PendingApproval],
        to: Cancelled,
    },
    Move {
        step: Step::Expire,
        from: &[PendingApproval],
        to: Expired,
    },
    Move {
        step: Step::Apply,
        from: &[Approved],
        to: Applied,
    },
    Move {
        step: Step::FailToApply,
        from: &[Approved],
        to: Failed,
    },
];

impl Step {
    fn row(self) -> &'static Move {
        WORKFLOW
            .iter()
            .find(|m| m.step == self)
            .expect("every step has a row in the workflow table")
    }

    /// The statuses the step moves a request from.
    pub fn from(self) -> &'static [RequestStatus] {
        self.row().from
    }

    pub fn to(self) -> RequestStatus {
        self.row().to
    }

    /// Whether a request in `status` can take this step.
    pub fn allows(self, status: RequestStatus) -> bool {
        self.from().contains(&status)
    }

    /// The audit action recorded with the step.
    pub fn audit_action(self) -> &'static str {
        audit_action(self.to())
    }
}

/// Statuses of a request whose change is still to come: while one of a kind is
/// unfinished for a user, another of that kind is not filed.
pub const UNFINISHED: &[RequestStatus] = &[Submitted, PendingApproval, Approved];

/// Whether a request's status is final.
pub fn is_final(status: RequestStatus) -> bool {
    !WORKFLOW.iter().any(|m| m.from.contains(&status))
}

/// The audit action of a request reaching `status`.
pub fn audit_action(status: RequestStatus) -> &'static str {
    match status {
        Submitted => "request.submitted",
        PendingApproval => "request.pending_approval",
        Approved => "request.approved",
        Applied => "request.applied",
        Rejected => "request.rejected",
        Cancelled => "request.cancelled",
        Expired => "request.expired",
        Failed => "request.failed",
    }
}

/// Why someone whose role allows deciding still may not decide this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotDecidable {
    /// They filed it or it is about them.
    Involved,
    /// It is no longer waiting for a decision (decided, cancelled, or past its expiry).
    NotAwaiting,
}

/// Who may decide a request (beyond the role table's "owners decide"): anyone but its
/// requester and subject, while it awaits approval and has not expired.
pub fn may_decide(
    request: &AccountRequest,
    decider: UserId,
    now: Timestamp,
) -> Result<(), NotDecidable> {
    if request.involves(decider) {
        return Err(NotDecidable::Involved);
    }
    if !Step::Approve.allows(request.status) || request.expires_at <= now {
        return Err(NotDecidable::NotAwaiting);
    }
    Ok(())
}

/// Why an approved change can no longer be applied, worded for the people emailed the
/// outcome. Decided by the store against the data as it is when applying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotApplicable {
    #[error("No {product} license is available for {kind} users.")]
    NoLicense { product: Product, kind: UserKind },
    #[error("The change would leave the organization without an active owner.")]
    LastOwner,
    #[error("{0} is inactive.")]
    SubjectInactive(String),
    #[error("{0} is already inactive.")]
    SubjectAlreadyInactive(String),
    #[error("The user is not inactive.")]
    NotInactive,
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: &[Step] = &[
        Step::ApproveAsFiler,
        Step::Route,
        Step::FailUnroutable,
        Step::Approve,
        Step::Reject,
        Step::Cancel,
        Step::Expire,
        Step::Apply,
        Step::FailToApply,
    ];

    #[test]
    fn every_step_has_exactly_one_row() {
        for step in STEPS {
            assert_eq!(
                WORKFLOW.iter().filter(|m| m.step == *step).count(),
                1,
                "{step:?}"
            );
        }
        assert_eq!(WORKFLOW.len(), STEPS.len());
    }

    #[test]
    fn the_table_is_the_workflow() {
        // (step, from, to) spelled out, the way the role table's test spells out roles.
        let expected = [
            (Step::ApproveAsFiler, vec![Submitted], Approved),
            (Step::Route, vec![Submitted], PendingApproval),
            (Step::FailUnroutable, vec![Submitted], Failed),
            (Step::Approve, vec![PendingApproval], Approved),
            (Step::Reject, vec![PendingApproval], Rejected),
            (Step::Cancel, vec![Submitted, PendingApproval], Cancelled),
            (Step::Expire, vec![PendingApproval], Expired),
            (Step::Apply, vec![Approved], Applied),
            (Step::FailToApply, vec![Approved], Failed),
        ];
        for (step, from, to) in expected {
            assert_eq!(step.from(), from.as_slice(), "{step:?}");
            assert_eq!(step.to(), to, "{step:?}");
        }
    }

    #[test]
    fn final_statuses_have_no_way_out_and_every_status_is_reached() {
        for status in RequestStatus::ALL {
            let reached = *status == Submitted || WORKFLOW.iter().any(|m| m.to == *status);
            assert!(reached, "{status} is reachable");
        }
        let finals: Vec<_> = RequestStatus::ALL
            .iter()
            .filter(|s| is_final(**s))
            .collect();
        assert_eq!(finals, [&Applied, &Rejected, &Cancelled, &Expired, &Failed]);
        assert!(
            !Step::Cancel.allows(Approved),
            "an approved request is not cancelled"
        );
        let unfinished: Vec<_> = RequestStatus::ALL
            .iter()
            .filter(|s| !is_final(**s))
            .collect();
        assert_eq!(unfinished, UNFINISHED.iter().collect::<Vec<_>>());
        assert!(
            !Step::Approve.allows(Submitted),
            "nobody decides before routing"
        );
    }

    #[test]
    fn every_status_has_a_dotted_audit_action() {
        for status in RequestStatus::ALL {
            assert_eq!(
                audit_action(*status),
                format!("request.{}", status.as_str().to_lowercase())
            );
        }
        assert_eq!(Step::Reject.audit_action(), "request.rejected");
    }
}
