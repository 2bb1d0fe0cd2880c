//! Deciding requests under concurrency, on both databases.

use super::*;

crate::on_both_databases!(
    the_open_request_check_reads_the_open_requests_index,
    twenty_simultaneous_decisions_record_exactly_one,
    a_locked_owners_decision_is_refused,
    license_applications_and_invitations_at_once_are_no_deadlock,
    an_owners_demotion_and_anothers_inactivation_at_once_leave_one_owner,
);

/// Files a license request as `requester` and moves it to PENDING_APPROVAL.
async fn pending_request(
    app: &crate::common::TestApp,
    org: gatehouse::domain::OrgId,
    requester: gatehouse::domain::UserId,
) -> gatehouse::domain::RequestId {
    use gatehouse::domain::{Change, LicenseChange};
    let licenses = Change::Licenses(LicenseChange {
        product: Product::Ehr,
        kind: UserKind::Staff,
        quantity: 2,
    });
    pending_change(app, org, requester, None, licenses).await
}

/// Files a request for `change` (of `subject`) as `requester` and moves it to
/// PENDING_APPROVAL.
async fn pending_change(
    app: &crate::common::TestApp,
    org: gatehouse::domain::OrgId,
    requester: gatehouse::domain::UserId,
    subject_id: Option<gatehouse::domain::UserId>,
    change: gatehouse::domain::Change,
) -> gatehouse::domain::RequestId {
    use gatehouse::store::{Filing, NewRequest, Transition};
    let at = now();
    let new = NewRequest {
        route: gatehouse::app::jobs::route_job,
        org_id: org,
        requested_by: requester,
        subject_id,
        justification: None,
        change,
        terms_accepted: false,
        filed_by_owner: false,
        at,
        expires_at: at + chrono::TimeDelta::days(14),
        idempotency_key: None,
        idempotency_since: at,
        audit: AuditEntry::new(org, at, "request.submitted"),
    };
    let request = match app.store.file_request(new).await.unwrap() {
        Filing::New(request) => request,
        other => panic!("a new request, not {other:?}"),
    };
    let mut audit = AuditEntry::new(org, at, "request.pending_approval");
    audit.request_id = Some(request.id.0);
    app.store
        .transition_request(Transition {
            request_id: request.id,
            step: gatehouse::domain::request::Step::Route,
            at,
            actor_id: None,
            note: None,
            failure_reason: None,
            decision: None,
            approver_must_be_owner: None,
            approvers: vec![],
            audit,
            jobs: vec![],
        })
        .await
        .unwrap();
    request.id
}

async fn twenty_simultaneous_decisions_record_exactly_one(db: TestDb) {
    use gatehouse::store::{NewDecision, Transition};
    let app = test_app(&db).await;
    let (org, owner) = seed_org(&app, "Deciders", "decider").await;
    let admin = app
        .store
        .create_user(new_user(
            org.id,
            "filer",
            "filer@deciders.example",
            UserKind::Staff,
        ))
        .await
        .unwrap();
    let id = pending_request(&app, org.id, admin.id).await;
    let attempts = (0..20).map(|i| {
        let store = app.store.clone();
        let approved = i % 2 == 0;
        let mut audit = AuditEntry::new(org.id, now(), "request.approved");
        audit.request_id = Some(id.0);
        tokio::spawn(async move {
            store
                .transition_request(Transition {
                    request_id: id,
                    step: if approved {
                        gatehouse::domain::request::Step::Approve
                    } else {
                        gatehouse::domain::request::Step::Reject
                    },
                    at: now(),
                    actor_id: Some(owner.id),
                    note: None,
                    failure_reason: None,
                    decision: Some(NewDecision {
                        approver_id: owner.id,
                        approved,
                        comment: None,
                        terms_accepted: true,
                    }),
                    approver_must_be_owner: Some(owner.id),
                    approvers: vec![],
                    audit,
                    jobs: vec![],
                })
                .await
        })
    });
    let results = futures_util::future::join_all(attempts).await;
    let (won, lost): (Vec<_>, Vec<_>) = results
        .into_iter()
        .map(|r| r.unwrap())
        .partition(Result::is_ok);
    assert_eq!(won.len(), 1, "exactly one decision wins");
    for err in lost {
        assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
    }
    assert_eq!(app.store.decisions_of(&[id]).await.unwrap().len(), 1);
    let events = app.store.events_of(&[id]).await.unwrap();
    assert_eq!(events.len(), 3, "submitted, pending, and one decision");
}

