//! Lists of cells read into one allocation, and the spare lists a thread keeps for pushes.

use std::fmt;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

use super::{collect_list_into, JsonCell, Scalar, LIST_GUESS_MAX};

/// A cell type read in lists: what a list is expected to hold, and the empty list it is read
/// into first.
pub trait ListItem: Sized {
    const EXPECTING: &'static str;

    /// An empty list to fill (with capacity when the thread has a spare one).
    fn spare_list() -> Vec<Self> {
        Vec::new()
    }
}

impl<'a> ListItem for Scalar<'a> {
    const EXPECTING: &'static str = "a list of numbers, strings, booleans and nulls";

    fn spare_list() -> Vec<Scalar<'a>> {
        // A spare list is `Scalar<'static>`s, and so a list of `Scalar<'a>`s for any 'a.
        SPARE_LISTS.with_borrow_mut(Vec::pop).unwrap_or_default()
    }
}

impl ListItem for JsonCell<'_> {
    const EXPECTING: &'static str = "a list of values";
}

/// Reads a list of cells (a [`serde::de::DeserializeSeed`], for frames of them) into one
/// allocation for the length of the last list this thread read ([`collect_list_into`]): a
/// read's entity column grown by doubling was nine reallocations past 1 KiB for 100 entities.
pub struct List<T>(std::marker::PhantomData<T>);

/// Reads a list of [`Scalar`]s, into this thread's spare lists ([`recycle_lists`]).
pub type ScalarList<'a> = List<Scalar<'a>>;
/// Reads a list of [`JsonCell`]s.
pub type JsonList<'a> = List<JsonCell<'a>>;

impl<T> Default for List<T> {
    fn default() -> Self {
        List(std::marker::PhantomData)
    }
}

impl<T> Clone for List<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for List<T> {}

impl<'de, T: Deserialize<'de> + ListItem> serde::de::DeserializeSeed<'de> for List<T> {
    type Value = Vec<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de> + ListItem> Visitor<'de> for List<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        collect_list_into(seq, T::spare_list())
    }
}

/// Spare lists a thread keeps for [`ScalarList`] ([`recycle_lists`]).
const SPARE_LISTS_MAX: usize = 16;

thread_local! {
    /// Empty lists of [`Scalar`]s with their capacity, kept by the thread that parsed them: a
    /// push's columns (about 2.4 KiB each for 100 rows, past the allocator's per-thread cache)
    /// are taken from here instead of from the allocator. At most [`SPARE_LISTS_MAX`] lists
    /// of at most [`LIST_GUESS_MAX`] cells: 384 KiB a thread at worst.
    static SPARE_LISTS: std::cell::RefCell<Vec<Vec<Scalar<'static>>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Gives a parsed frame's lists to this thread's spares for the next [`ScalarList`] to fill;
/// lists past the bounds are freed.
pub fn recycle_lists<'a>(lists: impl IntoIterator<Item = Vec<Scalar<'a>>>) {
    SPARE_LISTS.with_borrow_mut(|spares| {
        for list in lists {
            if spares.len() < SPARE_LISTS_MAX && list.capacity() <= LIST_GUESS_MAX {
                spares.push(emptied(list));
            }
        }
    });
}

/// `list` emptied: an empty list borrows nothing, so it can be a list of `Scalar<'static>`s.
/// Collected in place, it keeps its allocation (std reuses a vector's buffer when the item
/// type's size and alignment do not change; a unit test checks it still does).
fn emptied(mut list: Vec<Scalar<'_>>) -> Vec<Scalar<'static>> {
    list.clear();
    // `filter_map` rather than `filter`: it changes the item type (its lifetime).
    #[allow(clippy::unnecessary_filter_map)]
    list.into_iter().filter_map(|_| None).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_lists_are_recycled_with_their_allocation_and_parse_again_from_empty() {
        use serde::de::DeserializeSeed;
        let list = |text: &'static str| {
            let parsed = ScalarList::default()
                .deserialize(&mut serde_json::Deserializer::from_str(text))
                .unwrap();
            (parsed.as_ptr() as usize, parsed.capacity(), parsed)
        };
        SPARE_LISTS.with_borrow_mut(Vec::clear);
        let (at, capacity, first) = list(r#"["a", 1, 2, 3, 4, 5, 6, 7, 8]"#);
        assert!(capacity >= 9);
        // Emptied in place: the same buffer (what the spares are for).
        let empty = emptied(first);
        assert_eq!((empty.as_ptr() as usize, empty.capacity()), (at, capacity));
        recycle_lists([empty]);
        let (again, _, second) = list(r#"["b", 2.5]"#);
        assert_eq!(again, at, "the next list takes the spare");
        assert_eq!(second, [Scalar::Str("b"), Scalar::Float(2.5)]);
        // Bounded: at most SPARE_LISTS_MAX lists, none above LIST_GUESS_MAX cells.
        recycle_lists([Vec::with_capacity(LIST_GUESS_MAX + 1)]);
        recycle_lists((0..2 * SPARE_LISTS_MAX).map(|_| Vec::with_capacity(4)));
        SPARE_LISTS.with_borrow(|spares| {
            assert_eq!(spares.len(), SPARE_LISTS_MAX);
            assert!(spares
                .iter()
                .all(|l| l.is_empty() && l.capacity() <= LIST_GUESS_MAX));
        });
    }
}
