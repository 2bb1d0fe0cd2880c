//! Gatehouse's integration tests, one binary: the store conformance suite on SQLite and
//! PostgreSQL, the HTTP API end to end, the command line, and the schema and migrations.

mod branding;
mod browser;
mod cli;
mod common;
mod contract;
mod directory;
mod graphql_http;
mod hardening;
mod http;
mod identity;
mod import;
mod jobs;
mod migrations;
mod observability;
mod pages;
mod portable;
mod redis;
mod requests;
mod schema;
mod smtp;
mod store;
mod tls;