async fn a_locked_owners_decision_is_refused(db: TestDb) {
    use gatehouse::domain::RequestStatus;
    use gatehouse::store::{NewDecision, Transition};
    let app = test_app(&db).await;
    let (org, owner) = seed_org(&app, "Locked", "lockedowner").await;
    let admin = app
        .store
        .create_user(new_user(
            org.id,
            "filer2",
            "filer2@locked.example",
            UserKind::Staff,
        ))
        .await
        .unwrap();
    let id = pending_request(&app, org.id, admin.id).await;
    let lock_until = now() + chrono::TimeDelta::hours(1);
    for _ in 0..5 {
        app.store
            .claim_secret_check(owner.id, now(), 5, lock_until)
            .await
            .unwrap();
    }
    let mut audit = AuditEntry::new(org.id, now(), "request.approved");
    audit.request_id = Some(id.0);
    let decided = app
        .store
        .transition_request(Transition {
            request_id: id,
            step: gatehouse::domain::request::Step::Approve,
            at: now(),
            actor_id: Some(owner.id),
            note: None,
            failure_reason: None,
            decision: Some(NewDecision {
                approver_id: owner.id,
                approved: true,
                comment: None,
                terms_accepted: true,
            }),
            approver_must_be_owner: Some(owner.id),
            approvers: vec![],
            audit,
            jobs: vec![],
        })
        .await;
    assert!(matches!(decided, Err(StoreError::Forbidden)), "{decided:?}");
    let request = app.store.request(org.id, id).await.unwrap().unwrap();
    assert_eq!(request.status, RequestStatus::PendingApproval);
}

/// Six approved license requests applied while six users are invited into the same
/// organization, all waiting for the pool they share (held meanwhile on PostgreSQL):
/// every one succeeds, none as a deadlock's victim run again, and the pool counts them all.
async fn license_applications_and_invitations_at_once_are_no_deadlock(db: TestDb) {
    const EACH: usize = 6;
    let app = test_app(&db).await;
    let (org, owner) = seed_org(&app, "Busy", "busy").await;
    let filer = app
        .store
        .create_user(new_user(
            org.id,
            "filer",
            "filer@busy.example",
            UserKind::Staff,
        ))
        .await
        .unwrap();
    let mut approved = Vec::new();
    for _ in 0..EACH {
        let id = pending_request(&app, org.id, filer.id).await;
        approve(&app, org.id, owner.id, id).await;
        approved.push(id);
    }
    let held = db
        .hold(
            "UPDATE license_pools SET used = used WHERE org_id = $1",
            org.id.0,
        )
        .await;
    let applications: Vec<_> = approved.iter().map(|id| applying(&app, *id)).collect();
    let invitations: Vec<_> = (0..EACH)
        .map(|i| {
            let store = app.store.clone();
            let user = new_user(
                org.id,
                &format!("new{i}"),
                &format!("new{i}@busy.example"),
                UserKind::Staff,
            );
            tokio::spawn(async move { store.create_user(user).await })
        })
        .collect();
    if let Some(held) = held {
        held.release_after_half_a_second().await;
    }
    for application in applications {
        application
            .await
            .unwrap()
            .expect("each application succeeds");
    }
    for invitation in invitations {
        invitation.await.unwrap().expect("each invitation succeeds");
    }
    let retried = app.store.gauges(now()).await.unwrap().writes_retried;
    assert_eq!(retried, 0, "no write was a deadlock's victim");
    let pools = app.store.license_pools(org.id).await.unwrap();
    let staff = pools
        .iter()
        .find(|p| p.product == Product::Ehr && p.kind == UserKind::Staff)
        .unwrap();
    assert_eq!(
        (staff.total, staff.used),
        (10 + 2 * EACH as i32, 2 + EACH as i32)
    );
}

/// Approves a pending request as `owner`.
async fn approve(
    app: &crate::common::TestApp,
    org: gatehouse::domain::OrgId,
    owner: gatehouse::domain::UserId,
    id: gatehouse::domain::RequestId,
) {
    use gatehouse::store::{NewDecision, Transition};
    let mut audit = AuditEntry::new(org, now(), "request.approved");
    audit.request_id = Some(id.0);
    app.store
        .transition_request(Transition {
            request_id: id,
            step: gatehouse::domain::request::Step::Approve,
            at: now(),
            actor_id: Some(owner),
            note: None,
            failure_reason: None,
            decision: Some(NewDecision {
                approver_id: owner,
                approved: true,
                comment: None,
                terms_accepted: true,
            }),
            approver_must_be_owner: Some(owner),
            approvers: vec![],
            audit,
            jobs: vec![],
        })
        .await
        .unwrap();
}

