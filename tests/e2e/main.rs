//! The end-to-end tests, compiled as one crate so that the harness in
//! `support/` is built once: `pullstack serve` and the `pullstack` binary
//! driven over HTTP against moto and the GitHub fake.

mod support;

mod access;
mod branches;
mod chaos;
mod checks;
mod cli;
mod commenters;
mod convergence;
mod database;
mod diagnosis;
mod edge;
mod failures;
mod front_door;
mod github_app;
mod github_fake_selftest;
mod github_limits;
mod handle_event;
mod hub_replicas;
mod idle;
mod images;
mod isolation;
mod limits;
mod logs;
mod one_off;
mod preview;
mod production;
mod production_alb;
mod production_gates;
mod replicas;
mod repos;
mod service_role;
mod webhook;
