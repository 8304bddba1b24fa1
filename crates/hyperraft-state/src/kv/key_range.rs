//! The keys one request selects, after etcd's `range_end` conventions.

use std::ops::Bound;

/// Start and end bounds, as `BTreeMap::range` takes them.
pub(crate) type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// The keys a delete or read selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyRange<'a> {
    /// `range_end` empty: exactly this key.
    Single(&'a [u8]),
    /// `range_end == [0]`: every key ≥ this one.
    From(&'a [u8]),
    /// Every key in `[start, end)`; empty when `end <= start`.
    Between(&'a [u8], &'a [u8]),
}

impl<'a> KeyRange<'a> {
    /// Reads a request's `key` and `range_end`.
    pub(crate) fn new(key: &'a [u8], range_end: &'a [u8]) -> Self {
        match range_end {
            [] => KeyRange::Single(key),
            [0] => KeyRange::From(key),
            _ => KeyRange::Between(key, range_end),
        }
    }

    /// Whether `key` is selected.
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        match *self {
            KeyRange::Single(single) => key == single,
            KeyRange::From(start) => key >= start,
            KeyRange::Between(start, end) => start <= key && key < end,
        }
    }

    /// The single key, when the range selects at most one.
    pub(crate) fn single(&self) -> Option<&'a [u8]> {
        match *self {
            KeyRange::Single(key) => Some(key),
            KeyRange::From(_) | KeyRange::Between(..) => None,
        }
    }

    /// Bounds for `BTreeMap::range`, or `None` when the range is empty
    /// (`BTreeMap::range` panics when the start lies after the end).
    pub(crate) fn bounds(&self) -> Option<KeyBounds<'a>> {
        match *self {
            KeyRange::Single(key) => Some((Bound::Included(key), Bound::Included(key))),
            KeyRange::From(start) => Some((Bound::Included(start), Bound::Unbounded)),
            KeyRange::Between(start, end) if start < end => Some((Bound::Included(start), Bound::Excluded(end))),
            KeyRange::Between(..) => None,
        }
    }
}
