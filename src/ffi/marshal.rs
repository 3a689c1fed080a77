//! The one step at the top of every C entry point that turns raw
//! parameters into Rust values.
//!
//! Every entry point follows the same order, so that no raw pointer is
//! left for its body to re-read:
//!
//! 1. **Counts first.** Every element count is compared with what the model
//!    expects (and with `PTRDIFF_MAX` in bytes) before any caller memory
//!    behind it is read.
//! 2. **Regions.** Every caller region the call will read or write (address,
//!    bytes, writable) is registered in one [`Regions`]; two writable regions
//!    that overlap are rejected; a readable region that overlaps a writable
//!    one is copied (float inputs) or rejected (pointer arrays) before
//!    anything is written.
//! 3. **Only Rust values reach the body**: aligned, disjoint buffers become
//!    slices; misaligned ones are read through [`Unaligned`] slices (which
//!    have alignment 1, so forming them is always sound) or copied; handles
//!    are checked by their magic word ([`Handle`]).
//! 4. **Caller memory is written last**, after its last read: outputs that
//!    could not be borrowed are copied out at the end; model constructors
//!    write `*out_model` and the message only after every input was read.

use std::mem::size_of;

use super::{FfiResult, RnncellStatus, check_count, fail};

/// A `T` stored at any address: `&[Unaligned<T>]` may be formed over caller
/// memory of any alignment, and each element is read by value.
#[repr(C, packed)]
#[derive(Clone, Copy)]
pub(crate) struct Unaligned<T: Copy>(T);

impl<T: Copy> Unaligned<T> {
    /// The value (a by-value read of the packed field).
    #[inline]
    pub(crate) fn get(&self) -> T {
        self.0
    }
}

/// `n` elements of `T` at `p`, any alignment, as a Rust slice (empty for
/// `n == 0`, whatever `p` is).
///
/// # Safety
/// `p` is non-null and valid for reads of `n` initialised `T`s that are not
/// written during `'a`; `check_count::<T>(n)` has passed.
pub(crate) unsafe fn unaligned_slice<'a, T: Copy>(p: *const T, n: usize) -> &'a [Unaligned<T>] {
    if n == 0 {
        return &[];
    }
    // SAFETY: `Unaligned<T>` has the size of `T` and alignment 1, so any
    // non-null `p` is aligned for it; `p` is readable for n elements and not
    // mutated during 'a (caller); n * size_of::<T>() <= isize::MAX (caller
    // checked the count).
    unsafe { std::slice::from_raw_parts(p.cast::<Unaligned<T>>(), n) }
}

/// One caller region of a call.
#[derive(Clone, Copy, Debug)]
struct Region {
    start: usize,
    end: usize,
    writable: bool,
}

/// Every caller region one call reads or writes (fixed capacity: the step
/// calls must not allocate).
pub(crate) struct Regions<const N: usize> {
    list: [Region; N],
    len: usize,
}

/// The index of a registered region (or of an empty one, which overlaps
/// nothing).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RegionId(usize);

impl<const N: usize> Regions<N> {
    pub(crate) fn new() -> Self {
        Regions {
            list: [Region {
                start: 0,
                end: 0,
                writable: false,
            }; N],
            len: 0,
        }
    }

    fn add<T>(&mut self, p: *const T, count: usize, writable: bool) -> FfiResult<RegionId> {
        check_count::<T>(count)?;
        if self.len == N {
            // A bug in the entry point, not a caller error.
            return Err(RnncellStatus::Panic);
        }
        let start = p as usize;
        let bytes = count * size_of::<T>();
        let end = if p.is_null() {
            start
        } else {
            start.saturating_add(bytes)
        };
        self.list[self.len] = Region {
            start,
            end,
            writable,
        };
        self.len += 1;
        Ok(RegionId(self.len - 1))
    }

