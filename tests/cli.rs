//! The command line as a person meets it: each subcommand lists only the options that change what it
//! does, `render` fails loudly where it cannot show a view, and `health`'s columns are told apart.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_cgview");

fn cgview(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn help(subcommand: &[&str]) -> String {
    let mut args = subcommand.to_vec();
    args.push("--help");
    let output = cgview(&args);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn each_subcommand_lists_only_the_options_it_uses() {
    let view_building = ["--proc-root", "--sys-root", "--cgroup-root"];
    for subcommand in [&["mount"][..], &["render"]] {
        let text = help(subcommand);
        for option in view_building.iter().chain(&["--no-cpu-quota", "--log"]) {
            assert!(
                text.contains(option),
                "{subcommand:?} lacks {option}:\n{text}"
            );
        }
    }
    let health = help(&["health"]);
    for option in view_building {
        assert!(health.contains(option), "health lacks {option}:\n{health}");
    }
    assert!(!health.contains("--no-cpu-quota"), "{health}");
    for subcommand in [&["probe"][..], &["docker-args"]] {
        let text = help(subcommand);
        assert!(text.contains("--proc-root"), "{text}");
        for option in ["--sys-root", "--cgroup-root", "--no-cpu-quota"] {
            assert!(
                !text.contains(option),
                "{subcommand:?} lists {option}:\n{text}"
            );
        }
    }
    let keeper = help(&["keeper"]);
    for option in view_building.iter().chain(&["--no-cpu-quota"]) {
        assert!(!keeper.contains(option), "keeper lists {option}:\n{keeper}");
    }
    assert!(keeper.contains("--log"), "{keeper}");
    #[cfg(feature = "webhook")]
    {
        let webhook = help(&["webhook"]);
        for option in view_building.iter().chain(&["--no-cpu-quota"]) {
            assert!(
                !webhook.contains(option),
                "webhook lists {option}:\n{webhook}"
            );
        }
    }
}

#[test]
fn render_of_a_process_that_does_not_exist_fails_and_prints_nothing() {
    let output = cgview(&["render", "--pid", "999999999", "proc/meminfo"]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no process 999999999"), "{stderr}");
}

#[test]
fn render_of_a_path_outside_the_tree_names_what_is_served() {
    let output = cgview(&["render", "proc/nonesuch"]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("proc/meminfo") && stderr.contains("sys/block/<device>/stat"),
        "{stderr}"
    );
}

#[test]
fn render_of_a_served_file_for_this_process_succeeds() {
    let output = cgview(&["render", "proc/meminfo"]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("MemTotal:"));
}

#[test]
fn health_columns_have_distinct_headers() {
    let dir = tempfile::tempdir().unwrap();
    let output = cgview(&["health", dir.path().to_str().unwrap()]);
    // Nothing serves there: health fails, after printing its table.
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let header = stdout
        .lines()
        .find(|line| line.starts_with("namespace"))
        .unwrap_or_else(|| panic!("no table header:\n{stdout}"));
    let columns: Vec<&str> = header
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let mut names: Vec<String> = header.split_whitespace().map(str::to_owned).collect();
    let before = names.len();
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        before,
        "repeated header in {header:?} ({columns:?})"
    );
}

#[test]
fn nri_lists_its_options_and_mount_runs_the_same_plugin() {
    let nri = help(&["nri"]);
    for option in [
        "--nri-socket",
        "--nri-plugin-name",
        "--nri-plugin-index",
        "--nri-files",
        "--nri-namespaces",
        "--nri-skip-namespaces",
        "--nri-default",
        "--nri-when-not-served",
        "--nri-lock-dir",
        "--metrics-addr",
        "--proc-root",
        "--log",
    ] {
        assert!(nri.contains(option), "nri lacks {option}:\n{nri}");
    }
    for option in ["--sys-root", "--cgroup-root", "--no-cpu-quota"] {
        assert!(!nri.contains(option), "nri lists {option}:\n{nri}");
    }
    let mount = help(&["mount"]);
    for option in ["--nri\n", "--nri-socket", "--nri-when-not-served"] {
        assert!(mount.contains(option), "mount lacks {option}:\n{mount}");
    }
}

#[test]
fn nri_refuses_bad_settings_with_the_reason() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 5] = [
        (
            &["nri", "--nri-plugin-index", "7"],
            &[],
            "two decimal digits",
        ),
        (
            &["nri", "--nri-plugin-name", "cg view"],
            &[],
            "letters, digits",
        ),
        (&["nri", "--nri-files", "proc/vmstat"], &[], "proc/meminfo"),
        (
            &["nri"],
            &[("NRI_PLUGIN_SOCKET", "three")],
            "not a descriptor number",
        ),
        (
            &["nri"],
            &[("NRI_PLUGIN_SOCKET", "987")],
            "no such open descriptor",
        ),
    ];
    for (args, env, expected) in cases {
        let output = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?} {env:?}: {stderr}");
    }
}
