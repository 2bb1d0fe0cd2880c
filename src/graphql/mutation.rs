//! Mutation root.

use super::types::{User, UserError, actor, app};
use super::{GqlResult, RequestContext, user_errors};
use async_graphql::{Context, InputObject, Object, SimpleObject};

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
                user: Some(User(done.user)),
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
        app(ctx)?.logout(actor(ctx)?).await.gql()?;
        Ok(true)
    }
}
