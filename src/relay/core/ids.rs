//! Generational connection ids and the table that hands them out.
//!
//! A slot is reused after its connection closes, but its generation changes, so an id held
//! anywhere (a close list, a stream's player list, a link, a driver event) can never reach
//! the connection that took the slot later.
//!
//! With several workers, each worker's table puts its index in the top bits of every
//! generation it hands out, so an id names its worker: ids are unique across workers, and
//! `DELETE /api/v1/clients/{id}` knows where to go. Worker 0's ids are what a relay with
//! one worker has always used.

use std::fmt;

/// Names one connection for its whole life, and never another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

/// Generations use 31 bits, so a packed id never collides with the driver's reserved tokens
/// at the top of the `usize` range.
const GENERATION_MASK: u32 = 0x7FFF_FFFF;
/// The low bits of a generation count a slot's reuses (16.7 million before they wrap);
/// the 7 above them are the worker's index.
const COUNTER_BITS: u32 = 24;
const COUNTER_MASK: u32 = (1 << COUNTER_BITS) - 1;

impl ConnId {
    /// The slot, for drivers that keep their own per-connection table in step.
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// The id as one number: the index in the low 32 bits, the generation above. Stable for
    /// the connection's life; used as the client id in logs and APIs, and as a mio token.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// The worker whose table handed the id out (0 with one worker).
    pub fn worker(self) -> usize {
        (self.generation >> COUNTER_BITS) as usize
    }

    /// The id packed by [`to_u64`](Self::to_u64), if `value` could be one.
    pub fn from_u64(value: u64) -> Option<ConnId> {
        let generation = u32::try_from(value >> 32).ok()?;
        if generation > GENERATION_MASK {
            return None;
        }
        Some(ConnId { index: value as u32, generation })
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.to_u64())
    }
}

/// A slab whose keys are [`ConnId`]s.
#[derive(Debug)]
pub struct IdTable<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
    /// The worker's index, shifted into place above the reuse counter.
    worker_bits: u32,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

impl<T> Default for IdTable<T> {
    fn default() -> Self {
        IdTable { slots: Vec::new(), free: Vec::new(), len: 0, worker_bits: 0 }
    }
}

impl<T> IdTable<T> {
    /// An empty table whose ids name worker `worker` (below [`MAX_WORKERS`](crate::relay::MAX_WORKERS)).
    pub fn for_worker(worker: usize) -> Self {
        let worker = (worker as u32) & (GENERATION_MASK >> COUNTER_BITS);
        IdTable { worker_bits: worker << COUNTER_BITS, ..IdTable::default() }
    }

    /// Stores `value` under a new id.
    pub fn insert(&mut self, value: T) -> ConnId {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(index as usize) {
                slot.value = Some(value);
                return ConnId { index, generation: slot.generation };
            }
        }
        let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        let generation = self.worker_bits;
        self.slots.push(Slot { generation, value: Some(value) });
        ConnId { index, generation }
    }

    /// The value under `id`, unless that connection is gone.
    pub fn get(&self, id: ConnId) -> Option<&T> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.value.as_ref()
    }

    /// The value under `id`, mutably, unless that connection is gone.
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// Whether `id` names a live entry.
    pub fn contains(&self, id: ConnId) -> bool {
        self.get(id).is_some()
    }

    /// Takes the value out; the slot's next occupant gets a new generation.
    pub fn remove(&mut self, id: ConnId) -> Option<T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = self.worker_bits | (slot.generation.wrapping_add(1) & COUNTER_MASK);
        self.free.push(id.index);
        self.len -= 1;
        Some(value)
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no live entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every live entry with its id.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &T)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let value = slot.value.as_ref()?;
            Some((ConnId { index: index as u32, generation: slot.generation }, value))
        })
    }

    /// Every live entry with its id, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ConnId, &mut T)> {
        self.slots.iter_mut().enumerate().filter_map(|(index, slot)| {
            let generation = slot.generation;
            let value = slot.value.as_mut()?;
            Some((ConnId { index: index as u32, generation }, value))
        })
    }

    /// Every live id.
    pub fn ids(&self) -> Vec<ConnId> {
        self.iter().map(|(id, _)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_never_answers_to_the_old_id() {
        let mut table = IdTable::default();
        let first = table.insert("upstream A");
        assert_eq!(table.remove(first), Some("upstream A"));
        let second = table.insert("upstream B");
        assert_eq!(first.index(), second.index(), "the slot is reused");
        assert_ne!(first, second);
        assert_eq!(table.get(first), None);
        assert_eq!(table.remove(first), None, "a stale close must not close the new connection");
        assert_eq!(table.get(second), Some(&"upstream B"));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn ids_pack_into_u64_and_back() {
        let mut table = IdTable::default();
        let id = table.insert(());
        table.remove(id);
        let id = table.insert(());
        assert_eq!(ConnId::from_u64(id.to_u64()), Some(id));
        assert_eq!(id.to_u64(), 1 << 32);
        assert_eq!(ConnId::from_u64(u64::MAX), None);
    }

    #[test]
    fn ids_name_their_worker_and_never_collide_across_workers() {
        let mut zero = IdTable::default();
        let mut five = IdTable::for_worker(5);
        let (a, b) = (zero.insert(()), five.insert(()));
        assert_eq!((a.index(), b.index()), (0, 0), "the same slot in both tables");
        assert_ne!(a.to_u64(), b.to_u64());
        assert_eq!((a.worker(), b.worker()), (0, 5));
        assert_eq!(b.to_u64(), 5 << 56);
        assert_eq!(ConnId::from_u64(b.to_u64()), Some(b));
        // Reuses count below the worker bits and wrap there, never into another worker.
        let mut id = b;
        five.slots[0].generation = (5 << COUNTER_BITS) | COUNTER_MASK;
        id.generation = five.slots[0].generation;
        five.remove(id);
        let reused = five.insert(());
        assert_eq!((reused.worker(), reused.generation & COUNTER_MASK), (5, 0));
    }
}
