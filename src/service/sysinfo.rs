//! `sysinfo(2)` for a container, from the files the view renders for it: the pure half of the seccomp
//! answer (the ioctls and the write into the caller are in `crate::daemon::seccomp`).
//!
//! The values are read back from the caller's `/proc/meminfo`, `/proc/uptime` and `/proc/loadavg` as
//! cgview renders them, so `free` and `cat /proc/meminfo` agree by construction. They are encoded as the
//! kernel fills `struct sysinfo` (kernel/sys.c `do_sysinfo`): `uptime` rounded up to whole seconds,
//! `loads` in 16.16 fixed point (`SI_LOAD_SHIFT`), sizes in bytes with `mem_unit` 1 unless their sum
//! would overflow an `unsigned long`, in which case they stay in pages with `mem_unit` the page size.

use cgview_core::parse::meminfo::meminfo_value;
use cgview_core::parse::uptime::parse_uptime;
use cgview_core::parse::ParseError;

/// `SI_LOAD_SHIFT`: the fixed-point shift of `sysinfo.loads`.
pub const SI_LOAD_SHIFT: u32 = 16;

/// The size of `struct sysinfo` on the 64-bit ABIs this encodes (x86_64, aarch64).
pub const SYSINFO_SIZE: usize = 112;

/// The fields of `struct sysinfo`, in the kernel's units (see [`SysinfoValues::from_kb`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SysinfoValues {
    pub uptime: i64,
    pub loads: [u64; 3],
    pub totalram: u64,
    pub freeram: u64,
    pub sharedram: u64,
    pub bufferram: u64,
    pub totalswap: u64,
    pub freeswap: u64,
    pub procs: u16,
    pub totalhigh: u64,
    pub freehigh: u64,
    pub mem_unit: u32,
}

/// The memory figures of a meminfo text, in kB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryKb {
    pub total: u64,
    pub free: u64,
    pub shared: u64,
    pub buffers: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

impl MemoryKb {
    /// Reads `MemTotal` (required), `MemFree`, `Shmem`, `Buffers`, `SwapTotal` and `SwapFree` (0 when
    /// absent, as a kernel without swap prints them 0).
    pub fn from_meminfo(text: &str) -> Result<MemoryKb, ParseError> {
        let total = meminfo_value(text, "MemTotal")
            .ok_or_else(|| ParseError::new("/proc/meminfo", "MemTotal"))?;
        let field = |name| meminfo_value(text, name).unwrap_or(0);
        Ok(MemoryKb {
            total,
            free: field("MemFree"),
            shared: field("Shmem"),
            buffers: field("Buffers"),
            swap_total: field("SwapTotal"),
            swap_free: field("SwapFree"),
        })
    }
}

/// The load averages and the task count of a loadavg text (`0.52 0.58 0.59 2/1213 4321`): the
/// averages as printed, the count the denominator of the fourth field.
pub fn parse_loadavg(text: &str) -> Result<([f64; 3], u64), ParseError> {
    let bad = || ParseError::new("/proc/loadavg", text);
    let mut fields = text.split_ascii_whitespace();
    let mut loads = [0.0; 3];
    for load in &mut loads {
        let value: f64 = fields.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        if !value.is_finite() || value < 0.0 {
            return Err(bad());
        }
        *load = value;
    }
    let (_, total) = fields
        .next()
        .and_then(|f| f.split_once('/'))
        .ok_or_else(bad)?;
    let total = total.parse().map_err(|_| bad())?;
    Ok((loads, total))
}

/// A load average as the kernel encodes it in `sysinfo.loads`.
pub fn fixed_load(load: f64) -> u64 {
    // Saturating float-to-int conversion: a negative or absurd value cannot wrap.
    (load * f64::from(1u32 << SI_LOAD_SHIFT)).round() as u64
}

impl SysinfoValues {
    /// The struct for a caller whose files are these renders.
    pub fn from_rendered(
        meminfo: &str,
        uptime: &str,
        loadavg: &str,
        page_bytes: u64,
    ) -> Result<SysinfoValues, ParseError> {
        let memory = MemoryKb::from_meminfo(meminfo)?;
        let (up, _) = parse_uptime(uptime)?;
        let (loads, procs) = parse_loadavg(loadavg)?;
        Ok(Self::from_kb(&memory, up, loads, procs, page_bytes))
    }

