//! Integration tests for hyperraft-transport, on real UDP sockets bound to
//! 127.0.0.1 with port 0. One binary so the suite links once.

mod authentication;
mod certificates;
mod faults;
mod limits;
mod restart;
mod round_trip;
mod support;
