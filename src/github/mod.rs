//! GitHub: webhook events as pullstack's own types, and the forge client.

pub mod checks;
pub mod client;
mod deployments;
mod error;
pub mod events;
pub mod pacing;
mod types;
