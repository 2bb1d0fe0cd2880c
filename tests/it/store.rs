//! The store conformance suite: every case runs on SQLite and on PostgreSQL.

use crate::common::{TestDb, seed_org, test_app};
use gatehouse::domain::{Permission, Product, Role, UserKind, UserStatus, now};
use gatehouse::store::{AuditEntry, NewUser, StoreError, UserCreation, UserSearch, UserUpdate};
use gatehouse_workers::{Job, SetupPurpose};

crate::on_both_databases!(
    organization_is_created_with_pools_and_owner,
    owner_without_password_is_invited_and_setup_email_is_queued,
    owner_license_shortfall_creates_nothing,
    practices_are_unique_per_organization,
    usernames_and_emails_are_unique_across_organizations,
    no_license_changes_nothing,
    last_free_license_goes_to_exactly_one_of_twenty,
    users_of_other_organizations_are_not_found,
    audit_chain_verifies_and_names_altered_event,
    audit_chain_names_removed_event,
    audit_chain_names_reordered_events,
    audit_chain_catches_removal_at_the_end,
    sessions_are_found_by_token_until_ended,
    twenty_simultaneous_decisions_record_exactly_one,
    compacting_keeps_every_row,
    search_totals_follow_every_change,
    trigram_counts_match_the_postings,
    prefix_searches_agree_whichever_index_they_read,
    simultaneous_secret_checks_claim_at_most_the_threshold,
    a_sign_in_verified_before_a_password_change_starts_no_session,
    a_right_secret_after_others_locked_the_account_is_refused,
    an_email_is_claimed_by_one_run_at_a_time,
    a_locked_owners_decision_is_refused,
);

fn new_user(
    org: gatehouse::domain::OrgId,
    username: &str,
    email: &str,
    kind: UserKind,
) -> UserCreation {
    let at = now();
    UserCreation {
        user: NewUser {
            org_id: org,
            username: username.into(),
            email: email.into(),
            first_name: "Test".into(),
            last_name: "User".into(),
            mobile: None,
            kind,
            role: Role::Member,
            products: vec![Product::Ehr],
            permissions: vec![Permission::Scheduling],
            practice_ids: vec![],
            password_hash: None,
            encryption_key: vec![7; 32],
            created_at: at,
        },
        audit: AuditEntry::new(org, at, "user.invited"),
        setup_email: Some(gatehouse::app::jobs::invitation_email),
    }
}

async fn organization_is_created_with_pools_and_owner(db: TestDb) {
    let app = test_app(&db).await;
    let (org, owner) = seed_org(&app, "Sunrise Clinic", "olivia").await;
    assert_eq!(org.name, "Sunrise Clinic");
    assert_eq!(owner.org_id, org.id);
    assert_eq!(owner.role, Role::Owner);
    assert_eq!(owner.status, UserStatus::Active);
    assert_eq!(app.store.organization(org.id).await.unwrap(), org);
    assert_eq!(app.store.user(org.id, owner.id).await.unwrap(), owner);
    assert_eq!(
        app.store.user_products(owner.id).await.unwrap(),
        vec![Product::Ehr]
    );
    let pools = app.store.license_pools(org.id).await.unwrap();
    let staff = pools.iter().find(|p| p.kind == UserKind::Staff).unwrap();
    let providers = pools.iter().find(|p| p.kind == UserKind::Provider).unwrap();
    assert_eq!(
        (staff.total, staff.used),
        (10, 1),
        "the owner holds a staff EHR license"
    );
    assert_eq!((providers.total, providers.used), (5, 0));
}

