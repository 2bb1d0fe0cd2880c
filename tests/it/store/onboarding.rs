//! Onboarding many organizations in one transaction: each as if created and then
//! imported on its own, and all or nothing.

use super::*;
use gatehouse::app::directory::organization::CreateOrganization;
use gatehouse::store::{NewOrganization, UserImport};

crate::on_both_databases!(
    organizations_onboard_together_as_if_one_by_one,
    an_onboarded_organization_is_ranked_in_directory_order,
);

async fn new_organization(
    app: &gatehouse::app::App,
    name: &str,
    staff_licenses: i32,
) -> NewOrganization {
    app.directory()
        .new_organization(CreateOrganization {
            name: name.into(),
            owner_username: format!("{name}.owner"),
            owner_email: format!("owner@{name}.example"),
            owner_first_name: "Olivia".into(),
            owner_last_name: "Owner".into(),
            owner_kind: UserKind::Staff,
            licenses: vec![(Product::Ehr, UserKind::Staff, staff_licenses)],
            owner_password: None,
        })
        .await
        .unwrap()
}

/// `members` staff of the organization-to-be, each in its practice "Front desk".
fn import(name: &str, members: usize) -> UserImport {
    let placeholder = gatehouse::domain::OrgId(0);
    UserImport {
        org_id: placeholder,
        new_practices: vec![(
            "Front desk".into(),
            AuditEntry::new(placeholder, now(), "practice.created"),
        )],
        users: (0..members)
            .map(|i| {
                let user = new_user(
                    placeholder,
                    &format!("{name}.member{i}"),
                    &format!("member{i}@{name}.example"),
                    UserKind::Staff,
                );
                (user, vec!["front desk".into()])
            })
            .collect(),
    }
}

/// Two organizations onboarded at once hold what creating and importing each would
/// have given them (owner, practice, members, licenses taken, an intact audit chain,
/// a setup email each); a batch whose last organization lacks licenses leaves nothing
/// of any of them.
async fn organizations_onboard_together_as_if_one_by_one(db: TestDb) {
    let app = test_app(&db).await;
    let batch = vec![
        (
            new_organization(&app, "alder", 10).await,
            import("alder", 3),
        ),
        (
            new_organization(&app, "birch", 10).await,
            import("birch", 5),
        ),
    ];
    let created = app.store.import_organizations(batch).await.unwrap();
    assert_eq!(created.len(), 2);
    for ((org, owner), members) in created.iter().zip([3, 5]) {
        assert_eq!(owner.org_id, org.id);
        assert_eq!(owner.role, Role::Owner);
        assert_eq!(owner.status, UserStatus::Invited);
        let id = org.id.0;
        let of_org = |sql: &str| sql.replace("$org", &id.to_string());
        assert_eq!(
            db.count(&of_org("SELECT COUNT(*) FROM users WHERE org_id = $org"))
                .await,
            members + 1
        );
        assert_eq!(
            db.count(&of_org(
                "SELECT COUNT(*) FROM user_practices up JOIN practices p ON p.id = up.practice_id \
                 WHERE p.org_id = $org AND p.name = 'Front desk'"
            ))
            .await,
            members
        );
        assert_eq!(
            db.count(&of_org(
                "SELECT CAST(used AS BIGINT) FROM license_pools WHERE org_id = $org"
            ))
            .await,
            members + 1
        );
        // The pool, the practice, the owner and each member.
        let events = of_org("SELECT COUNT(*) FROM audit_events WHERE org_id = $org");
        assert_eq!(db.count(&events).await, members + 3);
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM job_outbox").await, 2 + 3 + 5);
    let report = app.audit().verify().await.unwrap();
    assert!(report.broken.is_none(), "{report:?}");

    let users = db.count("SELECT COUNT(*) FROM users").await;
    let orgs = db.count("SELECT COUNT(*) FROM organizations").await;
    let batch = vec![
        (
            new_organization(&app, "cedar", 10).await,
            import("cedar", 3),
        ),
        (
            new_organization(&app, "dogwood", 2).await,
            import("dogwood", 5),
        ),
    ];
    let refused = app.store.import_organizations(batch).await;
    assert!(
        matches!(refused, Err(StoreError::NoLicense { .. })),
        "{refused:?}"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM users").await, users);
    assert_eq!(db.count("SELECT COUNT(*) FROM organizations").await, orgs);
}

/// An organization onboarded with 450 members of names in no order (three batches of
/// ranks: the first placed in the new, empty directory without looking up neighbours,
/// the others among those) has every member ranked in directory order, and a search
/// walks them in it.
async fn an_onboarded_organization_is_ranked_in_directory_order(db: TestDb) {
    let app = test_app(&db).await;
    let mut members = import("elm", 450);
    for (i, (creation, _)) in members.users.iter_mut().enumerate() {
        creation.user.last_name = format!("Member {:03}", (i * 7_919) % 450);
    }
    let batch = vec![(new_organization(&app, "elm", 500).await, members)];
    let created = app.store.import_organizations(batch).await.unwrap();
    let id = created[0].0.id.0;
    let disorder = format!(
        "SELECT COUNT(*) FROM users a JOIN users b ON a.org_id = b.org_id \
         AND a.sort_key < b.sort_key AND a.search_rank >= b.search_rank WHERE a.org_id = {id}"
    );
    assert_eq!(db.count(&disorder).await, 0);
    let unranked =
        format!("SELECT COUNT(*) FROM users WHERE org_id = {id} AND search_rank IS NULL");
    assert_eq!(db.count(&unranked).await, 0);
    let found = find_by_name(&app, created[0].0.id, "member", 500).await;
    let names: Vec<_> = found
        .users
        .iter()
        .map(|(_, u)| u.last_name.clone())
        .collect();
    let expected: Vec<_> = (0..450).map(|i| format!("Member {i:03}")).collect();
    assert_eq!(names, expected);
}
