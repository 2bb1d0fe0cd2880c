//! Jobs as the outbox keeps them: the store holds an opaque kind and payload, encoded and
//! decoded here.

use crate::domain::{OutboxMessage, RequestId, UserId};
use gatehouse_workers::{Job, SetupPurpose, Traced};

/// A job as the outbox keeps it, with the id of the HTTP request (or of the job) that
/// caused it.
impl From<Job> for OutboxMessage {
    fn from(job: Job) -> Self {
        OutboxMessage {
            kind: job.kind().to_owned(),
            payload: Traced::current(job).to_json(),
        }
    }
}

/// Jobs as the outbox keeps them.
pub(crate) fn outbox(jobs: Vec<Job>) -> Vec<OutboxMessage> {
    jobs.into_iter().map(Into::into).collect()
}

/// The routing job of a newly filed request.
pub fn route_job(request: RequestId) -> OutboxMessage {
    Job::RouteRequest {
        request_id: request.0,
    }
    .into()
}

/// The invitation email of a newly created user.
pub fn invitation_email(user: UserId) -> OutboxMessage {
    Job::AccountSetupEmail {
        user_id: user.0,
        purpose: SetupPurpose::Invitation,
        self_requested: false,
    }
    .into()
}

/// A setup link's purpose as the domain names it, and as a job carries it.
pub(crate) fn domain_purpose(purpose: SetupPurpose) -> crate::domain::SetupPurpose {
    match purpose {
        SetupPurpose::Invitation => crate::domain::SetupPurpose::Invitation,
        SetupPurpose::Reset => crate::domain::SetupPurpose::Reset,
    }
}