/// Two owners; one's demotion and the other's inactivation, both approved, applied at
/// once (five times over): exactly one applies each time, the other finds the last
/// active owner, and the organization always keeps one.
async fn an_owners_demotion_and_anothers_inactivation_at_once_leave_one_owner(db: TestDb) {
    use gatehouse::domain::{Change, PermissionChange};
    let app = test_app(&db).await;
    let (org, first) = seed_org(&app, "Owners", "boss").await;
    let owners = format!(
        "SELECT COUNT(*) FROM users WHERE org_id = {} AND role = 'OWNER' AND status = 'ACTIVE'",
        org.id.0
    );
    // `owner` stays an active owner throughout, demoted in even rounds, else inactivated.
    let mut owner = first.id;
    for round in 0..5 {
        let mut second = new_user(
            org.id,
            &format!("second{round}"),
            &format!("second{round}@o.example"),
            UserKind::Staff,
        );
        second.user.role = Role::Owner;
        second.user.products.clear();
        // With a password, an ACTIVE owner at once.
        second.user.password_hash =
            Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into());
        let second = app.store.create_user(second).await.unwrap().id;
        assert_eq!(db.count(&owners).await, 2);
        let (demoted, inactivated) = if round % 2 == 0 {
            (owner, second)
        } else {
            (second, owner)
        };
        let demote = Change::Permissions(PermissionChange {
            grant: vec![],
            revoke: vec![],
            role: Some(Role::Member),
        });
        let demotion = pending_change(&app, org.id, owner, Some(demoted), demote).await;
        approve(&app, org.id, owner, demotion).await;
        let inactivation =
            pending_change(&app, org.id, owner, Some(inactivated), Change::Inactivation).await;
        approve(&app, org.id, owner, inactivation).await;
        let applied = [demotion, inactivation].map(|id| applying(&app, id));
        let mut outcomes = Vec::new();
        for application in applied {
            outcomes.push(application.await.unwrap());
        }
        let done = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(done, 1, "exactly one applies: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .any(|o| matches!(o, Err(StoreError::LastOwner))),
            "{outcomes:?}"
        );
        assert_eq!(db.count(&owners).await, 1, "one active owner left");
        // The survivor is the one whose change failed, as the workflow records it.
        let failed = if outcomes[0].is_ok() {
            inactivation
        } else {
            demotion
        };
        owner = if outcomes[0].is_ok() {
            inactivated
        } else {
            demoted
        };
        let mut audit = AuditEntry::new(org.id, now(), "request.failed");
        audit.request_id = Some(failed.0);
        app.store
            .transition_request(gatehouse::store::Transition {
                request_id: failed,
                step: gatehouse::domain::request::Step::FailToApply,
                at: now(),
                actor_id: None,
                note: None,
                failure_reason: Some("the last active owner".into()),
                decision: None,
                approver_must_be_owner: None,
                approvers: vec![],
                audit,
                jobs: vec![],
            })
            .await
            .unwrap();
    }
}

/// Applies an approved request in a task of its own, now.
fn applying(
    app: &crate::common::TestApp,
    id: gatehouse::domain::RequestId,
) -> tokio::task::JoinHandle<Result<gatehouse::domain::AccountRequest, StoreError>> {
    let store = app.store.clone();
    tokio::spawn(async move {
        let application = gatehouse::store::Application {
            request_id: id,
            at: now(),
            jobs: vec![],
        };
        store.apply_request(application).await
    })
}

/// Filing looks for an open request of the same kind about the same user through the
/// partial index of open requests (its statuses written out as the index names them; a
/// unit test ties that list to the domain's), not through all of the organization's
/// requests.
async fn the_open_request_check_reads_the_open_requests_index(db: TestDb) {
    let _app = test_app(&db).await;
    let check = "SELECT id FROM requests r WHERE r.org_id = 1 AND r.kind = 'INACTIVATE_USER' \
                 AND r.subject_id = 2 AND r.status IN ('SUBMITTED', 'PENDING_APPROVAL', 'APPROVED')";
    let plan = db.plan(check).await;
    assert!(
        plan.contains("requests_open_subject_key"),
        "{check}\nis planned as\n{plan}"
    );
}
