//! Sessions, secret checks under concurrency and email claims, on both databases.

use super::*;
use gatehouse::domain::User;
use gatehouse::store::{FailedCheck, LockNotice, SecretCheck, SecretClaim};

crate::on_both_databases!(
    sessions_are_found_by_token_until_ended,
    simultaneous_secret_checks_claim_at_most_the_threshold,
    a_sign_in_verified_before_a_password_change_starts_no_session,
    a_right_secret_after_others_locked_the_account_is_refused,
    a_right_secret_claimed_before_a_pending_lock_ends_it,
    an_email_is_claimed_by_one_run_at_a_time,
    a_setup_form_names_its_link_until_it_expires_or_the_link_is_used,
);

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
    let (id, signed_in) = app
        .store
        .start_session(session, AuditEntry::new(org.id, at, "session.login"))
        .await
        .unwrap();
    assert_eq!(signed_in.id, owner.id);
    assert_eq!(signed_in.last_login_at, Some(at));
    assert_eq!(signed_in.failed_logins, 0);
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
        match claim.await.unwrap() {
            SecretClaim::Granted(check) => granted.push(check),
            SecretClaim::Pending => {}
            SecretClaim::Refused => panic!("refused while the lock is pending"),
        }
    }
    assert_eq!(granted.len(), 5, "exactly the threshold may be verified");
    assert_eq!(
        granted.iter().filter(|c| c.check_lock.is_some()).count(),
        1,
        "the fifth locked the account pending the outcome"
    );
    assert!(granted.iter().all(|c| c.password_hash.is_some()));
    let user = app.store.user(owner.org_id, owner.id).await.unwrap();
    assert!(user.is_locked(now()));
    // The fifth secret is wrong: the lock is real, and the others are refused.
    let fifth = granted.iter().find(|c| c.check_lock.is_some()).unwrap();
    assert!(
        app.store
            .secret_check_failed(failure(&owner, fifth))
            .await
            .unwrap()
    );
    assert!(matches!(
        app.store
            .claim_secret_check(owner.id, now(), 5, lock_until)
            .await
            .unwrap(),
        SecretClaim::Refused
    ));
    // Once the lock has run out, counting starts over.
    let later = lock_until + chrono::TimeDelta::seconds(1);
    let SecretClaim::Granted(again) = app
        .store
        .claim_secret_check(owner.id, later, 5, later + chrono::TimeDelta::hours(1))
        .await
        .unwrap()
    else {
        panic!("claimable after the lock")
    };
    assert_eq!(again.check_lock, None);
}

/// A wrong secret of `user`'s check, to record.
fn failure(user: &User, check: &SecretCheck) -> FailedCheck {
    let at = now();
    let email = gatehouse_workers::Job::Email {
        org_id: Some(user.org_id.0),
        to_name: user.username.clone(),
        to_address: user.email.clone(),
        email: gatehouse_workers::Email::PasswordChanged {
            name: user.username.clone(),
            username: user.username.clone(),
            how: "a test".into(),
        },
    };
    FailedCheck {
        user_id: user.id,
        check_lock: check.check_lock,
        lock_until: at + chrono::TimeDelta::hours(1),
        audit: AuditEntry::new(user.org_id, at, "session.login_failed"),
        lock: LockNotice {
            audit: AuditEntry::new(user.org_id, at, "user.locked"),
            email: email.into(),
        },
    }
}

/// The user's next `n` claims, each granted.
async fn claims(app: &crate::common::TestApp, user: &User, n: usize) -> Vec<SecretCheck> {
    let lock_until = now() + chrono::TimeDelta::hours(1);
    let mut checks = Vec::new();
    for _ in 0..n {
        match app
            .store
            .claim_secret_check(user.id, now(), 5, lock_until)
            .await
            .unwrap()
        {
            SecretClaim::Granted(check) => checks.push(check),
            other => panic!("not granted: {other:?}"),
        }
    }
    checks
}

