//! Mutation root.

use super::requests::{
    AccountRequest, AccountRequestPayload, ApproveRequestInput, CancelRequestInput,
    RejectRequestInput, RequestInactivationInput, RequestLicensesInput,
    RequestPermissionChangeInput,
};
use super::types::{
    Permission, Practice, Product, Role, User, UserError, UserKind, actor, app, viewer,
};
use super::{GqlResult, RequestContext, user_errors};
use crate::app::credentials::AccountSetup;
use crate::app::directory::{Invitation, ProfileUpdate};
use crate::app::request::{InactivationRequest, LicenseRequest, PermissionRequest};
use crate::domain::{DomainError, ErrorCode, UserId};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

#[derive(Default)]
pub struct Mutation;

#[derive(InputObject)]
pub struct LoginInput {
    username: String,
    password: String,
}

#[derive(SimpleObject)]
pub struct LoginPayload {
    /// Bearer token for the Authorization header; null when login failed.
    token: Option<String>,
    user: Option<User>,
    password_change_required: bool,
    user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct ChangePasswordInput {
    current_password: String,
    new_password: String,
}

#[derive(InputObject)]
pub struct RequestAccountSetupEmailInput {
    username_or_email: String,
}

#[derive(InputObject)]
pub struct SecurityAnswerInput {
    question: String,
    answer: String,
}

#[derive(InputObject)]
pub struct CompleteAccountSetupInput {
    token: String,
    new_password: String,
    /// At least three distinct questions with their answers.
    security_questions: Vec<SecurityAnswerInput>,
    /// Required when the user asked for the email themselves and already has questions.
    current_security_answer: Option<SecurityAnswerInput>,
}

#[derive(SimpleObject)]
pub struct CompleteAccountSetupPayload {
    user: Option<User>,
    user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct UserIdInput {
    user_id: ID,
}

#[derive(InputObject)]
pub struct SetTemporaryPasswordInput {
    user_id: ID,
    temporary_password: String,
    /// The calling admin's own password (step-up re-authentication).
    admin_password: String,
}

#[derive(InputObject)]
pub struct ResetEncryptionKeyInput {
    user_id: ID,
    /// The calling admin's own password (step-up re-authentication).
    admin_password: String,
}

#[derive(SimpleObject)]
pub struct UserPayload {
    user: Option<User>,
    user_errors: Vec<UserError>,
}

impl UserPayload {
    fn from(result: crate::app::AppResult<crate::domain::User>) -> async_graphql::Result<Self> {
        let (user, user_errors) = user_errors(result)?;
        Ok(UserPayload {
            user: user.map(User::new),
            user_errors,
        })
    }
}

/// Parses a user ID argument; a malformed one is as unknown as any other.
fn user_id(id: &ID) -> Result<UserId, crate::app::AppError> {
    UserId::from_global(id).ok_or_else(|| {
        DomainError::new(ErrorCode::NotFound, "No such user.")
            .on("userId")
            .into()
    })
}

#[derive(InputObject)]
pub struct InviteUserInput {
    username: String,
    first_name: String,
    last_name: String,
    email: String,
    mobile: Option<String>,
    kind: UserKind,
    /// Default MEMBER. OWNER cannot be given here: it is a permission change request.
    role: Option<Role>,
    permissions: Option<Vec<Permission>>,
    /// Default [EHR].
    products: Option<Vec<Product>>,
    practice_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct UpdateUserInput {
    user_id: ID,
    first_name: Option<String>,
    last_name: Option<String>,
    mobile: Option<String>,
    practice_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct CreatePracticeInput {
    name: String,
}

#[derive(SimpleObject)]
pub struct PracticePayload {
    practice: Option<Practice>,
    user_errors: Vec<UserError>,
}

#[derive(InputObject)]
pub struct ReactivateUsersInput {
    user_ids: Vec<ID>,
    /// Products to restore; default [EHR].
    products: Option<Vec<Product>>,
}

#[derive(SimpleObject)]
pub struct ReactivateUsersPayload {
    /// Users reactivated now.
    users: Vec<User>,
    /// Requests filed instead, for providers that need the owner's review.
    requests: Vec<AccountRequest>,
    user_errors: Vec<UserError>,
}

#[Object]
impl Mutation {
    async fn login(
        &self,
        ctx: &Context<'_>,
        input: LoginInput,
    ) -> async_graphql::Result<LoginPayload> {
        let client = &ctx.data::<RequestContext>()?.client;
        let (done, user_errors) = user_errors(
            app(ctx)?
                .login(&input.username, &input.password, client)
                .await,
        )?;
        Ok(match done {
            Some(done) => LoginPayload {
                password_change_required: done.user.password_change_required,
                token: Some(done.token),
                user: Some(User::themself(done.user)),
                user_errors,
            },
            None => LoginPayload {
                token: None,
                user: None,
                password_change_required: false,
                user_errors,
            },
        })
    }

    /// Ends the current session.
    async fn logout(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        app(ctx)?.logout(viewer(ctx)?).await.gql()?;
        Ok(true)
    }

    /// Changes the caller's password; every session of theirs ends, this one too.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        input: ChangePasswordInput,
    ) -> async_graphql::Result<UserPayload> {
        let caller = viewer(ctx)?;
        let client = &ctx.data::<RequestContext>()?.client;
        UserPayload::from(
            app(ctx)?
                .change_password(caller, &input.current_password, &input.new_password, client)
                .await,
        )
    }

    /// Public. Always true; sends the email only where the account exists and may receive it.
    async fn request_account_setup_email(
        &self,
        ctx: &Context<'_>,
        input: RequestAccountSetupEmailInput,
    ) -> async_graphql::Result<bool> {
        let client = &ctx.data::<RequestContext>()?.client;
        app(ctx)?
            .request_setup_email(&input.username_or_email, client)
            .await
            .gql()?;
        Ok(true)
    }

    /// Public, authenticated by the emailed token.
    async fn complete_account_setup(
        &self,
        ctx: &Context<'_>,
        input: CompleteAccountSetupInput,
    ) -> async_graphql::Result<CompleteAccountSetupPayload> {
        let client = &ctx.data::<RequestContext>()?.client;
        let setup = AccountSetup {
            token: input.token,
            new_password: input.new_password,
            questions: input
                .security_questions
                .into_iter()
                .map(|q| (q.question, q.answer))
                .collect(),
            current_answer: input
                .current_security_answer
                .map(|q| (q.question, q.answer)),
        };
        let (user, user_errors) = user_errors(app(ctx)?.complete_setup(setup, client).await)?;
        Ok(CompleteAccountSetupPayload {
            user: user.map(User::themself),
            user_errors,
        })
    }

    async fn invite_user(
        &self,
        ctx: &Context<'_>,
        input: InviteUserInput,
    ) -> async_graphql::Result<UserPayload> {
        let invitation = Invitation {
            username: input.username,
            first_name: input.first_name,
            last_name: input.last_name,
            email: input.email,
            mobile: input.mobile,
            kind: input.kind.into(),
            role: input.role.map(Into::into),
            permissions: input
                .permissions
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            products: input
                .products
                .map(|p| p.into_iter().map(Into::into).collect()),
            practice_ids: input
                .practice_ids
                .unwrap_or_default()
                .into_iter()
                .map(|id| id.0)
                .collect(),
        };
        UserPayload::from(app(ctx)?.invite_user(actor(ctx)?, invitation).await)
    }

    async fn update_user(
        &self,
        ctx: &Context<'_>,
        input: UpdateUserInput,
    ) -> async_graphql::Result<UserPayload> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        UserPayload::from(
            async {
                let update = ProfileUpdate {
                    user_id: user_id(&input.user_id)?,
                    first_name: input.first_name,
                    last_name: input.last_name,
                    mobile: input.mobile,
                    practice_ids: input
                        .practice_ids
                        .map(|ids| ids.into_iter().map(|id| id.0).collect()),
                };
                app.update_user(actor, update).await
            }
            .await,
        )
    }

