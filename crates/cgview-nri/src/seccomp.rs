//! The seccomp adjustment (`--nri-seccomp-socket`, NRI 0.10+): the container's own policy, with
//! `sysinfo` handed to cgview's daemon. Pure: the policy the runtime describes in, the adjusted one (or
//! why it is left alone) out.
//!
//! The runtime replaces the container's whole `linux.seccomp` with what a plugin returns, so the answer
//! is the container's policy merged with the rule, never the rule alone: every default action, errno,
//! architecture, flag, rule and argument is kept; `sysinfo` leaves every rule naming it (a rule left
//! with no names is dropped); a rule `{names: [sysinfo], action: SCMP_ACT_NOTIFY}` is appended; and
//! `listenerPath`/`listenerMetadata` name cgview's socket.
//!
//! Left alone, and counted:
//! - no policy (the container runs unconfined): adding one would confine it, refusing every call its
//!   default action refuses;
//! - a policy that already has a `listenerPath`: another agent's notify rules (there is one listener
//!   per container), or cgview's own rule from a Localhost profile (`packaging/seccomp`);
//! - a policy that does not plainly allow `sysinfo` (a rule naming it with another action than
//!   `SCMP_ACT_ALLOW`/`SCMP_ACT_LOG` or with argument conditions, or, when no rule names it, a
//!   default action that refuses it): answering it would undo the profile's choice.
//!
//! A default action `SCMP_ACT_ALLOW` is no special case: `sysinfo` is allowed by it, and the appended
//! rule hands it to cgview while everything else stays allowed.

use crate::proto::{LinuxSeccomp, LinuxSyscall};

/// The call handed to cgview.
pub const SYSCALL: &str = "sysinfo";
/// The action that hands it (runc 1.1+, crun 0.19+; the kernel's user notification, Linux 5.0+).
pub const NOTIFY: &str = "SCMP_ACT_NOTIFY";
/// What `listenerMetadata` says unless told otherwise: the daemon logs it with each descriptor; the
/// same as `packaging/seccomp/sysinfo-notify.json`'s.
pub const DEFAULT_METADATA: &str = "cgview-sysinfo";

/// Actions under which the call runs as asked.
const ALLOWING: [&str; 2] = ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG"];

/// Why a container's policy is left as it is; the label of its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeccompSkip {
    /// The container has no seccomp policy (`Unconfined`).
    Unconfined,
    /// The policy already names a listener (another agent's, or cgview's from a Localhost profile).
    HasListener,
    /// The policy refuses or restricts `sysinfo`.
    SysinfoRestricted,
    /// cgview's seccomp socket was not served, and the policy is to start the container anyway.
    NotServed,
}

impl SeccompSkip {
    pub const ALL: [SeccompSkip; 4] = [
        SeccompSkip::Unconfined,
        SeccompSkip::HasListener,
        SeccompSkip::SysinfoRestricted,
        SeccompSkip::NotServed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SeccompSkip::Unconfined => "unconfined",
            SeccompSkip::HasListener => "has_listener",
            SeccompSkip::SysinfoRestricted => "sysinfo_restricted",
            SeccompSkip::NotServed => "not_served",
        }
    }
}

/// What to do with a container's seccomp policy.
#[derive(Debug, Clone, PartialEq)]
pub enum SeccompDecision {
    /// Answer with this policy.
    Adjust(LinuxSeccomp),
    Leave {
        reason: SeccompSkip,
        detail: String,
    },
}

