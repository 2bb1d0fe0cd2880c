//! Organizations, users, licenses and practices, on both databases.

use super::*;

crate::on_both_databases!(
    organization_is_created_with_pools_and_owner,
    owner_without_password_is_invited_and_setup_email_is_queued,
    owner_license_shortfall_creates_nothing,
    practices_are_unique_per_organization,
    usernames_and_emails_are_unique_across_organizations,
    no_license_changes_nothing,
    last_free_license_goes_to_exactly_one_of_twenty,
    users_of_other_organizations_are_not_found,
);

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
    // The input a refused creation in Beta names.
    let refused_on = |username: &'static str, email: &'static str| {
        let store = &app.store;
        async move {
            match store
                .create_user(new_user(b.id, username, email, UserKind::Staff))
                .await
            {
                Err(StoreError::AlreadyExists { field }) => field,
                other => panic!("{other:?}"),
            }
        }
    };
    assert_eq!(refused_on("jdoe", "other@beta.example").await, "username");
    assert_eq!(refused_on("jdoe2", "JDoe@Alpha.example").await, "email");
    // Both taken: the username is named, on either database.
    assert_eq!(refused_on("jdoe", "jdoe@alpha.example").await, "username");
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