    /// The kernel's encoding of these figures: `uptime` rounded up (the kernel adds a second for any
    /// nanoseconds), loads in fixed point, `procs` saturated to 16 bits, sizes in bytes with `mem_unit`
    /// 1, or in pages of `page_bytes` with `mem_unit` the page size when the byte sizes' sum would not
    /// fit 64 bits (the kernel's rule in `do_sysinfo`).
    pub fn from_kb(
        memory: &MemoryKb,
        uptime_secs: f64,
        loads: [f64; 3],
        procs: u64,
        page_bytes: u64,
    ) -> SysinfoValues {
        let sizes = [
            memory.total,
            memory.free,
            memory.shared,
            memory.buffers,
            memory.swap_total,
            memory.swap_free,
        ];
        let in_bytes = sizes
            .iter()
            .map(|kb| kb.checked_mul(1024))
            .collect::<Option<Vec<u64>>>()
            .filter(|bytes| bytes[0].checked_add(bytes[4]).is_some());
        let page_bytes = page_bytes.max(1);
        let (units, mem_unit) = match in_bytes {
            Some(bytes) => (bytes, 1),
            None => (
                sizes
                    .iter()
                    .map(|kb| kb.saturating_mul(1024) / page_bytes)
                    .collect(),
                u32::try_from(page_bytes).unwrap_or(u32::MAX),
            ),
        };
        SysinfoValues {
            uptime: uptime_secs.ceil() as i64,
            loads: loads.map(fixed_load),
            totalram: units[0],
            freeram: units[1],
            sharedram: units[2],
            bufferram: units[3],
            totalswap: units[4],
            freeswap: units[5],
            procs: u16::try_from(procs).unwrap_or(u16::MAX),
            totalhigh: 0,
            freehigh: 0,
            mem_unit,
        }
    }

