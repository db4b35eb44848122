//! skiff: a self-hosted cloud in one binary. See `README.md` and `docs/`.

pub mod api;
pub mod app;
pub mod backup;
pub mod compute;
pub mod config;
pub mod doctor;
pub mod jobs;
pub mod model;
pub mod network;
pub mod service;
pub mod store;
pub mod sysinfo;
pub mod web;
