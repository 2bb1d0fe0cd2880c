//! Bulk onboarding contracts: which usernames and emails are taken, and writing a checked
//! import all at once.

use super::*;

#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Of the given usernames and (lower-cased) emails, those some user already has.
    async fn taken_identities(
        &self,
        usernames: &[String],
        emails: &[String],
    ) -> StoreResult<(Vec<String>, Vec<String>)>;

    /// Writes an import in one transaction: the practices it names that do not exist yet
    /// (with their audit events), then every user as `create_user` creates one; calls
    /// `progress` with the number of users written so far. All or nothing.
    async fn import_users(
        &self,
        import: UserImport,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> StoreResult<Vec<UserId>>;

    /// Onboards organizations in one transaction: each created as `create_organization`
    /// creates one, then its users written as `import_users` writes them (the import's
    /// `org_id` is set to the new organization). All or nothing; the organizations and
    /// their owners in the order given.
    async fn import_organizations(
        &self,
        imports: Vec<(NewOrganization, UserImport)>,
    ) -> StoreResult<Vec<(Organization, User)>>;
}

/// A checked import of one organization's users.
#[derive(Debug, Clone)]
pub struct UserImport {
    pub org_id: OrgId,
    /// Practices to create first, by name, each with its audit event.
    pub new_practices: Vec<(String, AuditEntry)>,
    /// Each user with the names of its practices (existing or created above); the
    /// creation's `practice_ids` are filled in from them.
    pub users: Vec<(UserCreation, Vec<String>)>,
}