/// The container's `current` policy with `sysinfo` handed to the listener at `listener_path`.
pub fn adjust(
    current: Option<&LinuxSeccomp>,
    listener_path: &str,
    metadata: &str,
) -> SeccompDecision {
    let leave = |reason, detail: String| SeccompDecision::Leave { reason, detail };
    let Some(current) = current else {
        return leave(
            SeccompSkip::Unconfined,
            "it runs without a seccomp profile (Unconfined), and adding one would confine it"
                .into(),
        );
    };
    if !current.listener_path.is_empty() {
        return leave(
            SeccompSkip::HasListener,
            format!(
                "its seccomp profile already hands calls to {} (one listener per container)",
                current.listener_path
            ),
        );
    }
    if let Err(why) = sysinfo_allowed(current) {
        return leave(SeccompSkip::SysinfoRestricted, why);
    }
    let mut adjusted = current.clone();
    adjusted.listener_path = listener_path.to_owned();
    adjusted.listener_metadata = metadata.to_owned();
    adjusted.syscalls = current
        .syscalls
        .iter()
        .filter_map(|rule| {
            let names: Vec<String> = rule
                .names
                .iter()
                .filter(|name| *name != SYSCALL)
                .cloned()
                .collect();
            (!names.is_empty()).then(|| LinuxSyscall {
                names,
                ..rule.clone()
            })
        })
        .collect();
    adjusted.syscalls.push(LinuxSyscall {
        names: vec![SYSCALL.to_owned()],
        action: NOTIFY.to_owned(),
        errno_ret: None,
        args: Vec::new(),
    });
    SeccompDecision::Adjust(adjusted)
}

