//! Cerebral: a GraphQL control plane for AI agent teams, compatible with the
//! BMad Method.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod entity;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod net;
pub mod rls;
pub mod service;
