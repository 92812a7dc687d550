//! The `mlops` binary's integration tests, in one test binary (one link of the dependency stack
//! instead of nine). Each module drives the built binary as a process against real components
//! (moto, the GitHub fake, act, terraform, `mlops serve`); `../support/` holds the helpers they
//! share with the render and train tests.

// Tests: a panic here is a failed run, not a user's crash.
#![allow(clippy::indexing_slicing, clippy::string_slice)]

#[path = "../support/bin.rs"]
mod bin;
#[path = "../support/docker.rs"]
mod docker;
#[path = "../support/fake_sagemaker.rs"]
mod fake_sagemaker;
#[path = "../support/http.rs"]
mod http;
#[path = "../support/lcg.rs"]
mod lcg;
#[path = "../support/moto.rs"]
mod moto;
#[path = "../support/onnx_models.rs"]
mod onnx_models;
#[path = "../support/proxy.rs"]
mod proxy;
#[path = "../support/quickstart.rs"]
mod quickstart;
#[path = "../support/server.rs"]
mod server;
#[path = "../support/terraform.rs"]
mod terraform;
#[path = "../support/tools.rs"]
mod tools;
#[path = "../support/traffic.rs"]
mod traffic;
#[path = "../support/wide_table.rs"]
mod wide_table;

mod actions;
mod categorical;
mod cli;
mod compare;
mod deploy;
mod doctor;
mod github;
mod init;
mod limits;
mod missing;
mod monitor;
mod onnx;
mod parquet;
mod predict;
mod protocols;
mod run;
mod sagemaker;
mod serve;
mod stats;
mod sweep;
mod transform;
mod watch;
mod wide;