    async fn create_practice(
        &self,
        ctx: &Context<'_>,
        input: CreatePracticeInput,
    ) -> async_graphql::Result<PracticePayload> {
        let (practice, user_errors) =
            user_errors(app(ctx)?.create_practice(actor(ctx)?, &input.name).await)?;
        Ok(PracticePayload {
            practice: practice.map(Practice),
            user_errors,
        })
    }

    async fn reactivate_users(
        &self,
        ctx: &Context<'_>,
        input: ReactivateUsersInput,
    ) -> async_graphql::Result<ReactivateUsersPayload> {
        let ids: Vec<String> = input.user_ids.into_iter().map(|id| id.0).collect();
        let products = input
            .products
            .map(|p| p.into_iter().map(Into::into).collect());
        let (done, mut errors) = user_errors(
            app(ctx)?
                .reactivate_users(actor(ctx)?, &ids, products)
                .await,
        )?;
        let done = done.unwrap_or_default();
        errors.extend(done.refused.into_iter().map(|(index, refusal)| {
            let mut error = UserError::from(refusal);
            error.field = Some(vec!["input".into(), "userIds".into(), index.to_string()]);
            error
        }));
        Ok(ReactivateUsersPayload {
            users: done.users.into_iter().map(User::new).collect(),
            requests: done.requests.into_iter().map(AccountRequest::new).collect(),
            user_errors: errors,
        })
    }

