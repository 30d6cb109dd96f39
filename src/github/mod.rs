//! GitHub: webhook events as pullstack's own types, and the forge client.

pub mod client;
pub mod events;
