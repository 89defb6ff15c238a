//! The commands of `stele`, one file per family. main.rs parses the command
//! line and hands each command here; every command that opens a store does so
//! through [`store`], which closes it again on every path, so no command can
//! lose a close error or leave a store half closed.

pub mod access;
pub mod admin;
pub mod audit;
pub mod clock;
pub mod config;
pub mod demo;
pub mod erasure;
pub mod evidence;
pub mod holds;
pub mod import;
pub mod init;
pub mod integrity;
pub mod keys;
pub mod metrics;
pub mod output;
pub mod records;
pub mod retention;
pub mod select;
pub mod store;
pub mod who;
