//! The one integration-test binary of `hyperraft-wire`: round trips,
//! every error variant, and robustness against hostile bytes.

mod errors;
mod kv_round_trip;
mod limits;
mod records_round_trip;
mod robustness;
mod support;
