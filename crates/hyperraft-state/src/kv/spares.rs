//! Byte buffers of dropped history events, kept for the next events.
//!
//! Once the history is full, every new event pushes out an old one; its
//! key and value buffers are refilled for the new event instead of being
//! freed and allocated again, so steady-state apply allocates nothing.

use super::Event;

/// Cleared buffers, one stack for keys and one for values (their sizes
/// differ, and a buffer of the right size refills without reallocating).
#[derive(Debug, Default)]
pub(crate) struct Spares {
    keys: Stack,
    values: Stack,
}

/// Larger buffers are freed rather than kept: one rare large value must not
/// pin its memory for the small ones that follow.
const BUFFER_BYTES_MAX: usize = 4096;
/// Most bytes of capacity kept per stack, so spare memory stays bounded
/// however the work moves between lanes.
const STACK_BYTES_MAX: usize = 1 << 20;

#[derive(Debug, Default)]
struct Stack {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl Spares {
    /// A copy of `key`, in a spare buffer when there is one.
    pub(crate) fn key(&mut self, key: &[u8]) -> Vec<u8> {
        self.keys.copy(key)
    }

    /// A copy of `value`, in a spare buffer when there is one.
    pub(crate) fn value(&mut self, value: &[u8]) -> Vec<u8> {
        self.values.copy(value)
    }

    /// Keeps the buffers of an event the history dropped.
    pub(crate) fn recycle(&mut self, event: Event) {
        self.keys.keep(event.kv.key);
        self.values.keep(event.kv.value);
        if let Some(prev) = event.prev {
            self.keys.keep(prev.key);
            self.values.keep(prev.value);
        }
    }
}

impl Stack {
    fn copy(&mut self, bytes: &[u8]) -> Vec<u8> {
        let Some(mut buffer) = self.buffers.pop() else {
            return bytes.to_vec();
        };
        self.bytes -= buffer.capacity();
        buffer.clear();
        buffer.extend_from_slice(bytes);
        buffer
    }

    fn keep(&mut self, buffer: Vec<u8>) {
        let capacity = buffer.capacity();
        if capacity == 0 || capacity > BUFFER_BYTES_MAX || self.bytes + capacity > STACK_BYTES_MAX {
            return;
        }
        self.bytes += capacity;
        self.buffers.push(buffer);
    }
}
