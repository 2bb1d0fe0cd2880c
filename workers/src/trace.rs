//! The id of the HTTP request that caused a piece of work, carried from the request to
//! the jobs it writes to the outbox, and from a job to the jobs it writes in turn, so
//! that every log line of one user action can be found by one id.

use crate::job::Job;
use serde::{Deserialize, Serialize};
use std::future::Future;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `work` with `id` as the current request id.
pub async fn with_request_id<F: Future>(id: Option<String>, work: F) -> F::Output {
    match id {
        Some(id) => REQUEST_ID.scope(id, work).await,
        None => work.await,
    }
}

/// The request id of the work running now, if it came from a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A job as the outbox stores it: the job's own fields, and beside them the id of the
/// request that caused it. The key is not `request_id`, which a job may use for the
/// account request it acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traced {
    #[serde(flatten)]
    pub job: Job,
    #[serde(
        rename = "http_request_id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub request_id: Option<String>,
}

impl Traced {
    /// The job, caused by the work running now.
    pub fn current(job: Job) -> Self {
        Self {
            job,
            request_id: current_request_id(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("job payloads are plain data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_written_inside_a_request_carries_its_id_and_reads_back() {
        let job = Job::RouteRequest { request_id: 7 };
        let traced =
            with_request_id(Some("abc-1".into()), async { Traced::current(job.clone()) }).await;
        let json = traced.to_json();
        assert!(json.contains(r#""http_request_id":"abc-1""#), "{json}");
        assert!(json.contains(r#""request_id":7"#), "{json}");
        let back: Traced = serde_json::from_str(&json).unwrap();
        assert_eq!(back, traced);
    }

    #[tokio::test]
    async fn a_job_from_outside_a_request_reads_as_before() {
        let job = Job::ApplyRequest { request_id: 3 };
        let traced = Traced::current(job.clone());
        assert_eq!(traced.request_id, None);
        assert_eq!(traced.to_json(), job.to_json());
        let old: Traced = serde_json::from_str(&job.to_json()).unwrap();
        assert_eq!(old.job, job);
    }
}
