//! Memory shared with the kernel: a ring entry's buffers, which the kernel reads and writes through the
//! addresses given at registration for as long as it holds the entry.

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;

/// Page alignment: the payload then starts on a page, as the kernel's own page-sized copies prefer.
const ALIGN: usize = 4096;

/// A zeroed allocation at a fixed address. Dropping it leaks it on purpose: only its owner knows when the
/// kernel has let go of it, and says so by calling [`free`](SharedBuffer::free).
pub struct SharedBuffer {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl SharedBuffer {
    /// Fails with ENOMEM rather than aborting the process.
    pub fn zeroed(len: usize) -> io::Result<SharedBuffer> {
        let layout = Layout::from_size_align(len.max(1), ALIGN)
            .map_err(|_| io::Error::from_raw_os_error(libc::ENOMEM))?;
        // SAFETY: the layout's size is not zero.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(SharedBuffer { ptr, layout })
    }

    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// The buffer's bytes.
    ///
    /// # Safety
    /// The kernel must hold no command that names this buffer (between an entry's completion and its next
    /// submission).
    pub unsafe fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live allocation of `len()` bytes (only `free`, which consumes `self`, releases
        // it), initialized by `alloc_zeroed` and since then written only as bytes. `&mut self` rules out a
        // second slice from this side; the caller rules out the kernel.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }

    /// Releases the memory.
    ///
    /// # Safety
    /// The kernel must never again read or write it: it was never registered, or every command that named
    /// it has completed for good.
    pub unsafe fn free(self) {
        // SAFETY: allocated by `alloc_zeroed` with this layout, and not freed before: `free` consumes it.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_is_zeroed_aligned_and_writable() {
        let mut buffer = SharedBuffer::zeroed(8192 + 4096).unwrap();
        assert_eq!(buffer.len(), 12288);
        assert_eq!(buffer.as_mut_ptr() as usize % ALIGN, 0);
        // SAFETY: never registered with a kernel.
        let bytes = unsafe { buffer.bytes_mut() };
        assert!(bytes.iter().all(|&b| b == 0));
        bytes[12287] = 1;
        // SAFETY: never registered with a kernel.
        unsafe { buffer.free() };
    }

    #[test]
    fn impossible_size_is_enomem() {
        let error = SharedBuffer::zeroed(usize::MAX - 100).err().unwrap();
        assert_eq!(error.raw_os_error(), Some(libc::ENOMEM));
    }
}
