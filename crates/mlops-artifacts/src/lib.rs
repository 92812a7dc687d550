//! The files mlops writes and reads back, as types: the model card ([`card`]), what a training
//! run is and reports ([`training`]) and a model artifact's digest ([`artifact`]). Every writer
//! and reader of these files uses these types, so a field is never written under one name and
//! read under another; the card's JSON Schema is generated from its type. Plain data with serde
//! and schemars, light enough for every crate that reads an artifact (no training stack).

pub mod artifact;
pub mod card;
pub mod training;
