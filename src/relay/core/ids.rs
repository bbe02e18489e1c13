//! Generational connection ids and the table that hands them out.
//!
//! A slot is reused after its connection closes, but its generation changes, so an id held
//! anywhere (a close list, a stream's player list, a link, a driver event) can never reach
//! the connection that took the slot later.

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
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

impl<T> Default for IdTable<T> {
    fn default() -> Self {
        IdTable { slots: Vec::new(), free: Vec::new(), len: 0 }
    }
}

impl<T> IdTable<T> {
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
        self.slots.push(Slot { generation: 0, value: Some(value) });
        ConnId { index, generation: 0 }
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
        slot.generation = slot.generation.wrapping_add(1) & GENERATION_MASK;
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
}