    /// The bytes of `struct sysinfo` on a 64-bit little- or big-endian ABI in native byte order:
    /// longs at 0..80, `procs` and its pad at 80..84, 4 bytes of alignment, `totalhigh` and `freehigh`
    /// at 88..104, `mem_unit` at 104, zero padding to 112.
    pub fn encode(&self) -> [u8; SYSINFO_SIZE] {
        let mut out = [0u8; SYSINFO_SIZE];
        let longs = [
            self.uptime as u64,
            self.loads[0],
            self.loads[1],
            self.loads[2],
            self.totalram,
            self.freeram,
            self.sharedram,
            self.bufferram,
            self.totalswap,
            self.freeswap,
        ];
        for (slot, value) in out[..80].chunks_exact_mut(8).zip(longs) {
            slot.copy_from_slice(&value.to_ne_bytes());
        }
        out[80..82].copy_from_slice(&self.procs.to_ne_bytes());
        out[88..96].copy_from_slice(&self.totalhigh.to_ne_bytes());
        out[96..104].copy_from_slice(&self.freehigh.to_ne_bytes());
        out[104..108].copy_from_slice(&self.mem_unit.to_ne_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:         524288 kB\n\
                           MemFree:          400000 kB\n\
                           MemAvailable:     450000 kB\n\
                           Buffers:            1234 kB\n\
                           Cached:            50000 kB\n\
                           SwapCached:            0 kB\n\
                           Shmem:              4321 kB\n\
                           SwapTotal:         65536 kB\n\
                           SwapFree:          60000 kB\n";

    #[test]
    fn a_container_of_512_mib_in_bytes_with_mem_unit_1() {
        let values = SysinfoValues::from_rendered(
            MEMINFO,
            "12.01 20.50\n",
            "0.52 1.00 2.25 3/17 4321\n",
            4096,
        )
        .unwrap();
        assert_eq!(
            values,
            SysinfoValues {
                uptime: 13,
                loads: [34079, 65536, 147456],
                totalram: 512 << 20,
                freeram: 400_000 * 1024,
                sharedram: 4321 * 1024,
                bufferram: 1234 * 1024,
                totalswap: 64 << 20,
                freeswap: 60_000 * 1024,
                procs: 17,
                totalhigh: 0,
                freehigh: 0,
                mem_unit: 1,
            }
        );
    }

    #[test]
    fn whole_seconds_of_uptime_are_not_rounded_up() {
        let values = SysinfoValues::from_rendered(MEMINFO, "7.00 1.00\n", "0 0 0 1/1 1\n", 4096);
        assert_eq!(values.unwrap().uptime, 7);
    }

    #[test]
    fn sizes_whose_sum_overflows_stay_in_pages() {
        let memory = MemoryKb {
            total: u64::MAX / 1024,
            free: 8,
            shared: 0,
            buffers: 0,
            swap_total: 4096,
            swap_free: 4096,
        };
        let values = SysinfoValues::from_kb(&memory, 1.0, [0.0; 3], 70_000, 4096);
        assert_eq!(values.mem_unit, 4096);
        assert_eq!(values.totalswap, 1024);
        assert_eq!(values.freeram, 2);
        assert_eq!(values.procs, u16::MAX);
    }

    #[test]
    fn missing_optional_lines_are_zero_and_a_missing_total_is_an_error() {
        let memory = MemoryKb::from_meminfo("MemTotal: 100 kB\n").unwrap();
        assert_eq!(
            memory,
            MemoryKb {
                total: 100,
                ..MemoryKb::default()
            }
        );
        assert!(MemoryKb::from_meminfo("MemFree: 1 kB\n").is_err());
        assert!(parse_loadavg("0.1 0.2\n").is_err());
        assert!(parse_loadavg("0.1 0.2 0.3 1-2 5\n").is_err());
        assert!(parse_loadavg("-1 0.2 0.3 1/2 5\n").is_err());
        assert!(SysinfoValues::from_rendered(MEMINFO, "x y", "0 0 0 1/1 1", 4096).is_err());
    }

    #[test]
    fn the_encoding_is_libcs_struct_sysinfo() {
        assert_eq!(std::mem::size_of::<libc::sysinfo>(), SYSINFO_SIZE);
        let values = SysinfoValues {
            uptime: 1,
            loads: [2, 3, 4],
            totalram: 5,
            freeram: 6,
            sharedram: 7,
            bufferram: 8,
            totalswap: 9,
            freeswap: 10,
            procs: 11,
            totalhigh: 12,
            freehigh: 13,
            mem_unit: 14,
        };
        let bytes = values.encode();
        let long_at =
            |offset: usize| u64::from_ne_bytes(bytes[offset..offset + 8].try_into().unwrap());
        use std::mem::offset_of;
        assert_eq!(long_at(offset_of!(libc::sysinfo, uptime)), 1);
        assert_eq!(long_at(offset_of!(libc::sysinfo, loads) + 16), 4);
        assert_eq!(long_at(offset_of!(libc::sysinfo, totalram)), 5);
        assert_eq!(long_at(offset_of!(libc::sysinfo, freeram)), 6);
        assert_eq!(long_at(offset_of!(libc::sysinfo, sharedram)), 7);
        assert_eq!(long_at(offset_of!(libc::sysinfo, bufferram)), 8);
        assert_eq!(long_at(offset_of!(libc::sysinfo, totalswap)), 9);
        assert_eq!(long_at(offset_of!(libc::sysinfo, freeswap)), 10);
        let procs = offset_of!(libc::sysinfo, procs);
        assert_eq!(
            u16::from_ne_bytes(bytes[procs..procs + 2].try_into().unwrap()),
            11
        );
        assert_eq!(long_at(offset_of!(libc::sysinfo, totalhigh)), 12);
        assert_eq!(long_at(offset_of!(libc::sysinfo, freehigh)), 13);
        let unit = offset_of!(libc::sysinfo, mem_unit);
        assert_eq!(
            u32::from_ne_bytes(bytes[unit..unit + 4].try_into().unwrap()),
            14
        );
    }
}