async fn owner_without_password_is_invited_and_setup_email_is_queued(db: TestDb) {
    let app = test_app(&db).await;
    let input = gatehouse::app::directory::organization::CreateOrganization {
        name: "Lakeside".into(),
        owner_username: "lena".into(),
        owner_email: "lena@lakeside.example".into(),
        owner_first_name: "Lena".into(),
        owner_last_name: "Lake".into(),
        owner_kind: UserKind::Provider,
        licenses: vec![(Product::Ehr, UserKind::Provider, 1)],
        owner_password: None,
    };
    let (_, owner) = app.directory().create_organization(input).await.unwrap();
    assert_eq!(owner.status, UserStatus::Invited);
    let jobs = app.store.pending_jobs(10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].message.kind, "account_setup_email");
    assert_eq!(
        serde_json::from_str::<Job>(&jobs[0].message.payload).unwrap(),
        Job::AccountSetupEmail {
            user_id: owner.id.0,
            purpose: SetupPurpose::Invitation,
            self_requested: false
        }
    );
}

async fn owner_license_shortfall_creates_nothing(db: TestDb) {
    let app = test_app(&db).await;
    let input = gatehouse::app::directory::organization::CreateOrganization {
        name: "Short".into(),
        owner_username: "sam".into(),
        owner_email: "sam@short.example".into(),
        owner_first_name: "Sam".into(),
        owner_last_name: "Short".into(),
        owner_kind: UserKind::Staff,
        licenses: vec![(Product::Ehr, UserKind::Provider, 3)],
        owner_password: None,
    };
    let err = app
        .directory()
        .create_organization(input)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no EHR license"), "{err}");
    assert!(app.store.organization_ids().await.unwrap().is_empty());
    assert!(
        app.store
            .credentials_by_username("sam")
            .await
            .unwrap()
            .is_none()
    );
    assert!(app.store.pending_jobs(10).await.unwrap().is_empty());
}

async fn practices_are_unique_per_organization(db: TestDb) {
    let app = test_app(&db).await;
    let (a, _) = seed_org(&app, "Alpha", "alpha.owner").await;
    let (b, _) = seed_org(&app, "Beta", "beta.owner").await;
    let audit = |org| AuditEntry::new(org, now(), "practice.created");
    let p = app
        .store
        .create_practice(a.id, "Main Street", audit(a.id))
        .await
        .unwrap();
    assert_eq!(p.name, "Main Street");
    let dup = app
        .store
        .create_practice(a.id, "main street", audit(a.id))
        .await
        .unwrap_err();
    assert!(
        matches!(dup, StoreError::AlreadyExists { field: "name" }),
        "{dup:?}"
    );
    app.store
        .create_practice(b.id, "Main Street", audit(b.id))
        .await
        .unwrap();
    assert_eq!(app.store.practices(a.id).await.unwrap(), vec![p]);
}

async fn usernames_and_emails_are_unique_across_organizations(db: TestDb) {
    let app = test_app(&db).await;
    let (a, _) = seed_org(&app, "Alpha", "alpha.owner").await;
    let (b, _) = seed_org(&app, "Beta", "beta.owner").await;
    app.store
        .create_user(new_user(
            a.id,
            "jdoe",
            "jdoe@alpha.example",
            UserKind::Staff,
        ))
        .await
        .unwrap();
    let err = app
        .store
        .create_user(new_user(
            b.id,
            "jdoe",
            "other@beta.example",
            UserKind::Staff,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { field: "username" }),
        "{err:?}"
    );
    let err = app
        .store
        .create_user(new_user(
            b.id,
            "jdoe2",
            "JDoe@Alpha.example",
            UserKind::Staff,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { field: "email" }),
        "{err:?}"
    );
    let pools = app.store.license_pools(b.id).await.unwrap();
    assert!(
        pools
            .iter()
            .all(|p| p.used == i32::from(p.kind == UserKind::Staff)),
        "failed creations took no license"
    );
}