    /// Registers `count` elements of `T` read at `p` (null or empty:
    /// nothing is read). A count too large for `isize` bytes is
    /// [`RnncellStatus::SizeOverflow`].
    pub(crate) fn read<T>(&mut self, p: *const T, count: usize) -> FfiResult<RegionId> {
        self.add(p, count, false)
    }

    /// Registers `count` elements of `T` written at `p`.
    pub(crate) fn write<T>(&mut self, p: *mut T, count: usize) -> FfiResult<RegionId> {
        self.add(p.cast_const(), count, true)
    }

    fn overlap(a: &Region, b: &Region) -> bool {
        a.start < a.end && b.start < b.end && a.start < b.end && b.start < a.end
    }

    /// Rejects two writable regions that overlap
    /// ([`RnncellStatus::InvalidArgument`]): no order of writes could make
    /// both results right.
    pub(crate) fn check_writes(&self) -> FfiResult<()> {
        let l = &self.list[..self.len];
        for (i, a) in l.iter().enumerate() {
            for b in &l[i + 1..] {
                if a.writable && b.writable && Self::overlap(a, b) {
                    return Err(fail(
                        RnncellStatus::InvalidArgument,
                        format_args!("two output buffers overlap"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether region `id` overlaps a writable region other than itself.
    pub(crate) fn aliased(&self, id: RegionId) -> bool {
        let a = &self.list[id.0];
        self.list[..self.len]
            .iter()
            .enumerate()
            .any(|(j, b)| j != id.0 && b.writable && Self::overlap(a, b))
    }
}

/// A value behind its magic word: `#[repr(C)]`, so the word is at offset 0.
#[repr(C)]
pub(crate) struct Tagged<T> {
    magic: u64,
    pub(crate) value: T,
}

impl<T> Tagged<T> {
    pub(crate) fn magic_mut(&mut self) -> &mut u64 {
        &mut self.magic
    }

    pub(crate) fn new<H: Handle>(value: T) -> Tagged<T> {
        Tagged {
            magic: H::MAGIC,
            value,
        }
    }
}

/// An opaque C handle: a struct whose first field is a magic
/// word, checked on every call and poisoned on free (as libimagequant
/// does), so that a state passed as a model, a freed handle or a stray
/// pointer is [`RnncellStatus::InvalidArgument`] rather than memory read
/// as the wrong type (rustls-ffi's `Castable`, reduced to what we need).
///
/// # Safety
/// Implementors hold a [`Tagged`] as their only field (so at offset 0: a
/// `const` assertion with `offset_of!` next to each impl proves it; the
/// handles themselves cannot be `#[repr(C)]`, which would make cbindgen emit
/// their fields), whose magic word is `MAGIC` for every live value and only
/// for live values of this type.
pub(crate) unsafe trait Handle: Sized {
    /// The live value of the magic word.
    const MAGIC: u64;
    /// What the handle is called in error messages (`"model"`, `"state"`).
    const KIND: &'static str;
    /// What a handle's magic word becomes when it is freed.
    const FREED: u64 = 0x6672_6565_645f_5f5f; // "freed___"

    /// The magic word.
    fn magic_mut(&mut self) -> &mut u64;

    /// Boxes `v` and hands its pointer to C.
    fn into_raw(v: Self) -> *mut Self {
        Box::into_raw(Box::new(v))
    }

    /// Whether `p` is non-null, aligned and carries `MAGIC` (records no
    /// error detail: `free` uses it).
    ///
    /// # Safety
    /// A non-null, aligned `p` must be readable for 8 bytes (any handle the
    /// library returned, live or freed and not yet reused, satisfies this).
    unsafe fn is_live(p: *const Self) -> bool {
        // SAFETY: non-null and aligned for Self, which holds a u64 at offset
        // 0 (trait contract), readable for 8 bytes (caller).
        !p.is_null() && p.is_aligned() && unsafe { p.cast::<u64>().read() } == Self::MAGIC
    }

    /// Checks that `p` is a live handle; the error names the handle.
    ///
    /// # Safety
    /// As [`Handle::is_live`].
    unsafe fn check(p: *const Self) -> FfiResult<()> {
        if p.is_null() {
            return Err(fail(
                RnncellStatus::NullPointer,
                format_args!("{} is NULL", Self::KIND),
            ));
        }
        // SAFETY: forwarded.
        if !unsafe { Self::is_live(p) } {
            return Err(fail(
                RnncellStatus::InvalidArgument,
                format_args!(
                    "{} is not a live handle (freed, or not one rnncell returned)",
                    Self::KIND
                ),
            ));
        }
        Ok(())
    }

    /// The handle as a shared reference.
    ///
    /// # Safety
    /// `p` null or a pointer the library returned for this type; while 'a
    /// lasts nobody mutates it.
    unsafe fn from_ptr<'a>(p: *const Self) -> FfiResult<&'a Self> {
        // SAFETY: forwarded.
        unsafe { Self::check(p) }?;
        // SAFETY: checked non-null, aligned, and carrying MAGIC, so it is a
        // live boxed Self (trait contract), not mutated during 'a (caller).
        Ok(unsafe { &*p })
    }

    /// The handle as an exclusive reference.
    ///
    /// # Safety
    /// `p` null or a pointer the library returned for this type; while 'a
    /// lasts nobody else uses it.
    unsafe fn from_mut_ptr<'a>(p: *mut Self) -> FfiResult<&'a mut Self> {
        // SAFETY: forwarded.
        unsafe { Self::check(p) }?;
        // SAFETY: as `from_ptr`, and exclusively ours during 'a (caller).
        Ok(unsafe { &mut *p })
    }

    /// Frees a handle; NULL and anything without the live magic word (a
    /// double free, a handle of another type) are ignored.
    ///
    /// # Safety
    /// `p` null or a pointer the library returned for this type, not in use
    /// by another thread.
    unsafe fn free(p: *mut Self) {
        // SAFETY: forwarded.
        if !unsafe { Self::is_live(p) } {
            return;
        }
        // SAFETY: a live boxed Self (checked), exclusively ours (caller).
        let mut b = unsafe { Box::from_raw(p) };
        *b.magic_mut() = Self::FREED;
        drop(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_overlap_rules() {
        let mut buf = [0f32; 16];
        let base = buf.as_mut_ptr();
        let mut r = Regions::<4>::new();
        let a = r.read(base.cast_const(), 8).unwrap();
        let b = r.write(base.wrapping_add(4), 4).unwrap();
        let c = r.read(base.wrapping_add(8).cast_const(), 8).unwrap();
        let d = r.read(std::ptr::null::<f32>(), 8).unwrap();
        r.check_writes().unwrap();
        assert!(r.aliased(a));
        assert!(!r.aliased(b));
        assert!(!r.aliased(c));
        assert!(!r.aliased(d));
        let mut w = Regions::<2>::new();
        w.write(base, 5).unwrap();
        w.write(base.wrapping_add(4), 1).unwrap();
        assert_eq!(w.check_writes(), Err(RnncellStatus::InvalidArgument));
        let mut full = Regions::<1>::new();
        full.read(base.cast_const(), 1).unwrap();
        assert_eq!(
            full.read(base.cast_const(), 1).unwrap_err(),
            RnncellStatus::Panic
        );
        assert_eq!(
            Regions::<1>::new()
                .read(base.cast_const(), usize::MAX / 2)
                .unwrap_err(),
            RnncellStatus::SizeOverflow
        );
    }

    #[test]
    fn unaligned_reads() {
        let bytes: Vec<u8> = (0u8..40).collect();
        // SAFETY: 32 bytes from offset 1 are in bounds; any alignment.
        let s = unsafe { unaligned_slice(bytes.as_ptr().add(1).cast::<u64>(), 4) };
        assert_eq!(
            s[0].get(),
            u64::from_ne_bytes(bytes[1..9].try_into().unwrap())
        );
    }
}
