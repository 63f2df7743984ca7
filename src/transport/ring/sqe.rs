//! The two FUSE ring commands as 128-byte submission queue entries (`IORING_OP_URING_CMD` on a
//! `/dev/fuse` file, the command in the SQE's 80-byte tail).

use super::abi;
use io_uring::{opcode, squeue::Entry128, types};

/// Offset of `io_uring_sqe.len`, which REGISTER must set to the number of iovecs.
const SQE_LEN_OFFSET: usize = 24;
/// `FUSE_URING_IOV_SEGS`: a header buffer and a payload buffer.
const IOV_SEGS: u32 = 2;

/// Hands an entry's buffers to the kernel for queue `qid`: `iovecs` points at its two `iovec`s (header,
/// payload), read by the kernel while the SQE is submitted.
pub fn register(
    fuse: types::Fixed,
    qid: u16,
    iovecs: *const libc::iovec,
    user_data: u64,
) -> Entry128 {
    let sqe = opcode::UringCmd80::new(fuse, abi::CMD_REGISTER)
        .cmd(abi::cmd_req(0, qid))
        .addr(Some(iovecs as u64))
        .build()
        .user_data(user_data);
    with_len(sqe, IOV_SEGS)
}

/// Hands back the reply to request `commit_id` in an entry of queue `qid`, and gives the entry back for
/// the next request.
pub fn commit_and_fetch(fuse: types::Fixed, qid: u16, commit_id: u64, user_data: u64) -> Entry128 {
    opcode::UringCmd80::new(fuse, abi::CMD_COMMIT_AND_FETCH)
        .cmd(abi::cmd_req(commit_id, qid))
        .build()
        .user_data(user_data)
}

/// Sets the SQE's `len`, which `UringCmd80` has no setter for.
fn with_len(sqe: Entry128, len: u32) -> Entry128 {
    // SAFETY: `Entry128` is `#[repr(C)]`: the 64-byte `io_uring_sqe` (integers and unions of integers,
    // no padding) followed by `[u8; 64]`, 128 bytes in all (the transmute checks the size). The builder
    // starts from an all-zero SQE, so every byte is initialized.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute::<Entry128, [u8; 128]>(sqe) };
    raw[SQE_LEN_OFFSET..SQE_LEN_OFFSET + 4].copy_from_slice(&len.to_ne_bytes());
    // SAFETY: as above; any 128 bytes are a valid `Entry128`, whose fields are all plain integers.
    unsafe { std::mem::transmute::<[u8; 128], Entry128>(raw) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(sqe: &Entry128) -> [u8; 128] {
        // SAFETY: see `with_len`.
        unsafe { std::mem::transmute::<Entry128, [u8; 128]>(sqe.clone()) }
    }

    fn u32_at(raw: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(raw[at..at + 4].try_into().unwrap())
    }

    fn u64_at(raw: &[u8], at: usize) -> u64 {
        u64::from_ne_bytes(raw[at..at + 8].try_into().unwrap())
    }

    /// Offsets from `struct io_uring_sqe` in `<linux/io_uring.h>`.
    #[test]
    fn register_sqe_has_the_kernels_layout() {
        let iovecs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 2];
        let raw = bytes(&register(types::Fixed(0), 1, iovecs.as_ptr(), 0xfeed));
        assert_eq!(raw[0], 46, "IORING_OP_URING_CMD");
        assert_eq!(raw[1], 1, "IOSQE_FIXED_FILE");
        assert_eq!(u32_at(&raw, 4), 0, "fixed file index");
        assert_eq!(u32_at(&raw, 8), abi::CMD_REGISTER, "cmd_op");
        assert_eq!(u32_at(&raw, 12), 0, "__pad1");
        assert_eq!(u64_at(&raw, 16), iovecs.as_ptr() as u64, "addr");
        assert_eq!(u32_at(&raw, 24), 2, "len");
        assert_eq!(u32_at(&raw, 28), 0, "uring_cmd_flags");
        assert_eq!(u64_at(&raw, 32), 0xfeed, "user_data");
        assert_eq!(
            &raw[40..48],
            &[0u8; 8],
            "buf_index, personality, file_index"
        );
        assert_eq!(&raw[48..128], &abi::cmd_req(0, 1)[..], "cmd");
    }

    #[test]
    fn commit_sqe_carries_commit_id_and_qid() {
        let raw = bytes(&commit_and_fetch(types::Fixed(0), 3, 0x55aa, 7));
        assert_eq!(raw[0], 46);
        assert_eq!(u32_at(&raw, 8), abi::CMD_COMMIT_AND_FETCH);
        assert_eq!(u64_at(&raw, 16), 0, "addr");
        assert_eq!(u32_at(&raw, 24), 0, "len");
        assert_eq!(u64_at(&raw, 32), 7);
        assert_eq!(&raw[48..128], &abi::cmd_req(0x55aa, 3)[..]);
    }
}