async fn no_license_changes_nothing(db: TestDb) {
    let app = test_app(&db).await;
    let (org, _) = seed_org(&app, "Alpha", "alpha.owner").await;
    let mut creation = new_user(org.id, "billy", "billy@alpha.example", UserKind::Provider);
    creation.user.products = vec![Product::Ehr, Product::Billing];
    let err = app.store.create_user(creation).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NoLicense {
                product: Product::Billing,
                kind: UserKind::Provider
            }
        ),
        "{err:?}"
    );
    assert!(
        app.store
            .credentials_by_username("billy")
            .await
            .unwrap()
            .is_none()
    );
    let pools = app.store.license_pools(org.id).await.unwrap();
    let providers = pools.iter().find(|p| p.kind == UserKind::Provider).unwrap();
    assert_eq!(
        providers.used, 0,
        "the EHR license taken before the failure was given back"
    );
}

async fn last_free_license_goes_to_exactly_one_of_twenty(db: TestDb) {
    let app = test_app(&db).await;
    let (org, _) = seed_org(&app, "Alpha", "alpha.owner").await;
    // Four of five provider licenses are taken; twenty invitations race for the last.
    for i in 0..4 {
        let email = format!("p{i}@alpha.example");
        app.store
            .create_user(new_user(
                org.id,
                &format!("p{i}"),
                &email,
                UserKind::Provider,
            ))
            .await
            .unwrap();
    }
    let attempts = (0..20).map(|i| {
        let store = app.store.clone();
        let creation = new_user(
            org.id,
            &format!("racer{i}"),
            &format!("racer{i}@alpha.example"),
            UserKind::Provider,
        );
        tokio::spawn(async move { store.create_user(creation).await })
    });
    let results = futures_util::future::join_all(attempts).await;
    let (won, lost): (Vec<_>, Vec<_>) = results
        .into_iter()
        .map(|r| r.unwrap())
        .partition(Result::is_ok);
    assert_eq!(won.len(), 1, "exactly one invitation wins the last license");
    for err in lost {
        assert!(matches!(err, Err(StoreError::NoLicense { .. })), "{err:?}");
    }
    let pools = app.store.license_pools(org.id).await.unwrap();
    let providers = pools.iter().find(|p| p.kind == UserKind::Provider).unwrap();
    assert_eq!((providers.total, providers.used), (5, 5));
}

async fn users_of_other_organizations_are_not_found(db: TestDb) {
    let app = test_app(&db).await;
    let (a, owner_a) = seed_org(&app, "Alpha", "alpha.owner").await;
    let (b, _) = seed_org(&app, "Beta", "beta.owner").await;
    assert!(app.store.user(a.id, owner_a.id).await.is_ok());
    assert!(matches!(
        app.store.user(b.id, owner_a.id).await,
        Err(StoreError::NotFound)
    ));
}

/// Appends a few events and returns the app and the organization.
async fn chain_of_five(db: &TestDb) -> (crate::common::TestApp, gatehouse::domain::OrgId) {
    let app = test_app(db).await;
    let (org, owner) = seed_org(&app, "Alpha", "alpha.owner").await;
    for i in 0..5 {
        let entry = AuditEntry::new(org.id, now(), "user.updated")
            .actor(Some(owner.id))
            .subject(owner.id)
            .ip(Some("192.0.2.7".into()))
            .details(serde_json::json!({ "n": i }));
        let record = app.store.append_audit(entry).await.unwrap();
        assert_eq!(record.hash.len(), 32);
    }
    let report = app.audit().verify().await.unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert!(report.events >= 5);
    (app, org.id)
}

async fn audit_chain_verifies_and_names_altered_event(db: TestDb) {
    let (app, org) = chain_of_five(&db).await;
    let target: i64 = app.store.audit_chain_page(org, 0, 100).await.unwrap()[4].id;
    db.execute(&format!(
        "UPDATE audit_events SET details = '{{\"n\":42}}' WHERE id = {target}"
    ))
    .await;
    let broken = app
        .audit()
        .verify()
        .await
        .unwrap()
        .broken
        .expect("alteration found");
    assert_eq!(broken.event_id, target);
    assert!(broken.problem.contains("altered"), "{broken}");
}