async fn a_sign_in_verified_before_a_password_change_starts_no_session(db: TestDb) {
    use gatehouse::store::{NewSession, PasswordChange, SignInGuard};
    let app = test_app(&db).await;
    let (org, owner) = seed_org(&app, "Race", "racer").await;
    let check = claims(&app, &owner, 1).await.remove(0);
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
    let checks = claims(&app, &owner, 5).await;
    let (first, fifth) = (&checks[0], &checks[4]);
    assert!(
        app.store
            .secret_check_failed(failure(&owner, fifth))
            .await
            .unwrap()
    );
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

async fn a_right_secret_claimed_before_a_pending_lock_ends_it(db: TestDb) {
    let app = test_app(&db).await;
    let (_, owner) = seed_org(&app, "Early", "early.bird").await;
    let checks = claims(&app, &owner, 5).await;
    let (first, fifth) = (&checks[0], &checks[4]);
    // The first check turns out right while the fifth's lock waits for its outcome: the
    // count starts over and the lock ends.
    assert!(
        app.store
            .secret_check_passed(owner.id, first.check_lock, now())
            .await
            .unwrap()
    );
    let user = app.store.user(owner.org_id, owner.id).await.unwrap();
    assert!(!user.is_locked(now()));
    // The fifth then proves wrong: it no longer locks anything.
    assert!(
        !app.store
            .secret_check_failed(failure(&owner, fifth))
            .await
            .unwrap()
    );
    let user = app.store.user(owner.org_id, owner.id).await.unwrap();
    assert!(!user.is_locked(now()));
    assert_eq!(
        claims(&app, &owner, 4).await.len(),
        4,
        "counting started over"
    );
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
    // Once recorded as sent, the email is never claimed again: not by a run that checked
    // "not handled" a moment before, nor after the lease has long run out.
    app.store
        .record_email(gatehouse::store::EmailDelivery {
            key: "email-1".into(),
            recipient: "one@example.com".into(),
            template: "password_changed".into(),
            failure: None,
            at: later,
        })
        .await
        .unwrap();
    let much_later = later + chrono::TimeDelta::hours(1);
    assert!(
        !app.store
            .claim_email("email-1", much_later, much_later)
            .await
            .unwrap()
    );
    app.store.release_email_claim("email-1").await.unwrap();
    assert!(
        !app.store
            .claim_email("email-1", much_later, much_later)
            .await
            .unwrap(),
        "a handled email is not claimed even with no claim row"
    );
}

async fn a_setup_form_names_its_link_until_it_expires_or_the_link_is_used(db: TestDb) {
    use gatehouse::store::{NewSetupForm, NewSetupToken};
    let app = test_app(&db).await;
    let (org, owner) = seed_org(&app, "Alpha", "alpha.owner").await;
    let at = now();
    let minutes = |m: i64| at + chrono::TimeDelta::minutes(m);
    let token = NewSetupToken {
        user_id: owner.id,
        token_hash: vec![9; 32],
        purpose: gatehouse::domain::SetupPurpose::Reset,
        self_requested: false,
        created_at: at,
        expires_at: minutes(72 * 60),
    };
    app.store
        .issue_setup_token(token, AuditEntry::new(org.id, at, "user.setup_email_sent"))
        .await
        .unwrap()
        .expect("issued");
    let record = app.store.setup_token(&[9; 32]).await.unwrap().unwrap();
    // Six tabs opened from one link: the newest five are kept.
    for n in 0..6u8 {
        let form = NewSetupForm {
            form_hash: vec![n; 32],
            token_id: record.id,
            created_at: minutes(i64::from(n)),
            expires_at: minutes(15 + i64::from(n)),
        };
        app.store.open_setup_form(form).await.unwrap();
    }
    let found = |hash: u8, at| {
        let store = app.store.clone();
        async move { store.setup_form_token(&[hash; 32], at).await.unwrap() }
    };
    assert_eq!(
        found(0, minutes(6)).await,
        None,
        "the oldest tab was dropped"
    );
    assert_eq!(found(5, minutes(6)).await, Some(record.clone()));
    assert_eq!(found(1, minutes(16)).await, None, "expired");
    assert_eq!(found(7, minutes(6)).await, None, "unknown");
    let used = gatehouse::store::CompleteSetup {
        token_id: record.id,
        user_id: owner.id,
        password_hash: "$argon2id$unused".into(),
        answers: vec![],
        audit: AuditEntry::new(org.id, minutes(7), "user.setup_completed"),
        email: None,
    };
    app.store.complete_setup(used).await.unwrap();
    assert_eq!(found(5, minutes(8)).await, None, "used with its link");
}
