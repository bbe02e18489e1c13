//! RTMP timestamps: 32-bit millisecond counters that wrap.
//!
//! RTMP carries timestamps as `u32` milliseconds. A stream that runs for more than
//! 2^32 ms (about 49.7 days), or that starts at a large offset, wraps back to zero.
//! [`RtmpTimestamp`] makes that wrap explicit: adding and subtracting wrap, and
//! comparison is *serial-number* arithmetic (RFC 1982 style), so a value just past the
//! wrap counts as later than a value just before it.
//!
//! ```
//! use rtmp_edge::time::RtmpTimestamp;
//!
//! let before_wrap = RtmpTimestamp::new(u32::MAX - 10);
//! let after_wrap = before_wrap + 20; // wraps to 9
//! assert_eq!(after_wrap.value(), 9);
//! assert!(after_wrap > before_wrap);
//! assert_eq!(after_wrap - before_wrap, 20);
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A wrapping RTMP timestamp in milliseconds.
///
/// Ordering is wrap-aware: `a < b` when `b` is less than 2^31 ms ahead of `a` along the
/// circle of `u32` values. Two timestamps exactly 2^31 apart compare by raw value so that
/// the order stays total and consistent with `Eq`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RtmpTimestamp(u32);

impl RtmpTimestamp {
    /// Timestamp zero.
    pub const ZERO: RtmpTimestamp = RtmpTimestamp(0);

    /// Wraps a raw millisecond value.
    pub const fn new(milliseconds: u32) -> Self {
        RtmpTimestamp(milliseconds)
    }

    /// The raw millisecond value as carried on the wire.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// Adds a (wrapping) number of milliseconds.
    pub const fn wrapping_add(self, milliseconds: u32) -> Self {
        RtmpTimestamp(self.0.wrapping_add(milliseconds))
    }

    /// The forward distance from `earlier` to `self`, modulo 2^32.
    pub const fn wrapping_sub(self, earlier: RtmpTimestamp) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }

    /// Signed distance from `other` to `self`, in `(-2^31, 2^31]` milliseconds: positive when
    /// `self` is later along the wrap circle.
    pub const fn signed_distance_from(self, other: RtmpTimestamp) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
}

impl From<u32> for RtmpTimestamp {
    fn from(milliseconds: u32) -> Self {
        RtmpTimestamp(milliseconds)
    }
}

impl From<RtmpTimestamp> for u32 {
    fn from(timestamp: RtmpTimestamp) -> u32 {
        timestamp.0
    }
}

impl Add<u32> for RtmpTimestamp {
    type Output = RtmpTimestamp;
    fn add(self, milliseconds: u32) -> RtmpTimestamp {
        self.wrapping_add(milliseconds)
    }
}

impl AddAssign<u32> for RtmpTimestamp {
    fn add_assign(&mut self, milliseconds: u32) {
        *self = self.wrapping_add(milliseconds);
    }
}

impl Sub<RtmpTimestamp> for RtmpTimestamp {
    type Output = u32;
    /// Forward distance from `rhs` to `self`, wrapping.
    fn sub(self, rhs: RtmpTimestamp) -> u32 {
        self.wrapping_sub(rhs)
    }
}

impl Sub<u32> for RtmpTimestamp {
    type Output = RtmpTimestamp;
    fn sub(self, milliseconds: u32) -> RtmpTimestamp {
        RtmpTimestamp(self.0.wrapping_sub(milliseconds))
    }
}

impl Ord for RtmpTimestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        let distance = self.0.wrapping_sub(other.0);
        if distance == 0 {
            Ordering::Equal
        } else if distance == 1 << 31 {
            // Exactly half the circle apart: no "later" exists, fall back to raw order.
            self.0.cmp(&other.0)
        } else if distance < 1 << 31 {
            Ordering::Greater
        } else {
            Ordering::Less
        }
    }
}

impl PartialOrd for RtmpTimestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for RtmpTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_wraps_past_u32_max() {
        assert_eq!((RtmpTimestamp::new(u32::MAX) + 1).value(), 0);
        assert_eq!((RtmpTimestamp::new(u32::MAX - 5) + 10).value(), 4);
    }

    #[test]
    fn sub_gives_forward_distance_across_wrap() {
        assert_eq!(RtmpTimestamp::new(4) - RtmpTimestamp::new(u32::MAX - 5), 10);
        assert_eq!((RtmpTimestamp::new(3) - 5u32).value(), u32::MAX - 1);
    }

    #[test]
    fn comparison_is_wrap_aware() {
        let before = RtmpTimestamp::new(0xFFFF_FF00);
        let after = RtmpTimestamp::new(0x10);
        assert!(after > before);
        assert!(before < after);
        assert!(RtmpTimestamp::new(100) > RtmpTimestamp::new(50));
        assert_eq!(RtmpTimestamp::new(7).cmp(&RtmpTimestamp::new(7)), Ordering::Equal);
    }

    #[test]
    fn half_circle_apart_is_still_a_total_order() {
        let a = RtmpTimestamp::new(0);
        let b = RtmpTimestamp::new(1 << 31);
        assert_eq!(a.cmp(&b), Ordering::Less);
        assert_eq!(b.cmp(&a), Ordering::Greater);
    }

    #[test]
    fn signed_distance_is_negative_for_earlier_values() {
        assert_eq!(RtmpTimestamp::new(10).signed_distance_from(RtmpTimestamp::new(30)), -20);
        assert_eq!(RtmpTimestamp::new(5).signed_distance_from(RtmpTimestamp::new(u32::MAX)), 6);
    }
}