async fn audit_chain_names_removed_event(db: TestDb) {
    let (app, org) = chain_of_five(&db).await;
    let events = app.store.audit_chain_page(org, 0, 100).await.unwrap();
    db.execute(&format!(
        "DELETE FROM audit_events WHERE id = {}",
        events[3].id
    ))
    .await;
    let broken = app
        .audit()
        .verify()
        .await
        .unwrap()
        .broken
        .expect("removal found");
    assert_eq!(
        broken.event_id, events[4].id,
        "the event after the gap is named"
    );
    assert!(broken.problem.contains("removed"), "{broken}");
}

async fn audit_chain_names_reordered_events(db: TestDb) {
    let (app, org) = chain_of_five(&db).await;
    let events = app.store.audit_chain_page(org, 0, 100).await.unwrap();
    let (x, y) = (&events[2], &events[3]);
    // Swap the two events' places in the sequence.
    db.execute(&format!(
        "UPDATE audit_events SET seq = -1 WHERE id = {}",
        x.id
    ))
    .await;
    db.execute(&format!(
        "UPDATE audit_events SET seq = {} WHERE id = {}",
        x.seq, y.id
    ))
    .await;
    db.execute(&format!(
        "UPDATE audit_events SET seq = {} WHERE id = {}",
        y.seq, x.id
    ))
    .await;
    let broken = app
        .audit()
        .verify()
        .await
        .unwrap()
        .broken
        .expect("reordering found");
    assert_eq!(broken.event_id, y.id);
}

async fn audit_chain_catches_removal_at_the_end(db: TestDb) {
    let (app, org) = chain_of_five(&db).await;
    let events = app.store.audit_chain_page(org, 0, 100).await.unwrap();
    db.execute(&format!(
        "DELETE FROM audit_events WHERE id = {}",
        events.last().unwrap().id
    ))
    .await;
    let broken = app
        .audit()
        .verify()
        .await
        .unwrap()
        .broken
        .expect("truncation found");
    assert!(broken.problem.contains("removed from the end"), "{broken}");
}

async fn sessions_are_found_by_token_until_ended(db: TestDb) {
    use std::time::Duration;
    let app = test_app(&db).await;
    let (org, owner) = seed_org(&app, "Alpha", "alpha.owner").await;
    let at = now();
    let session = gatehouse::store::NewSession {
        user_id: owner.id,
        token_hash: vec![1; 32],
        created_at: at,
        expires_at: at + chrono::TimeDelta::hours(12),
        user_agent: Some("test".into()),
        ip: Some("192.0.2.1".into()),
        guard: None,
    };
    let id = app
        .store
        .start_session(session, AuditEntry::new(org.id, at, "session.login"))
        .await
        .unwrap();
    let found = app
        .store
        .session_by_token(&[1; 32], now(), Duration::from_secs(1800))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.session_id, found.user.id), (id, owner.id));
    assert!(found.user.last_login_at.is_some());
    assert!(
        app.store
            .session_by_token(&[2; 32], now(), Duration::from_secs(1800))
            .await
            .unwrap()
            .is_none()
    );
    let later = now() + chrono::TimeDelta::minutes(31);
    assert!(
        app.store
            .session_by_token(&[1; 32], later, Duration::from_secs(1800))
            .await
            .unwrap()
            .is_none(),
        "idle"
    );
    let past_max = now() + chrono::TimeDelta::hours(13);
    assert!(
        app.store
            .session_by_token(&[1; 32], past_max, Duration::from_secs(86400))
            .await
            .unwrap()
            .is_none(),
        "max"
    );
    app.store
        .end_session(id, AuditEntry::new(org.id, now(), "session.logout"))
        .await
        .unwrap();
    assert!(
        app.store
            .session_by_token(&[1; 32], now(), Duration::from_secs(1800))
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        app.store
            .end_session(id, AuditEntry::new(org.id, now(), "session.logout"))
            .await,
        Err(StoreError::Conflict(_))
    ));
}

