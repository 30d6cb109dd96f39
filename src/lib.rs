//! pullstack: one AWS preview environment per pull request, and blue/green
//! production releases, driven by GitHub webhooks.
//!
//! The crate is a library with a thin binary (`src/main.rs`). The layers are:
//! - [`http`]: the webhook server; it only verifies, parses and enqueues;
//! - [`github`]: webhook events as pullstack's own types, and the forge client;
//! - [`aws`]: narrow clients over the AWS SDK;
//! - [`prune`]: the ECR image clean-up;
//! - [`reconcile`]: desired versus actual state, and the keyed work queue;
//! - [`domain`]: pure logic (names, commands, comment rendering);
//! - [`clock`]: the time every timer reads, manual in tests;
//! - [`config`] and [`settings`]: the YAML config and the process settings.

pub mod aws;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod github;
pub mod http;
pub mod prune;
pub mod reconcile;
pub mod server;
pub mod settings;
pub mod telemetry;
