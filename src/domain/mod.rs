//! Pure domain logic: names, commands, comment rendering, templates.
//! Nothing here does I/O.

pub mod access;
pub mod checks;
pub mod commands;
pub mod comment;
pub mod cost;
pub mod database;
pub mod diagnosis;
pub mod edge;
pub mod gates;
pub mod globs;
pub mod idle;
pub mod logs;
pub mod naming;
pub mod phases;
pub mod release;
pub mod rollout;
pub mod seal;
pub mod template;