/// Files a license request as `requester` and moves it to PENDING_APPROVAL.
async fn pending_request(
    app: &crate::common::TestApp,
    org: gatehouse::domain::OrgId,
    requester: gatehouse::domain::UserId,
) -> gatehouse::domain::RequestId {
    use gatehouse::domain::{Change, LicenseChange};
    use gatehouse::store::{Filing, NewRequest, Transition};
    let at = now();
    let new = NewRequest {
        route: gatehouse::app::jobs::route_job,
        org_id: org,
        requested_by: requester,
        subject_id: None,
        justification: None,
        change: Change::Licenses(LicenseChange {
            product: Product::Ehr,
            kind: UserKind::Staff,
            quantity: 2,
        }),
        terms_accepted: false,
        filed_by_owner: false,
        at,
        expires_at: at + chrono::TimeDelta::days(14),
        idempotency_key: None,
        idempotency_since: at,
        audit: AuditEntry::new(org, at, "request.submitted"),
    };
    let Filing::New(request) = app.store.file_request(new).await.unwrap() else {
        panic!("a new request");
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

async fn compacting_keeps_every_row(db: TestDb) {
    let app = test_app(&db).await;
    seed_org(&app, "Compact", "compact.owner").await;
    for _ in 0..3 {
        app.store.compact().await.expect("compacting works");
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 1);
}

/// `n` staff users named "Test User", usernames `prefix0`, `prefix1`, ...
async fn staff(
    app: &crate::common::TestApp,
    org: gatehouse::domain::OrgId,
    prefix: &str,
    n: usize,
) -> Vec<gatehouse::domain::UserId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let username = format!("{prefix}{i}");
        let email = format!("{username}@a.example");
        let creation = new_user(org, &username, &email, UserKind::Staff);
        ids.push(app.store.create_user(creation).await.unwrap().id);
    }
    ids
}

/// The total of a search for users named "Test", asked with a one-user page so that
/// it has to be counted (or remembered).
async fn total(app: &crate::common::TestApp, search: UserSearch) -> i64 {
    let page = app
        .store
        .search_users(UserSearch {
            limit: 1,
            with_total: true,
            now: now(),
            ..search
        })
        .await
        .unwrap();
    page.total.expect("a total")
}

async fn search_totals_follow_every_change(db: TestDb) {
    let app = test_app(&db).await;
    let (org, _) = seed_org(&app, "Alpha", "alpha.owner").await;
    let named = || UserSearch {
        org_id: org.id,
        name: Some("test".into()),
        ..Default::default()
    };
    let ids = staff(&app, org.id, "t", 3).await;
    assert_eq!(total(&app, named()).await, 3);
    assert_eq!(total(&app, named()).await, 3, "asked again");

    // A new user.
    app.store
        .create_user(new_user(org.id, "t3", "t3@a.example", UserKind::Staff))
        .await
        .unwrap();
    assert_eq!(total(&app, named()).await, 4, "after an invitation");

    // A new name, and a practice.
    let practice = app
        .store
        .create_practice(
            org.id,
            "North",
            AuditEntry::new(org.id, now(), "practice.created"),
        )
        .await
        .unwrap();
    let in_practice = || UserSearch {
        practice_id: Some(practice.id),
        ..named()
    };
    assert_eq!(total(&app, in_practice()).await, 0);
    app.store
        .update_user(UserUpdate {
            org_id: org.id,
            user_id: ids[0],
            first_name: Some("Other".into()),
            last_name: Some("Person".into()),
            mobile: None,
            practice_ids: None,
            audit: AuditEntry::new(org.id, now(), "user.updated"),
        })
        .await
        .unwrap();
    assert_eq!(total(&app, named()).await, 3, "after a rename");
    app.store
        .update_user(UserUpdate {
            org_id: org.id,
            user_id: ids[1],
            first_name: None,
            last_name: None,
            mobile: None,
            practice_ids: Some(vec![practice.id]),
            audit: AuditEntry::new(org.id, now(), "user.updated"),
        })
        .await
        .unwrap();
    assert_eq!(
        total(&app, in_practice()).await,
        1,
        "after joining a practice"
    );

    // A status, changed behind the application's back: still seen.
    let invited = || UserSearch {
        status: Some(UserStatus::Invited),
        ..named()
    };
    assert_eq!(total(&app, invited()).await, 3);
    db.execute(&format!(
        "UPDATE users SET status = 'INACTIVE' WHERE id = {}",
        ids[2].0
    ))
    .await;
    assert_eq!(total(&app, invited()).await, 2, "after an inactivation");

    // Another organization's changes are its own.
    let (other, _) = seed_org(&app, "Beta", "beta.owner").await;
    app.store
        .create_user(new_user(other.id, "b0", "b0@b.example", UserKind::Staff))
        .await
        .unwrap();
    assert_eq!(total(&app, named()).await, 3);
    assert_eq!(
        total(
            &app,
            UserSearch {
                org_id: other.id,
                ..named()
            }
        )
        .await,
        1
    );
}