/// `Ok` when the policy lets `sysinfo` run as asked, whatever its arguments; else what it does instead.
fn sysinfo_allowed(policy: &LinuxSeccomp) -> Result<(), String> {
    let naming: Vec<&LinuxSyscall> = policy
        .syscalls
        .iter()
        .filter(|rule| rule.names.iter().any(|name| name == SYSCALL))
        .collect();
    if naming.is_empty() {
        return if ALLOWING.contains(&policy.default_action.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "its seccomp profile refuses {SYSCALL} (default action {}, no rule names it)",
                policy.default_action
            ))
        };
    }
    match naming
        .iter()
        .find(|rule| !ALLOWING.contains(&rule.action.as_str()) || !rule.args.is_empty())
    {
        None => Ok(()),
        Some(rule) if rule.args.is_empty() => Err(format!(
            "its seccomp profile gives {SYSCALL} the action {}",
            rule.action
        )),
        Some(rule) => Err(format!(
            "its seccomp profile gives {SYSCALL} the action {} on {} argument condition(s)",
            rule.action,
            rule.args.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{LinuxSeccompArg, OptionalUInt32};

    fn rule(names: &[&str], action: &str) -> LinuxSyscall {
        LinuxSyscall {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            action: action.to_owned(),
            ..LinuxSyscall::default()
        }
    }

    /// RuntimeDefault's shape: refuse by default, allow a list (sysinfo in it), conditions on others.
    fn runtime_default() -> LinuxSeccomp {
        let mut personality = rule(&["personality"], "SCMP_ACT_ALLOW");
        personality.args.push(LinuxSeccompArg {
            index: 0,
            value: 8,
            value_two: 0,
            op: "SCMP_CMP_EQ".into(),
        });
        let mut errno = rule(&["clone3"], "SCMP_ACT_ERRNO");
        errno.errno_ret = Some(OptionalUInt32 { value: 38 });
        LinuxSeccomp {
            default_action: "SCMP_ACT_ERRNO".into(),
            default_errno: Some(OptionalUInt32 { value: 1 }),
            architectures: vec!["SCMP_ARCH_X86_64".into(), "SCMP_ARCH_X86".into()],
            flags: vec!["SECCOMP_FILTER_FLAG_SPEC_ALLOW".into()],
            syscalls: vec![
                rule(&["read", "sysinfo", "write"], "SCMP_ACT_ALLOW"),
                rule(&["sysinfo"], "SCMP_ACT_ALLOW"),
                personality,
                errno,
            ],
            ..LinuxSeccomp::default()
        }
    }

    fn adjusted(decision: SeccompDecision) -> LinuxSeccomp {
        match decision {
            SeccompDecision::Adjust(policy) => policy,
            other => panic!("{other:?}"),
        }
    }

    fn reason(decision: SeccompDecision) -> SeccompSkip {
        match decision {
            SeccompDecision::Leave { reason, .. } => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_rule_is_merged_into_the_containers_policy_keeping_everything_else() {
        let current = runtime_default();
        let policy = adjusted(adjust(Some(&current), "/run/cgview/seccomp.sock", "m"));
        assert_eq!(policy.listener_path, "/run/cgview/seccomp.sock");
        assert_eq!(policy.listener_metadata, "m");
        assert_eq!(policy.default_action, current.default_action);
        assert_eq!(policy.default_errno, current.default_errno);
        assert_eq!(policy.architectures, current.architectures);
        assert_eq!(policy.flags, current.flags);
        // sysinfo left the first rule, the second (sysinfo alone) is gone, the others are as they were.
        assert_eq!(
            policy.syscalls,
            vec![
                rule(&["read", "write"], "SCMP_ACT_ALLOW"),
                current.syscalls[2].clone(),
                current.syscalls[3].clone(),
                rule(&["sysinfo"], NOTIFY),
            ]
        );
        // The result is a policy the function leaves alone: its listener is set.
        assert_eq!(
            reason(adjust(Some(&policy), "/run/cgview/seccomp.sock", "m")),
            SeccompSkip::HasListener
        );
    }

    #[test]
    fn a_default_allow_policy_gets_the_rule_and_stays_allow() {
        let current = LinuxSeccomp {
            default_action: "SCMP_ACT_ALLOW".into(),
            syscalls: vec![rule(&["reboot"], "SCMP_ACT_ERRNO")],
            ..LinuxSeccomp::default()
        };
        let policy = adjusted(adjust(Some(&current), "/s", DEFAULT_METADATA));
        assert_eq!(policy.default_action, "SCMP_ACT_ALLOW");
        assert_eq!(
            policy.syscalls,
            vec![
                rule(&["reboot"], "SCMP_ACT_ERRNO"),
                rule(&["sysinfo"], NOTIFY)
            ]
        );
    }

    #[test]
    fn unconfined_and_foreign_listeners_are_left_alone() {
        assert_eq!(reason(adjust(None, "/s", "m")), SeccompSkip::Unconfined);
        let foreign = LinuxSeccomp {
            listener_path: "/run/other-agent.sock".into(),
            ..runtime_default()
        };
        match adjust(Some(&foreign), "/s", "m") {
            SeccompDecision::Leave {
                reason: SeccompSkip::HasListener,
                detail,
            } => assert!(detail.contains("/run/other-agent.sock"), "{detail}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_policy_that_refuses_or_restricts_sysinfo_is_left_alone() {
        // No rule names it and the default refuses it.
        let refused = LinuxSeccomp {
            default_action: "SCMP_ACT_ERRNO".into(),
            syscalls: vec![rule(&["read"], "SCMP_ACT_ALLOW")],
            ..LinuxSeccomp::default()
        };
        assert_eq!(
            reason(adjust(Some(&refused), "/s", "m")),
            SeccompSkip::SysinfoRestricted
        );
        // A rule refuses it, in a default-allow profile.
        let denied = LinuxSeccomp {
            default_action: "SCMP_ACT_ALLOW".into(),
            syscalls: vec![rule(&["sysinfo"], "SCMP_ACT_ERRNO")],
            ..LinuxSeccomp::default()
        };
        assert_eq!(
            reason(adjust(Some(&denied), "/s", "m")),
            SeccompSkip::SysinfoRestricted
        );
        // Allowed on a condition only.
        let mut conditional = rule(&["sysinfo"], "SCMP_ACT_ALLOW");
        conditional.args.push(LinuxSeccompArg::default());
        let conditional = LinuxSeccomp {
            default_action: "SCMP_ACT_ERRNO".into(),
            syscalls: vec![conditional],
            ..LinuxSeccomp::default()
        };
        match adjust(Some(&conditional), "/s", "m") {
            SeccompDecision::Leave {
                reason: SeccompSkip::SysinfoRestricted,
                detail,
            } => assert!(detail.contains("argument"), "{detail}"),
            other => panic!("{other:?}"),
        }
        // Logged is allowed.
        let logged = LinuxSeccomp {
            default_action: "SCMP_ACT_LOG".into(),
            ..LinuxSeccomp::default()
        };
        assert_eq!(
            adjusted(adjust(Some(&logged), "/s", "m")).syscalls,
            vec![rule(&["sysinfo"], NOTIFY)]
        );
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<&str> = SeccompSkip::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), SeccompSkip::ALL.len());
    }
}
