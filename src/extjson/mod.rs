//! MongoDB Extended JSON v2, written straight from raw BSON: see [`write`].

mod write;

pub use write::*;
