//! Block-aligned byte buffers for O_DIRECT I/O.
//!
//! O_DIRECT requires the memory address, the file offset and the length of
//! every transfer to be multiples of the logical block size. [`AlignedBuf`]
//! owns a zero-initialised allocation aligned to [`BLOCK_SIZE`] whose length is
//! always a whole number of blocks.

use std::alloc::{self, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// The block size of every Stele device: all I/O is in whole 4 KiB blocks.
pub const BLOCK_SIZE: usize = 4096;
// docs/FORMAT.md: "The block size is 4096".
const _: () = assert!(BLOCK_SIZE == 4096 && BLOCK_SIZE.is_power_of_two());

/// Round `n` up to the next multiple of [`BLOCK_SIZE`].
pub const fn align_up(n: u64) -> u64 {
    n.div_ceil(BLOCK_SIZE as u64) * BLOCK_SIZE as u64
}

/// Round `n` down to a multiple of [`BLOCK_SIZE`].
pub const fn align_down(n: u64) -> u64 {
    n - n % BLOCK_SIZE as u64
}

/// A zeroed, block-aligned heap buffer whose length is a multiple of [`BLOCK_SIZE`].
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: AlignedBuf uniquely owns its allocation (like Vec<u8>); moving it
// between threads moves that ownership and no aliasing pointer is kept.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only give out `&[u8]`, which is Sync.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes rounded up to whole blocks (at least one block).
    pub fn zeroed(len: usize) -> Self {
        let len = (align_up(len as u64) as usize).max(BLOCK_SIZE);
        let layout = Self::layout(len);
        // SAFETY: layout has non-zero size (len >= BLOCK_SIZE) and a valid
        // power-of-two alignment; alloc_zeroed returns either null (handled)
        // or a pointer valid for `len` zeroed bytes.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        AlignedBuf { ptr, len }
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len, BLOCK_SIZE).expect("block-aligned layout is valid")
    }

    /// Length in bytes (always a multiple of [`BLOCK_SIZE`]).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is valid for len initialised bytes for the lifetime of
        // self, and &self prevents concurrent mutation.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for len initialised bytes and &mut self makes
        // this the only live reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: ptr was returned by alloc_zeroed with exactly this layout
        // and is freed once, here.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        let b = AlignedBuf::zeroed(5000);
        assert_eq!(b.len(), 8192);
        assert_eq!(b.as_ptr() as usize % BLOCK_SIZE, 0);
        assert!(b.iter().all(|&x| x == 0));
        assert_eq!(align_up(0), 0);
        assert_eq!(align_up(1), 4096);
        assert_eq!(align_down(8191), 4096);
    }
}

/// Large plaintext buffers kept for reuse (media chunks), shared by the
/// producers, the builder and the sealing threads. It holds nothing of the
/// store, so a sealing job that outlives its batch keeps no store open.
#[derive(Default)]
pub struct PlaintextPool {
    free: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl PlaintextPool {
    /// Buffers smaller than this are not worth keeping.
    const KEEP_BYTES_MIN: usize = 256 << 10;
    /// At most this many buffers are kept.
    const KEEP_COUNT_MAX: usize = 32;

    /// A cleared buffer of at least `capacity` bytes, recycled if one is at hand.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        match free.iter().position(|b| b.capacity() >= capacity) {
            Some(i) => {
                let mut b = free.swap_remove(i);
                b.clear();
                b
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Hand back a buffer for reuse (small ones, or past the count, are freed).
    pub fn give(&self, b: Vec<u8>) {
        if b.capacity() >= Self::KEEP_BYTES_MIN {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            if free.len() < Self::KEEP_COUNT_MAX {
                free.push(b);
            }
        }
    }
}
