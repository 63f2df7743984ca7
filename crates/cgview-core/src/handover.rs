//! What a daemon passes to its successor with the live `/dev/fuse` descriptor: the facts of the
//! connection the successor cannot ask the kernel again (INIT happens once per connection). Text, one
//! `key value` per line, so that daemons of different versions read each other's records: unknown keys
//! are skipped, and a missing key is an error naming it.

use std::fmt;

/// The connection a daemon hands over.
#[derive(Clone, PartialEq, Eq)]
pub struct Handover {
    /// How many daemons served the connection before the one this record is for (0: the daemon that
    /// mounted it). File handles are numbered per generation, so no two daemons issue the same one.
    pub generation: u32,
    /// The mount's device (`major:minor`), as `/proc/self/mountinfo` shows it.
    pub device: String,
    /// `max_write` agreed at INIT: a `/dev/fuse` read must offer room for a write this large.
    pub max_write: u32,
    /// Whether INIT agreed to FUSE over io_uring: requests then only arrive on rings.
    pub io_uring: bool,
    /// The secret mirrored sysfs entries are numbered with, so that they keep their inode numbers across
    /// daemons. Absent in a record of a daemon that had none to give: the successor numbers afresh.
    pub mirror_seed: Option<[u64; 2]>,
}

impl fmt::Debug for Handover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handover")
            .field("generation", &self.generation)
            .field("device", &self.device)
            .field("max_write", &self.max_write)
            .field("io_uring", &self.io_uring)
            // A secret: never in a log.
            .field("mirror_seed", &self.mirror_seed.map(|_| ".."))
            .finish()
    }
}

/// A record that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoverError {
    Missing(&'static str),
    Invalid { key: &'static str, value: String },
}

impl fmt::Display for HandoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandoverError::Missing(key) => write!(f, "the handover record has no `{key}`"),
            HandoverError::Invalid { key, value } => {
                write!(f, "the handover record's `{key}` is not valid: {value:?}")
            }
        }
    }
}

impl std::error::Error for HandoverError {}

impl Handover {
    pub fn encode(&self) -> String {
        let mut text = format!(
            "generation {}\ndevice {}\nmax_write {}\nio_uring {}\n",
            self.generation,
            self.device,
            self.max_write,
            u8::from(self.io_uring)
        );
        if let Some([high, low]) = self.mirror_seed {
            text.push_str(&format!("mirror_seed {high:016x}{low:016x}\n"));
        }
        text
    }

    pub fn decode(text: &str) -> Result<Handover, HandoverError> {
        let value = |key: &'static str| {
            text.lines()
                .filter_map(|line| line.split_once(' '))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.trim())
                .ok_or(HandoverError::Missing(key))
        };
        let number = |key: &'static str| -> Result<u32, HandoverError> {
            let raw = value(key)?;
            raw.parse().map_err(|_| HandoverError::Invalid {
                key,
                value: raw.to_owned(),
            })
        };
        let device = value("device")?;
        let valid_device = device.split_once(':').is_some_and(|(major, minor)| {
            major.parse::<u32>().is_ok() && minor.parse::<u32>().is_ok()
        });
        if !valid_device {
            return Err(HandoverError::Invalid {
                key: "device",
                value: device.to_owned(),
            });
        }
        let io_uring = match value("io_uring")? {
            "0" => false,
            "1" => true,
            other => {
                return Err(HandoverError::Invalid {
                    key: "io_uring",
                    value: other.to_owned(),
                })
            }
        };
        let mirror_seed = match value("mirror_seed") {
            Err(HandoverError::Missing(_)) => None,
            Err(e) => return Err(e),
            Ok(hex) => Some(seed(hex).ok_or_else(|| HandoverError::Invalid {
                key: "mirror_seed",
                value: hex.to_owned(),
            })?),
        };
        Ok(Handover {
            generation: number("generation")?,
            device: device.to_owned(),
            max_write: number("max_write")?,
            io_uring,
            mirror_seed,
        })
    }

    /// The record the next daemon gets.
    pub fn successor(&self) -> Handover {
        Handover {
            generation: self.generation.saturating_add(1),
            ..self.clone()
        }
    }
}

/// 32 hex digits: two 64-bit halves.
fn seed(hex: &str) -> Option<[u64; 2]> {
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let half = |range: std::ops::Range<usize>| u64::from_str_radix(&hex[range], 16).ok();
    Some([half(0..16)?, half(16..32)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Handover {
        Handover {
            generation: 3,
            device: "0:57".into(),
            max_write: 131072,
            io_uring: true,
            mirror_seed: Some([0x0123_4567_89ab_cdef, 7]),
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        assert_eq!(Handover::decode(&record().encode()), Ok(record()));
    }

    #[test]
    fn unknown_keys_of_a_newer_daemon_are_skipped() {
        let text = format!("ring_depth 4\n{}future yes\n", record().encode());
        assert_eq!(Handover::decode(&text), Ok(record()));
    }

    #[test]
    fn a_missing_or_bad_value_is_named() {
        assert_eq!(
            Handover::decode("generation 1\ndevice 0:1\nio_uring 0\n"),
            Err(HandoverError::Missing("max_write"))
        );
        let bad = record().encode().replace("0:57", "57");
        assert!(matches!(
            Handover::decode(&bad),
            Err(HandoverError::Invalid { key: "device", .. })
        ));
        let bad = record()
            .encode()
            .replace("0000000000000007", "00000000000000g7");
        assert!(matches!(
            Handover::decode(&bad),
            Err(HandoverError::Invalid {
                key: "mirror_seed",
                ..
            })
        ));
        let no_seed = Handover {
            mirror_seed: None,
            ..record()
        };
        assert_eq!(Handover::decode(&no_seed.encode()), Ok(no_seed));
        let bad = record().encode().replace("io_uring 1", "io_uring yes");
        assert!(matches!(
            Handover::decode(&bad),
            Err(HandoverError::Invalid {
                key: "io_uring",
                ..
            })
        ));
    }

    #[test]
    fn the_successor_is_the_next_generation_of_the_same_connection() {
        let next = record().successor();
        assert_eq!(next.generation, 4);
        assert_eq!(next.device, "0:57");
        let last = Handover {
            generation: u32::MAX,
            ..record()
        };
        assert_eq!(last.successor().generation, u32::MAX);
    }
}
