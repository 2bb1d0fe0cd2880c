//! The operator's commands beside `serve`: each reads its arguments, calls the app, and
//! reports in plain lines.

pub mod data;
pub mod email;
pub mod users;