async fn trigram_counts_match_the_postings(db: TestDb) {
    let app = test_app(&db).await;
    let (org, _) = seed_org(&app, "Alpha", "alpha.owner").await;
    let ids = staff(&app, org.id, "u", 5).await;
    app.store
        .update_user(UserUpdate {
            org_id: org.id,
            user_id: ids[0],
            first_name: Some("Zygmunt".into()),
            last_name: Some("Quorra".into()),
            mobile: Some(Some("+15035550199".into())),
            practice_ids: None,
            audit: AuditEntry::new(org.id, now(), "user.updated"),
        })
        .await
        .unwrap();
    let wrong = db
        .count(
            "SELECT COUNT(*) FROM (SELECT org_id, gram, COUNT(*) AS n FROM user_search_grams \
             GROUP BY org_id, gram) p LEFT JOIN user_search_gram_counts c \
             ON c.org_id = p.org_id AND c.gram = p.gram WHERE COALESCE(c.users, -1) <> p.n",
        )
        .await;
    assert_eq!(wrong, 0, "every trigram counted as often as it is posted");
    let stale = db
        .count(
            "SELECT COUNT(*) FROM user_search_gram_counts c WHERE c.users <> 0 AND NOT EXISTS \
             (SELECT 1 FROM user_search_grams p WHERE p.org_id = c.org_id AND p.gram = c.gram)",
        )
        .await;
    assert_eq!(stale, 0, "no trigram counted that is no longer posted");
    // "tes" (of "Test") lost one user; "zyg" gained one; a trigram nobody has finds nobody.
    let page = app
        .store
        .search_users(UserSearch {
            org_id: org.id,
            name: Some("zygmunt q".into()),
            limit: 10,
            with_total: true,
            now: now(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((page.users.len(), page.total), (1, Some(1)));
    let none = app
        .store
        .search_users(UserSearch {
            org_id: org.id,
            name: Some("xxq".into()),
            limit: 10,
            with_total: true,
            now: now(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((none.users.len(), none.total), (0, Some(0)));
}

/// Username and email starts and mobile ends are read from their own index when few
/// users share them and from the trigram postings when many do: the answers agree.
async fn prefix_searches_agree_whichever_index_they_read(db: TestDb) {
    let app = test_app(&db).await;
    let (org, _) = app
        .directory()
        .create_organization(
            gatehouse::app::directory::organization::CreateOrganization {
                name: "Large".into(),
                owner_username: "large.owner".into(),
                owner_email: "owner@large.example".into(),
                owner_first_name: "Olivia".into(),
                owner_last_name: "Owner".into(),
                owner_kind: UserKind::Staff,
                licenses: vec![(Product::Ehr, UserKind::Staff, 1100)],
                owner_password: None,
            },
        )
        .await
        .unwrap();
    for i in 0..1050 {
        let mut creation = new_user(
            org.id,
            &format!("pat{i:04}"),
            &format!("Pat{i:04}@a.example"),
            UserKind::Staff,
        );
        creation.user.last_name = format!("Family {}", (i * 7) % 1050);
        creation.user.mobile = Some(format!("+1503555{i:04}"));
        app.store.create_user(creation).await.unwrap();
    }
    // Every match, page by page, in directory order.
    async fn all(app: &crate::common::TestApp, search: UserSearch) -> (Vec<String>, i64) {
        let (mut names, mut after, mut total) = (Vec::new(), None, None);
        loop {
            let page = app
                .store
                .search_users(UserSearch {
                    after: after.clone(),
                    limit: 100,
                    with_total: true,
                    now: now(),
                    ..search.clone()
                })
                .await
                .unwrap();
            total = total.or(page.total);
            assert_eq!(page.total, total, "the same total on every page");
            let Some((key, _)) = page.users.last() else {
                break;
            };
            after = Some(key.clone());
            let keys: Vec<_> = page.users.iter().map(|(k, _)| k.clone()).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "in order");
            names.extend(page.users.into_iter().map(|(_, u)| u.username));
        }
        (names, total.unwrap())
    }
    let search = |f: fn(&mut UserSearch)| {
        let mut s = UserSearch {
            org_id: org.id,
            ..Default::default()
        };
        f(&mut s);
        s
    };
    // Many share "pat" (postings), a thousand "pat0" (the field's index).
    let (many, total) = all(&app, search(|s| s.username = Some("pat".into()))).await;
    assert_eq!((many.len(), total), (1050, 1050));
    let (few, total) = all(&app, search(|s| s.username = Some("pat0".into()))).await;
    assert_eq!((few.len(), total), (1000, 1000));
    let expected: Vec<_> = many
        .iter()
        .filter(|u| u.starts_with("pat0"))
        .cloned()
        .collect();
    assert_eq!(few, expected, "the same users in the same order");
    let (emails, total) = all(&app, search(|s| s.email = Some("pat10".into()))).await;
    assert_eq!((emails.len(), total), (50, 50));
    let (by_mobile, total) = all(&app, search(|s| s.mobile = Some("5551049".into()))).await;
    assert_eq!((by_mobile, total), (vec!["pat1049".to_owned()], 1));
    let (none, total) = all(&app, search(|s| s.username = Some("pax".into()))).await;
    assert_eq!((none.len(), total), (0, 0));
    // Other conditions still apply to a field range.
    db.execute("UPDATE users SET status = 'INACTIVE' WHERE username = 'pat0007'")
        .await;
    let (inactive, total) = all(
        &app,
        search(|s| {
            s.username = Some("pat00".into());
            s.status = Some(UserStatus::Inactive);
        }),
    )
    .await;
    assert_eq!((inactive, total), (vec!["pat0007".to_owned()], 1));
}

async fn simultaneous_secret_checks_claim_at_most_the_threshold(db: TestDb) {
    let app = test_app(&db).await;
    let (_, owner) = seed_org(&app, "Claims", "claimer").await;
    let lock_until = now() + chrono::TimeDelta::hours(1);
    let claims = (0..25).map(|_| {
        let store = app.store.clone();
        tokio::spawn(async move {
            store
                .claim_secret_check(owner.id, now(), 5, lock_until)
                .await
                .unwrap()
        })
    });
    let mut granted = Vec::new();
    for claim in claims {
        if let Some(check) = claim.await.unwrap() {
            granted.push(check);
        }
    }
    assert_eq!(granted.len(), 5, "exactly the threshold may be verified");
    assert_eq!(
        granted.iter().filter(|c| c.check_lock.is_some()).count(),
        1,
        "the fifth locked the account provisionally"
    );
    assert!(granted.iter().all(|c| c.password_hash.is_some()));
    let user = app.store.user(owner.org_id, owner.id).await.unwrap();
    assert!(user.is_locked(now()));
    // Once the lock has run out, counting starts over.
    let later = lock_until + chrono::TimeDelta::seconds(1);
    let again = app
        .store
        .claim_secret_check(owner.id, later, 5, later + chrono::TimeDelta::hours(1))
        .await
        .unwrap()
        .expect("claimable after the lock");
    assert_eq!(again.check_lock, None);
}

async fn a_sign_in_verified_before_a_password_change_starts_no_session(db: TestDb) {
    use gatehouse::store::{NewSession, PasswordChange, SignInGuard};
    let app = test_app(&db).await;
    let (org, owner) = seed_org(&app, "Race", "racer").await;
    let at = now();
    let check = app
        .store
        .claim_secret_check(owner.id, at, 5, at + chrono::TimeDelta::hours(1))
        .await
        .unwrap()
        .unwrap();
    let verified = check.password_hash.clone().unwrap();
    // Meanwhile the password is changed.
    app.store
        .set_password(PasswordChange {
            user_id: owner.id,
            replaces: None,
            hash: "$argon2id$v=19$m=64,t=1,p=1$bmV3c2FsdA$bmV3aGFzaA".into(),
            change_required: false,
            audit: AuditEntry::new(org.id, now(), "user.password_changed"),
            email: None,
        })
        .await
        .unwrap();
    let session = NewSession {
        user_id: owner.id,
        token_hash: vec![9; 32],
        created_at: now(),
        expires_at: now() + chrono::TimeDelta::hours(12),
        user_agent: None,
        ip: None,
        guard: Some(SignInGuard {
            verified_hash: verified,
            check_lock: None,
            rehash: Some("$argon2id$v=19$m=19456,t=2,p=1$cmVoYXNo$cmVoYXNo".into()),
        }),
    };
    let started = app
        .store
        .start_session(session, AuditEntry::new(org.id, now(), "session.login"))
        .await;
    assert!(
        matches!(started, Err(StoreError::Conflict(_))),
        "{started:?}"
    );
    let (_, hash) = app
        .store
        .credentials_by_username("racer")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        hash.as_deref(),
        Some("$argon2id$v=19$m=64,t=1,p=1$bmV3c2FsdA$bmV3aGFzaA"),
        "the rehash did not overwrite the new password"
    );
    assert!(
        app.store
            .session_by_token(&[9; 32], now(), std::time::Duration::from_secs(1800))
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_right_secret_after_others_locked_the_account_is_refused(db: TestDb) {
    let app = test_app(&db).await;
    let (_, owner) = seed_org(&app, "Late", "latecomer").await;
    let lock_until = now() + chrono::TimeDelta::hours(1);
    let first = app
        .store
        .claim_secret_check(owner.id, now(), 5, lock_until)
        .await
        .unwrap()
        .unwrap();
    for _ in 0..4 {
        app.store
            .claim_secret_check(owner.id, now(), 5, lock_until)
            .await
            .unwrap()
            .unwrap();
    }
    // The first check turns out right, but the others locked the account meanwhile.
    assert!(
        !app.store
            .secret_check_passed(owner.id, first.check_lock, now())
            .await
            .unwrap()
    );
    let user = app.store.user(owner.org_id, owner.id).await.unwrap();
    assert!(user.is_locked(now()), "the lock stands");
}

async fn an_email_is_claimed_by_one_run_at_a_time(db: TestDb) {
    let app = test_app(&db).await;
    let at = now();
    let stale = at - chrono::TimeDelta::seconds(15);
    let claims = (0..10).map(|_| {
        let store = app.store.clone();
        tokio::spawn(async move { store.claim_email("email-1", at, stale).await.unwrap() })
    });
    let mut won = 0;
    for claim in claims {
        won += usize::from(claim.await.unwrap());
    }
    assert_eq!(won, 1);
    // A claim left unrenewed past its lease is taken over.
    let later = at + chrono::TimeDelta::seconds(20);
    assert!(
        app.store
            .claim_email("email-1", later, later - chrono::TimeDelta::seconds(15))
            .await
            .unwrap()
    );
    app.store.release_email_claim("email-1").await.unwrap();
    assert!(
        app.store
            .claim_email("email-1", later, stale)
            .await
            .unwrap()
    );
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
