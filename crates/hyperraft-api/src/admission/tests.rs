use super::*;

#[test]
fn the_request_bound_refuses_one_more_and_admits_again_after_release() {
    // Proves the request bound: with room for 2, a third request is refused while two permits live, and admitted once one is dropped.
    let gate = Admission::new(2, 1000);
    let first = gate.try_admit_request().expect("room for the first");
    let _second = gate.try_admit_request().expect("room for the second");
    assert_eq!(gate.try_admit_request().unwrap_err(), Refusal::Requests { max: 2 });
    assert_eq!(gate.requests_in_flight(), 2);
    drop(first);
    assert!(gate.try_admit_request().is_ok());
}

#[test]
fn the_byte_bound_refuses_what_does_not_fit_and_gives_bytes_back() {
    // Proves the byte bound: 600 + 600 bytes do not fit in 1000, a request over the whole bound never fits, an empty one always does, and dropping a permit returns its bytes.
    let gate = Admission::new(10, 1000);
    let first = gate.try_admit_bytes(600).expect("fits");
    assert_eq!(gate.try_admit_bytes(600).unwrap_err(), Refusal::Bytes { bytes: 600, max: 1000 });
    assert_eq!(gate.try_admit_bytes(1001).unwrap_err(), Refusal::Bytes { bytes: 1001, max: 1000 });
    assert!(gate.try_admit_bytes(0).is_ok());
    drop(first);
    assert!(gate.try_admit_bytes(1000).is_ok());
}

#[test]
fn a_zero_bound_refuses_every_request() {
    // Proves requests_in_flight_max = 0 admits no request at all.
    let gate = Admission::new(0, 1000);
    assert_eq!(gate.try_admit_request().unwrap_err(), Refusal::Requests { max: 0 });
}
