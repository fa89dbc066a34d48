//! State shared by all workers: the token cache zone.

pub mod zone;
