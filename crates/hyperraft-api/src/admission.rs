//! Admission control: a bound on requests and on request bytes in flight.
//!
//! A request is admitted only if both bounds have room *now*; otherwise it
//! is refused at once, not queued, so a flood beyond the bounds costs no
//! memory and the client learns to back off (`RESOURCE_EXHAUSTED` with a
//! retry hint). An admitted request holds a [`Permit`] until its response is
//! built; dropping the permit gives the room back.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shared gate of one API server.
#[derive(Clone, Debug)]
pub(crate) struct Admission {
    requests: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    requests_max: usize,
    bytes_max: u32,
}

/// Room held by one admitted request.
#[derive(Debug)]
pub(crate) struct Permit {
    _request: Option<OwnedSemaphorePermit>,
    _bytes: Option<OwnedSemaphorePermit>,
}

/// Why a request was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("{max} requests are in flight, the most this node admits; retry later")]
    Requests { max: usize },
    #[error("a request of {bytes} bytes does not fit the {max} request bytes this node admits in flight; retry later")]
    Bytes { bytes: usize, max: u32 },
}

impl Admission {
    pub(crate) fn new(requests_max: usize, bytes_max: u32) -> Admission {
        Admission {
            requests: Arc::new(Semaphore::new(requests_max)),
            bytes: Arc::new(Semaphore::new(bytes_max as usize)),
            requests_max,
            bytes_max,
        }
    }

    /// Admits a request of `bytes` encoded bytes if both bounds have room.
    pub(crate) fn try_admit(&self, bytes: usize) -> Result<Permit, Refusal> {
        let request =
            self.requests.clone().try_acquire_owned().map_err(|_| Refusal::Requests { max: self.requests_max })?;
        let refused = Refusal::Bytes { bytes, max: self.bytes_max };
        // A request larger than the whole bound can never fit; a zero-byte
        // request (an empty message) takes no byte permit.
        let bytes_permit = match u32::try_from(bytes) {
            Ok(0) => None,
            Ok(count) if count <= self.bytes_max => {
                Some(self.bytes.clone().try_acquire_many_owned(count).map_err(|_| refused)?)
            }
            _ => return Err(refused),
        };
        Ok(Permit { _request: Some(request), _bytes: bytes_permit })
    }

    /// Requests admitted now (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn requests_in_flight(&self) -> usize {
        self.requests_max - self.requests.available_permits()
    }
}

#[cfg(test)]
mod tests;
