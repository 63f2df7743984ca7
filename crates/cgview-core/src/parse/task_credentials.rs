//! The credentials the kernel checks file access with, as `/proc/<tid>/status` and
//! `/proc/<tid>/{uid,gid}_map` show them to the reader.
//!
//! A FUSE request carries the caller's fsuid and fsgid only. Whether a caller is in a node's group
//! through a supplementary group, or may override the mode bits with a capability, needs the rest.

use super::ParseError;

/// `CAP_DAC_OVERRIDE`: read, write and search regardless of the mode bits.
pub const CAP_DAC_OVERRIDE: u32 = 1;
/// `CAP_DAC_READ_SEARCH`: read files and read and search directories regardless of the mode bits.
pub const CAP_DAC_READ_SEARCH: u32 = 2;

/// What `/proc/<tid>/status` says about a thread's credentials, in the reader's user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCredentials {
    /// The ids the kernel checks access with (the fourth `Uid:` and `Gid:` fields), which a FUSE request
    /// also carries.
    pub fsuid: u32,
    pub fsgid: u32,
    /// Supplementary groups (`Groups:`).
    pub groups: Vec<u32>,
    /// Effective capabilities (`CapEff:`), in the thread's own user namespace.
    pub effective_caps: u64,
}

impl TaskCredentials {
    /// Whether `gid` is the thread's fsgid or one of its supplementary groups (the kernel's
    /// `in_group_p`).
    pub fn in_group(&self, gid: u32) -> bool {
        self.fsgid == gid || self.groups.contains(&gid)
    }

    pub fn has_capability(&self, capability: u32) -> bool {
        capability < 64 && self.effective_caps & (1 << capability) != 0
    }
}

const STATUS: &str = "/proc/<tid>/status";

/// The credential lines of a `/proc/<tid>/status` text. Every one of `Uid:`, `Gid:`, `Groups:` and
/// `CapEff:` must be present and well formed: a partial answer could grant what the kernel would not.
pub fn parse_task_credentials(status: &str) -> Result<TaskCredentials, ParseError> {
    let bad = || ParseError::new(STATUS, status);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .ok_or_else(bad)
    };
    // Real, effective, saved and file-system ids, in that order.
    let fs_id = |name: &str| -> Result<u32, ParseError> {
        let ids: Vec<&str> = field(name)?.split_ascii_whitespace().collect();
        match ids.as_slice() {
            [_, _, _, fs] => fs.parse().map_err(|_| bad()),
            _ => Err(bad()),
        }
    };
    let groups = field("Groups")?
        .split_ascii_whitespace()
        .map(|g| g.parse().map_err(|_| bad()))
        .collect::<Result<Vec<u32>, _>>()?;
    let effective_caps = u64::from_str_radix(field("CapEff")?.trim(), 16).map_err(|_| bad())?;
    Ok(TaskCredentials {
        fsuid: fs_id("Uid")?,
        fsgid: fs_id("Gid")?,
        groups,
        effective_caps,
    })
}

/// One line of a `uid_map` or `gid_map`: `count` ids from `inside` in the namespace are `outside` on in
/// the reader's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// A user namespace's id map as its reader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdMap(pub Vec<IdRange>);

impl IdMap {
    /// Whether `id` of the reader's namespace has an id in the mapped namespace (`kuid_has_mapping`).
    pub fn maps(&self, id: u32) -> bool {
        self.0
            .iter()
            .any(|r| id >= r.outside && u64::from(id) < u64::from(r.outside) + u64::from(r.count))
    }
}

/// A `/proc/<tid>/uid_map` or `gid_map` text: lines of `inside outside count`.
pub fn parse_id_map(text: &str) -> Result<IdMap, ParseError> {
    let bad = || ParseError::new("/proc/<tid>/uid_map", text);
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let [inside, outside, count] = fields.as_slice() else {
                return Err(bad());
            };
            Ok(IdRange {
                inside: inside.parse().map_err(|_| bad())?,
                outside: outside.parse().map_err(|_| bad())?,
                count: count.parse().map_err(|_| bad())?,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(IdMap)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credential lines of a real status (Linux 6.18), of a thread run with
    /// `setpriv --reuid 1000 --regid 1000 --groups 4,27`, around other lines.
    const STATUS_TEXT: &str =
        "Name:\tsh\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4242\n\
        Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nFDSize:\t64\nGroups:\t4 27 \n\
        NSpid:\t4242\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
        CapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\n";

    #[test]
    fn parse_task_credentials_reads_fs_ids_groups_and_effective_caps() {
        let credentials = parse_task_credentials(STATUS_TEXT).unwrap();
        assert_eq!(
            credentials,
            TaskCredentials {
                fsuid: 1000,
                fsgid: 1000,
                groups: vec![4, 27],
                effective_caps: 0,
            }
        );
        assert!(credentials.in_group(27));
        assert!(credentials.in_group(1000));
        assert!(!credentials.in_group(0));
    }

    #[test]
    fn parse_task_credentials_takes_the_fourth_ids_as_the_fs_ids() {
        // setfsuid(2) changes only the last field; the kernel checks access with it.
        let status =
            "Uid:\t0\t0\t0\t65534\nGid:\t0\t0\t0\t65534\nGroups:\t\nCapEff:\t000001ffffffffff\n";
        let credentials = parse_task_credentials(status).unwrap();
        assert_eq!((credentials.fsuid, credentials.fsgid), (65534, 65534));
        assert!(credentials.groups.is_empty());
        assert!(credentials.has_capability(CAP_DAC_OVERRIDE));
        assert!(credentials.has_capability(CAP_DAC_READ_SEARCH));
        assert!(!credentials.has_capability(64));
    }

    #[test]
    fn parse_task_credentials_refuses_partial_or_malformed_text() {
        for status in [
            "",
            "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t0\n",
            "Uid:\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\nCapEff:\t0\n",
            "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\tx\nCapEff:\t0\n",
            "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\nCapEff:\tzz\n",
            "Uid:\t0\t0\t0\t-1\nGid:\t0\t0\t0\t0\nGroups:\t\nCapEff:\t0\n",
        ] {
            assert!(parse_task_credentials(status).is_err(), "{status:?}");
        }
    }

    #[test]
    fn id_map_maps_ids_inside_its_ranges_only() {
        let map =
            parse_id_map("         0     100000      65536\n     65536       1000          1\n")
                .unwrap();
        assert!(map.maps(100000) && map.maps(165535) && map.maps(1000));
        assert!(!map.maps(0) && !map.maps(165536) && !map.maps(999));
        let whole = parse_id_map("         0          0 4294967295\n").unwrap();
        assert!(whole.maps(0) && whole.maps(u32::MAX - 1));
        assert!(!whole.maps(u32::MAX), "(uid_t)-1 is never mapped");
        assert_eq!(parse_id_map("").unwrap(), IdMap::default());
        assert!(parse_id_map("0 0\n").is_err());
    }
}
