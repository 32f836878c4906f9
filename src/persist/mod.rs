//! Bytes on disk and on the wire: the codec (the only user of bincode).

pub mod codec;
