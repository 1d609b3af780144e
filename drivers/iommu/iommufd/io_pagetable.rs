// SPDX-License-Identifier: GPL-2.0

//! The IOVA layout of an IOAS.
//!
//! What is here so far is an IOAS with nothing mapped, no domain attached and
//! no reserved range: the whole 64-bit IOVA space is usable, at any alignment.
//! Areas, allowed and reserved ranges and domain apertures live here as they
//! are implemented.

use kernel::prelude::*;

pub(crate) struct IoPagetable {
    /// The alignment every mapped IOVA and length must have.
    iova_alignment: u64,
}

impl IoPagetable {
    pub(crate) fn new() -> Self {
        Self { iova_alignment: 1 }
    }

    pub(crate) fn iova_alignment(&self) -> u64 {
        self.iova_alignment
    }

    /// Calls `f(start, last)` for each maximal usable IOVA range, in order.
    pub(crate) fn for_each_usable_range(&self, mut f: impl FnMut(u64, u64) -> Result) -> Result {
        f(0, u64::MAX)
    }
}
