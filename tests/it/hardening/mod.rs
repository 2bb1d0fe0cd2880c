//! What an attacker tries: input that could crash the server, sessions that should have
//! ended, many attempts at once, more rights than an owner granted, and work that should
//! not wait. End to end over HTTP and WebSocket, on both databases.

mod input;
mod roles;
mod secrets;
mod sockets;
use crate::common::{
    OWNER_PASSWORD, Practice, STAFF_PASSWORD, ServerOptions, Subscriber, TestDb, TestServer,
    seed_org, setup_token,
};
use crate::smtp::SmtpReceiver;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PASSWORD: &str = STAFF_PASSWORD;
const WAIT: Duration = Duration::from_secs(20);

fn code(body: &Value) -> &Value {
    &body["errors"][0]["extensions"]["code"]
}

const LOGIN: &str = "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { token userErrors { code field } } }";

// ---------------------------------------------------------------------------------------
// 1. No crash from any input.

/// graphql-js 16's `getIntrospectionQuery()`, exactly as GraphiQL and codegen send it.
const INTROSPECTION_QUERY: &str = r#"
    query IntrospectionQuery {
      __schema {
        queryType { name }
        mutationType { name }
        subscriptionType { name }
        types {
          ...FullType
        }
        directives {
          name
          description
          locations
          args {
            ...InputValue
          }
        }
      }
    }

    fragment FullType on __Type {
      kind
      name
      description
      fields(includeDeprecated: true) {
        name
        description
        args {
          ...InputValue
        }
        type {
          ...TypeRef
        }
        isDeprecated
        deprecationReason
      }
      inputFields {
        ...InputValue
      }
      interfaces {
        ...TypeRef
      }
      enumValues(includeDeprecated: true) {
        name
        description
        isDeprecated
        deprecationReason
      }
      possibleTypes {
        ...TypeRef
      }
    }

    fragment InputValue on __InputValue {
      name
      description
      type { ...TypeRef }
      defaultValue
    }

    fragment TypeRef on __Type {
      kind
      name
      ofType {
        kind
        name
        ofType {
          kind
          name
          ofType {
            kind
            name
            ofType {
              kind
              name
              ofType {
                kind
                name
                ofType {
                  kind
                  name
                  ofType {
                    kind
                    name
                  }
                }
              }
            }
          }
        }
      }
    }
  "#;

// ---------------------------------------------------------------------------------------
// 2. A session that ends, ends everywhere.

// ---------------------------------------------------------------------------------------
// 3. Lockout under concurrency, wherever a secret is checked.

// ---------------------------------------------------------------------------------------
// 4. Rate limits.

// ---------------------------------------------------------------------------------------
// 5. Nobody gains more than an owner approved.

// ---------------------------------------------------------------------------------------
// 6. PASSWORD_CHANGE_REQUIRED, decided by the app.

// ---------------------------------------------------------------------------------------
// 10. Login timing.

// Measured in its own test binary, tests/login_timing.rs, away from other tests' load.

// ---------------------------------------------------------------------------------------
// 11. At the default settings, jobs run at once.
