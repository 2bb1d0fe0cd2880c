//! Credentials and sessions: signing in and out, passwords, account setup by emailed
//! link, locks, temporary passwords, encryption keys.

use super::UserError;
use super::ids::user_id;
use super::objects::User;
use super::objects::{UserIdInput, UserPayload};
use super::types::{actor, app, viewer};
use super::{GqlResult, RequestContext, user_errors};
use crate::app::identity::setup::{AccountSetup, SetupKey};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

#[derive(Default)]
pub struct IdentityMutation;

#[Object]
impl IdentityMutation {
    async fn login(
        &self,
        ctx: &Context<'_>,
        input: LoginInput,
    ) -> async_graphql::Result<LoginPayload> {
        let client = &ctx.data::<RequestContext>()?.client;
        let (done, user_errors) = user_errors(
            app(ctx)?
                .identity()
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
        app(ctx)?.identity().logout(viewer(ctx)?).await.gql()?;
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
                .identity()
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
            .identity()
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
            key: SetupKey::Link(input.token),
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
        let (user, user_errors) =
            user_errors(app(ctx)?.identity().complete_setup(setup, client).await)?;
        Ok(CompleteAccountSetupPayload {
            user: user.map(User::themself),
            user_errors,
        })
    }

    async fn send_account_setup_email(
        &self,
        ctx: &Context<'_>,
        input: UserIdInput,
    ) -> async_graphql::Result<UserPayload> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        UserPayload::from(
            async {
                app.identity()
                    .send_setup_email(actor, user_id(&input.user_id)?)
                    .await
            }
            .await,
        )
    }

    async fn unlock_user(
        &self,
        ctx: &Context<'_>,
        input: UserIdInput,
    ) -> async_graphql::Result<UserPayload> {
        let (app, actor) = (app(ctx)?, actor(ctx)?);
        UserPayload::from(
            async {
                app.identity()
                    .unlock_user(actor, user_id(&input.user_id)?)
                    .await
            }
            .await,
        )
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
                app.identity()
                    .set_temporary_password(
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
                app.identity()
                    .reset_encryption_key(actor, user_id(&input.user_id)?, &input.admin_password)
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
            async {
                app.identity()
                    .revoke_sessions(actor, user_id(&input.user_id)?)
                    .await
            }
            .await,
        )
    }
}

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
