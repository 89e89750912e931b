//! Importing other tools' configuration into uvs's own.

pub mod keepalived;
