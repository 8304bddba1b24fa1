//! The bounded history of events that watchers read.

use std::collections::vec_deque::{Iter, VecDeque};

use super::{Event, KvError};

/// The latest events in revision order, at most `events_max` of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct History {
    events: VecDeque<Event>,
    events_max: usize,
    /// Highest revision of which at least one event was dropped; every
    /// event of a later revision is still here.
    compacted_revision: u64,
}

impl History {
    /// An empty history keeping at most `events_max` events.
    pub(crate) fn new(events_max: usize) -> Self {
        History { events: VecDeque::new(), events_max, compacted_revision: 0 }
    }

    /// Rebuilds a history from a snapshot's validated parts.
    pub(crate) fn from_parts(events: VecDeque<Event>, events_max: usize, compacted_revision: u64) -> Self {
        assert!(events.len() <= events_max, "snapshot history over its bound");
        History { events, events_max, compacted_revision }
    }

    /// Appends `event`; when full, drops the oldest event and returns it so
    /// that its buffers can be reused.
    #[must_use]
    pub(crate) fn push(&mut self, event: Event) -> Option<Event> {
        let newest = self.events.back().map_or(self.compacted_revision, Event::revision);
        assert!(event.revision() >= newest, "events must arrive in revision order");
        if self.events.len() < self.events_max {
            self.events.push_back(event);
            return None;
        }
        let Some(oldest) = self.events.pop_front() else {
            // A zero bound keeps nothing.
            self.compacted_revision = event.revision();
            return Some(event);
        };
        self.compacted_revision = oldest.revision();
        self.events.push_back(event);
        Some(oldest)
    }

    /// The events with a revision above `revision`, oldest first.
    pub(crate) fn since(&self, revision: u64) -> Result<Iter<'_, Event>, KvError> {
        if revision < self.compacted_revision {
            return Err(KvError::Compacted { oldest: self.compacted_revision });
        }
        let start = self.events.partition_point(|event| event.revision() <= revision);
        Ok(self.events.range(start..))
    }

    /// All kept events, oldest first.
    pub(crate) fn events(&self) -> &VecDeque<Event> {
        &self.events
    }

    /// See the field.
    pub(crate) fn compacted_revision(&self) -> u64 {
        self.compacted_revision
    }
}