    async fn send_account_setup_email(
        &self,
        ctx: &Context<'_>,
        input: UserIdInput,
    ) -> async_graphql::Result<UserPayload> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        UserPayload::from(
            async { app.send_setup_email(actor, user_id(&input.user_id)?).await }.await,
        )
    }

    async fn unlock_user(
        &self,
        ctx: &Context<'_>,
        input: UserIdInput,
    ) -> async_graphql::Result<UserPayload> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        UserPayload::from(async { app.unlock_user(actor, user_id(&input.user_id)?).await }.await)
    }

    async fn set_temporary_password(
        &self,
        ctx: &Context<'_>,
        input: SetTemporaryPasswordInput,
    ) -> async_graphql::Result<UserPayload> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        UserPayload::from(
            async {
                let id = user_id(&input.user_id)?;
                app.set_temporary_password(
                    actor,
                    id,
                    &input.temporary_password,
                    &input.admin_password,
                )
                .await
            }
            .await,
        )
    }

    async fn reset_encryption_key(
        &self,
        ctx: &Context<'_>,
        input: ResetEncryptionKeyInput,
    ) -> async_graphql::Result<UserPayload> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        UserPayload::from(
            async {
                app.reset_encryption_key(actor, user_id(&input.user_id)?, &input.admin_password)
                    .await
            }
            .await,
        )
    }

    async fn revoke_sessions(
        &self,
        ctx: &Context<'_>,
        input: UserIdInput,
    ) -> async_graphql::Result<UserPayload> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        UserPayload::from(
            async { app.revoke_sessions(actor, user_id(&input.user_id)?).await }.await,
        )
    }

    async fn request_licenses(
        &self,
        ctx: &Context<'_>,
        input: RequestLicensesInput,
    ) -> async_graphql::Result<AccountRequestPayload> {
        let request = LicenseRequest {
            product: input.product.into(),
            kind: input.kind.into(),
            quantity: input.quantity,
            justification: input.justification,
            accept_terms: input.accept_terms,
            idempotency_key: input.idempotency_key,
        };
        AccountRequestPayload::filed(app(ctx)?.request_licenses(actor(ctx)?, request).await)
    }

    async fn request_permission_change(
        &self,
        ctx: &Context<'_>,
        input: RequestPermissionChangeInput,
    ) -> async_graphql::Result<AccountRequestPayload> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        let permissions = |list: Option<Vec<Permission>>| {
            list.unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect()
        };
        AccountRequestPayload::filed(
            async {
                let request = PermissionRequest {
                    user_id: user_id(&input.user_id)?,
                    grant: permissions(input.grant),
                    revoke: permissions(input.revoke),
                    role: input.role.map(Into::into),
                    justification: input.justification,
                    idempotency_key: input.idempotency_key,
                };
                app.request_permission_change(actor, request).await
            }
            .await,
        )
    }

    async fn request_inactivation(
        &self,
        ctx: &Context<'_>,
        input: RequestInactivationInput,
    ) -> async_graphql::Result<AccountRequestPayload> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        AccountRequestPayload::filed(
            async {
                let request = InactivationRequest {
                    user_id: user_id(&input.user_id)?,
                    reason: input.reason,
                    idempotency_key: input.idempotency_key,
                };
                app.request_inactivation(actor, request).await
            }
            .await,
        )
    }

    async fn approve_request(
        &self,
        ctx: &Context<'_>,
        input: ApproveRequestInput,
    ) -> async_graphql::Result<AccountRequestPayload> {
        AccountRequestPayload::decided(
            app(ctx)?
                .approve_request(
                    actor(ctx)?,
                    &input.request_id,
                    input.comment,
                    input.accept_terms,
                )
                .await,
        )
    }

    async fn reject_request(
        &self,
        ctx: &Context<'_>,
        input: RejectRequestInput,
    ) -> async_graphql::Result<AccountRequestPayload> {
        AccountRequestPayload::decided(
            app(ctx)?
                .reject_request(actor(ctx)?, &input.request_id, input.reason)
                .await,
        )
    }

    async fn cancel_request(
        &self,
        ctx: &Context<'_>,
        input: CancelRequestInput,
    ) -> async_graphql::Result<AccountRequestPayload> {
        AccountRequestPayload::decided(
            app(ctx)?
                .cancel_request(actor(ctx)?, &input.request_id)
                .await,
        )
    }
}
