//! Integration tests of hyperraft-raft, one binary so the suite links once.

mod decoders;
mod log;
